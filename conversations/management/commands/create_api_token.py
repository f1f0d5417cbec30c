"""``manage.py create_api_token USERNAME``: print a new API token as the last line of output."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for an existing user and print it as the last line (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token authenticates as.")
        parser.add_argument("--name", default="command line", help="A label for the token.")
        parser.add_argument(
            "--days",
            type=int,
            default=settings.API_TOKEN_MAX_DAYS or None,
            help="Days until the token expires (default: never, or API_TOKEN_MAX_DAYS when it is set).",
        )

    def handle(self, *args, username: str, name: str, days: int | None, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(
                f"User {username!r} does not exist; create it first (createsuperuser)."
            ) from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not authenticate.")
        try:
            token, raw = create_token(user, name, days=days)
        except ValueError as exc:
            raise CommandError(f"Cannot create the token: {exc}.") from None
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M %Z}" if token.expires_at else "never expires"
        self.stdout.write(
            f"Created API token {token.name!r} for {username} (starts {token.key_prefix}, {expiry})."
        )
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(raw)
