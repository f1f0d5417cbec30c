"""WebSocket routes: /ws (primary) and /ws2 (alias kept from the prototype)."""

from __future__ import annotations

from django.urls import path

from streaming.web.consumer import VoiceConsumer

websocket_urlpatterns = [
    path("ws", VoiceConsumer.as_asgi()),
    path("ws2", VoiceConsumer.as_asgi()),
]
