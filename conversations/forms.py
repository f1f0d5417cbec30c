"""Forms of the account and token pages."""

from __future__ import annotations

from django import forms

from .models import ApiToken


class TokenCreateForm(forms.Form):
    """Name a new API token, e.g. after the machine or script that will use it."""

    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"placeholder": "e.g. kitchen speaker", "autocomplete": "off"}),
        help_text="A label to recognise the token by. The token itself is shown only once.",
    )
