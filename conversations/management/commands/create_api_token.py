"""``manage.py create_api_token USERNAME``: print a new API token as the last line of output."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for an existing user and print it as the last line (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token authenticates as.")
        parser.add_argument("--name", default="command line", help="A label for the token.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(
                f"User {username!r} does not exist; create it first (createsuperuser)."
            ) from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not authenticate.")
        token, raw = create_token(user, name)
        self.stdout.write(f"Created API token {token.name!r} for {username} (starts {token.key_prefix}).")
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(raw)
