"""Forms of the account and token pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest

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


class CountedPasswordChangeForm(PasswordChangeForm):
    """Django's password change, with the current password checked by ``authenticate()``.

    Django's own form compares it directly, where django-axes does not see it: from a session left
    open, the password could be guessed without limit, then changed.  Through ``authenticate()``
    each wrong guess counts towards the account's lock-out, as at log-in, and a locked account
    gets the lock-out page.
    """

    def __init__(self, user, *args, request: HttpRequest, **kwargs) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self) -> str:
        old_password = self.cleaned_data["old_password"]
        username = self.user.get_username()
        if authenticate(self.request, username=username, password=old_password) is None:
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password
