"""Template context every page needs: whether sign-up is open, for the header and the log-in page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def accounts(request: HttpRequest) -> dict[str, bool]:
    """``signup_open``: links to the sign-up page are shown only while it accepts new accounts."""
    return {"signup_open": settings.ALLOW_SIGNUP}
