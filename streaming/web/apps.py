"""The Django app of the Channels edge (label ``streaming``, as before the edge had a package of its own)."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming.web"
    label = "streaming"
