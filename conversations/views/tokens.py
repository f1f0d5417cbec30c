"""The API token page: create (shown once), list and revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from ..forms import TokenCreateForm
from ..tokens import create_token, revoke_token


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """List the user's tokens; a valid POST creates one and shows it in this response only."""
    new_token = None
    if request.method == "POST":
        form = TokenCreateForm(request.POST)
        if form.is_valid():
            token, raw = create_token(
                request.user, form.cleaned_data["name"], days=form.cleaned_data["expires"]
            )
            new_token = {"name": token.name, "raw": raw, "expires_at": token.expires_at}
            form = TokenCreateForm()
    else:
        form = TokenCreateForm()
    context = {"form": form, "tokens": request.user.api_tokens.all(), "new_token": new_token}
    return render(request, "conversations/tokens.html", context)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the user's tokens; sessions using it are closed by the server."""
    if revoke_token(request.user, token_id):
        messages.success(request, "Token revoked. Clients using it can no longer connect.")
    else:
        messages.error(request, "That token does not exist or is already revoked.")
    return redirect("tokens")
