"""ASGI entry point: Django for HTTP, the voice consumer for WebSockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voicesite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from streaming.asr import start_loading  # noqa: E402
from streaming.asr.models import check_installed  # noqa: E402
from streaming.errors import ModelLoadFailed  # noqa: E402
from streaming.tts import get_shared_tts  # noqa: E402
from streaming.tts.voices import server_voice_config  # noqa: E402
from streaming.web.auth import WebSocketAuthMiddleware  # noqa: E402
from streaming.web.routing import websocket_urlpatterns  # noqa: E402
from voicesite.daphne_close_codes import allow_server_close_codes  # noqa: E402
from voicesite.daphne_shutdown import wait_for_every_application  # noqa: E402

allow_server_close_codes()
wait_for_every_application()

# A chosen model that `make models` has not installed stops the server here, naming the command.
try:
    check_installed(settings.STREAM_CONFIG.model_whisper, settings.STREAM_CONFIG.model_cache_dir)
except ModelLoadFailed as exc:
    raise ImproperlyConfigured(exc.message) from None

# The Whisper model loads in the background: the server answers at once and /health reports readiness.
start_loading(settings.STREAM_CONFIG)
# The voice is found now (a scan of the installed packages), not on the event loop of the first session.
get_shared_tts(server_voice_config(settings.STREAM_CONFIG))

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
