"""Site URLs: chat at ``/``, accounts, history, API tokens, health, Prometheus metrics and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from conversations.views import accounts, chat, health, history, metrics, tokens, turns

urlpatterns = [
    path("", chat.chat, name="chat"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", accounts.PasswordChange.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("history/", history.history_list, name="history"),
    path("history/<uuid:conversation_id>/", history.history_detail, name="history-detail"),
    path("history/<uuid:conversation_id>/delete/", history.history_delete, name="history-delete"),
    path("history/<uuid:conversation_id>/export.json", history.history_export, name="history-export"),
    path("history/<uuid:conversation_id>/turns.json", turns.conversation_turns, name="history-turns"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token-revoke"),
    path("health", health.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
