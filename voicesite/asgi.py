"""ASGI entry point: Django for HTTP, the voice consumer for WebSockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voicesite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from streaming.asr import start_loading  # noqa: E402
from streaming.web.auth import WebSocketAuthMiddleware  # noqa: E402
from streaming.web.routing import websocket_urlpatterns  # noqa: E402
from voicesite.daphne_close_codes import allow_server_close_codes  # noqa: E402
from voicesite.daphne_shutdown import wait_for_every_application  # noqa: E402

allow_server_close_codes()
wait_for_every_application()

# The Whisper model loads in the background: the server answers at once and /health reports readiness.
start_loading(settings.STREAM_CONFIG)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
