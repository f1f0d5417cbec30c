"""The Django app of the Channels edge (label ``streaming``, as before the edge had a package of its own)."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming.web"
    label = "streaming"

    def ready(self) -> None:
        """Live sessions hear of revoked tokens and deactivated accounts (``notices.py``)."""
        from conversations.signals import credentials_changed

        from .notices import tell_sessions_credentials_changed

        credentials_changed.connect(tell_sessions_credentials_changed, dispatch_uid="tell_sessions")
