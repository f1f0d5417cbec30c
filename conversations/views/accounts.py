"""Sign-up, password change and the log-in lock-out page; log-in and log-out are django.contrib.auth's."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ..forms import CountedPasswordChangeForm


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account, log it in and go to the chat page; with ALLOW_SIGNUP=0, say sign-up is closed."""
    if request.user.is_authenticated:
        return redirect("chat")
    if not settings.ALLOW_SIGNUP:
        return render(request, "registration/signup_closed.html", status=404)
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # Named explicitly so that adding a backend to AUTHENTICATION_BACKENDS keeps this working.
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form})


def locked_out(request: HttpRequest, *args) -> HttpResponse:
    """The page django-axes shows for a log-in refused after too many failures (AXES_LOCKOUT_CALLABLE).

    django-axes passes the original response and the credentials, or only the credentials; neither
    is needed here.
    """
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)


class PasswordChange(PasswordChangeView):
    """django.contrib.auth's password change; wrong current passwords count towards the lock-out."""

    form_class = CountedPasswordChangeForm

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "request": self.request}
