"""A conversation counts every session attached to it, not only the last one: two tabs on one
conversation no longer end (or delete) it when the tab opened last closes first. Its stored
settings say which ones the client chose (the help text)."""

from django.db import migrations, models


def keep_the_attached_session(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    for conversation in Conversation.objects.exclude(session_key=None).only("session_key"):
        conversation.live_sessions = [str(conversation.session_key)]
        conversation.save(update_fields=["live_sessions"])


def keep_the_last_session(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    for conversation in Conversation.objects.exclude(live_sessions=[]).only("live_sessions"):
        conversation.session_key = conversation.live_sessions[-1]
        conversation.save(update_fields=["session_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0008_end_reason_deleted"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="live_sessions",
            field=models.JSONField(
                blank=True,
                default=list,
                editable=False,
                help_text="The WebSocket sessions attached now (their keys): the last one to close ends the conversation.",
            ),
        ),
        migrations.RunPython(keep_the_attached_session, keep_the_last_session),
        migrations.RemoveField(
            model_name="conversation",
            name="session_key",
        ),
        migrations.AlterField(
            model_name="conversation",
            name="settings",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The session settings in effect (system prompt, silence, barge-in, turn detection, language, voice): the server's at the start, then each change the client made with configure; 'chosen' names the client's, which a resumed session keeps.",
            ),
        ),
    ]
