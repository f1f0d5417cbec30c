"""The Django app of the Channels edge (label ``streaming``, as before the edge had a package of its own)."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming.web"
    label = "streaming"

    def ready(self) -> None:
        """Live sessions hear of revoked tokens, deactivated accounts and deleted conversations
        (``notices.py``)."""
        from conversations.signals import access_changed

        from .notices import tell_sessions_access_changed

        access_changed.connect(tell_sessions_access_changed, dispatch_uid="tell_sessions")
