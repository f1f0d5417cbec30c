"""Forms of the account and token pages."""

from __future__ import annotations

from django import forms

from .models import ApiToken
from .tokens import lifetime_choices

NEVER = "never"
DEFAULT_DAYS = 90


class TokenCreateForm(forms.Form):
    """Name a new API token, e.g. after the machine or script that will use it, and choose its lifetime."""

    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"placeholder": "e.g. kitchen speaker", "autocomplete": "off"}),
        help_text="A label to recognise the token by. The token itself is shown only once.",
    )
    expires = forms.TypedChoiceField(
        label="Expires",
        coerce=lambda value: None if value == NEVER else int(value),
        help_text="After this, clients using the token can no longer connect.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read per form, not at import: the server's maximum lifetime is a setting.
        days = lifetime_choices()
        self.fields["expires"].choices = [
            (NEVER, "Never") if d is None else (str(d), f"In {d} days") for d in days
        ]
        self.fields["expires"].initial = str(DEFAULT_DAYS if DEFAULT_DAYS in days else days[-1])
