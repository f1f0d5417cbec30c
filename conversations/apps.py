from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Replay what the journal kept from before a restart (or a crash), in the background, and
        announce deactivated accounts and deleted conversations to their live sessions (``signals.py``).

        Nothing starts when the journal is empty, as it is after a clean shutdown with the
        database up; otherwise a thread stores the writes once the database takes them.
        """
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from .journal import current_journal
        from .models import Conversation
        from .replay import replayer_for
        from .signals import announce_conversation_deleted, announce_deactivation

        post_save.connect(announce_deactivation, sender=get_user_model(), dispatch_uid="deactivation")
        post_delete.connect(announce_conversation_deleted, sender=Conversation, dispatch_uid="deletion")

        journal = current_journal()
        if journal.segment_paths():
            replayer_for(journal).wake()
