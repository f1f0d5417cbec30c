"""The /ws Channels consumer: translates WebSocket messages to a VoiceSession and back.

It computes nothing: ``receive()`` only parses and hands data to the session,
events are encoded by ``protocol.py``, and everything worth keeping goes to the
database through :class:`conversations.recorder.ConversationRecorder`, off the
event loop.  Errors leave as ``error`` events with the code of the exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from conversations import services
from conversations.recorder import ConversationRecorder
from conversations.tokens import token_is_active
from streaming.aio import cancel_and_wait
from streaming.asr import model_readiness
from streaming.audio import SAMPLE_RATE, SUPPORTED_RATES
from streaming.config import StreamConfig
from streaming.engines import engine_names, shared_engines
from streaming.errors import (
    FrameTooLarge,
    IdleTimeout,
    SessionExpired,
    SessionLimit,
    ShuttingDown,
    StreamError,
    Unauthorized,
)
from streaming.events import ErrorEvent, Event
from streaming.memory import ConversationMemory
from streaming.protocol import (
    CancelCommand,
    PlaybackReport,
    StartCommand,
    StopCommand,
    TextCommand,
    encode_event,
    error_message,
    parse_command,
)
from streaming.session import VoiceSession
from streaming.slots import SessionSlots

logger = logging.getLogger(__name__)

SHUTDOWN_GROUP = "voice-sessions"
CLOSE_SHUTDOWN = 1012
CLOSE_POLICY = 4008
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_LIMIT = 4429
TOKEN_CHECK_INTERVAL_S = 30.0

slots = SessionSlots()


class VoiceConsumer(AsyncWebsocketConsumer):
    """One WebSocket connection = one conversation = one :class:`VoiceSession`."""

    config: StreamConfig

    async def __call__(self, scope, receive, send):
        # Daphne cancels consumers on shutdown instead of sending a disconnect.
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            if getattr(self, "session", None) is not None:
                await broadcast_shutdown()
                await asyncio.wait([self._begin_close("server_shutdown")], timeout=25)
            raise

    async def connect(self) -> None:
        self.config = settings.STREAM_CONFIG
        self.session: VoiceSession | None = None
        self._close_task: asyncio.Task | None = None
        self._connected = False
        user = self.scope.get("user")
        self.user = user if user is not None and user.is_authenticated else None
        self.token_id: int | None = self.scope.get("api_token_id")
        if self.user is None:
            await self.close(code=CLOSE_UNAUTHORIZED)  # refused at the handshake (HTTP 403)
            return
        await self.accept()
        self._connected = True
        if not slots.acquire(self.user.pk, self.config):
            await self._refuse(SessionLimit("Too many concurrent voice sessions; close one and retry."))
            return
        engines = shared_engines(self.config)
        resume = self.scope.get("query", {}).get("conversation")
        try:
            conversation = await database_sync_to_async(services.start_conversation)(
                self.user,
                client_kind="api" if self.token_id else "browser",
                engines=engine_names(engines),
                resume_id=resume,
            )
        except services.ConversationNotFound:
            slots.release(self.user.pk)
            await self._refuse(
                Unauthorized("That conversation does not exist or is not yours."), CLOSE_NOT_FOUND
            )
            return
        self.conversation_id = str(conversation.pk)
        history = await database_sync_to_async(services.conversation_memory)(conversation.pk)
        self.recorder = ConversationRecorder(self.conversation_id)
        self.recorder.start()
        memory = ConversationMemory(
            self.config.system_prompt,
            max_turns=self.config.memory_turns,
            max_chars=self.config.memory_max_chars,
            history=history,
        )
        self.session = VoiceSession(
            self.config, engines, self._emit, memory=memory, conversation_id=self.conversation_id
        )
        self.session.open()
        self.started_at = self.last_activity = time.monotonic()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="session-watchdog")
        if self.channel_layer is not None:
            await self.channel_layer.group_add(SHUTDOWN_GROUP, self.channel_name)
        await self._send_json(self._session_message(engines, resumed=bool(resume)))
        state, detail = model_readiness()
        if state == "failed":
            await self._emit(ErrorEvent("MODEL_LOAD_FAILED", detail, False))
        logger.info(
            "session connected",
            extra={"event": "connect", "conversation_id": self.conversation_id, "user_id": self.user.pk},
        )

    def _session_message(self, engines, *, resumed: bool) -> dict[str, Any]:
        config = self.config
        return {
            "type": "session",
            "conversation_id": self.conversation_id,
            "resumed": resumed,
            "audio": {
                "encoding": "pcm_s16le",
                "channels": 1,
                "sample_rate": SAMPLE_RATE,
                "supported_sample_rates": list(SUPPORTED_RATES),
                "recommended_chunk_bytes": config.pcm_chunk_size,
            },
            "limits": {
                "max_message_bytes": config.max_message_bytes,
                "max_session_s": config.max_session_s,
                "idle_timeout_s": config.idle_timeout_s,
                "max_utterance_s": config.max_utterance_s,
                "vad_silence_ms": config.vad_silence_ms,
            },
            "engines": {**engine_names(engines), "llm_offline": engines.llm.offline},
            "barge_in": config.barge_in,
        }

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        session = self.session
        if session is None or self._close_task is not None:
            return
        self.last_activity = time.monotonic()
        try:
            size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
            if size > self.config.max_message_bytes:
                raise FrameTooLarge(
                    f"Message of {size} bytes exceeds the {self.config.max_message_bytes}-byte limit; "
                    f"send audio in chunks of about {self.config.pcm_chunk_size} bytes."
                )
            if bytes_data is not None:
                session.push_audio(bytes_data)
                return
            command = parse_command(text_data or "")
            if isinstance(command, StartCommand):
                session.start(command.sample_rate)
                await self._send_json(
                    {"type": "info", "message": "listening", "sample_rate": command.sample_rate}
                )
            elif isinstance(command, StopCommand):
                session.stop()
            elif isinstance(command, CancelCommand):
                await session.cancel()
            elif isinstance(command, TextCommand):
                await session.submit_text(command.text)
            elif isinstance(command, PlaybackReport):
                heard = session.heard_text(command.turn_id, command.seq, command.played_s)
                if heard is not None:
                    self.recorder.record(services.record_heard_text, command.turn_id, heard)
        except StreamError as exc:
            await self._emit(ErrorEvent(exc.code, exc.message, exc.recoverable))

    async def disconnect(self, code: int) -> None:
        if self.session is not None:
            await self._begin_close("client_closed")

    async def server_shutdown(self, message: dict[str, Any]) -> None:
        """Channel-layer broadcast: the server is going down (any worker may have sent it)."""
        if self.session is not None:
            await asyncio.shield(self._begin_close("server_shutdown"))

    # -- events out -------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        """Send an event to the client (if still connected) and record what must be kept."""
        self.recorder.handle(event)
        if isinstance(event, ErrorEvent):
            logger.warning(
                "session error",
                extra={
                    "event": "error",
                    "conversation_id": self.conversation_id,
                    "turn_id": event.turn_id,
                    "code": event.code,
                    "recoverable": event.recoverable,
                    "detail": event.message,
                },
            )
        if self._connected:
            try:
                await self._send_json(encode_event(event))
            except Exception:  # the socket went away; persistence above still happened
                self._connected = False

    async def _send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def _refuse(self, exc: StreamError, code: int = CLOSE_LIMIT) -> None:
        await self._send_json(error_message(exc.code, exc.message, exc.recoverable))
        await self.close(code=code)
        self._connected = False

    # -- lifetime ---------------------------------------------------------------------------

    def _begin_close(self, reason: str, error: StreamError | None = None) -> asyncio.Task:
        """Start closing the session once; every caller awaits the same task."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close(reason, error))
        return self._close_task

    async def _close(self, reason: str, error: StreamError | None) -> None:
        session = self.session
        assert session is not None
        if reason == "server_shutdown":
            await self._emit_safely({"type": "info", "message": "The server is shutting down."})
            error = ShuttingDown("The server is shutting down; reconnect in a moment.")
        if error is not None:
            await self._emit(ErrorEvent(error.code, error.message, error.recoverable))
        await cancel_and_wait(self._watchdog)
        await session.aclose(reason)
        await self.recorder.aclose()
        await database_sync_to_async(services.end_conversation)(self.conversation_id, reason=reason)
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(SHUTDOWN_GROUP, self.channel_name)
        slots.release(self.user.pk)
        logger.info(
            "session closed",
            extra={"event": "disconnect", "conversation_id": self.conversation_id, "reason": reason},
        )
        if self._connected:
            self._connected = False
            close_code = {"server_shutdown": CLOSE_SHUTDOWN, "unauthorized": CLOSE_UNAUTHORIZED}
            await self.close(code=close_code.get(reason, CLOSE_POLICY))

    async def _emit_safely(self, message: dict[str, Any]) -> None:
        if self._connected:
            try:
                await self._send_json(message)
            except Exception:
                self._connected = False

    async def _watch(self) -> None:
        """Enforce the idle timeout, the session length limit and token revocation."""
        next_token_check = time.monotonic() + TOKEN_CHECK_INTERVAL_S
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if now - self.last_activity > self.config.idle_timeout_s:
                self._begin_close("idle_timeout", IdleTimeout("No message for too long; session closed."))
                return
            if now - self.started_at > self.config.max_session_s:
                self._begin_close("session_expired", SessionExpired("Maximum session length reached."))
                return
            if self.token_id is not None and now >= next_token_check:
                next_token_check = now + TOKEN_CHECK_INTERVAL_S
                if not await database_sync_to_async(token_is_active)(self.token_id):
                    self._begin_close("unauthorized", Unauthorized("The API token was revoked."))
                    return


_broadcast_sent = False


async def broadcast_shutdown() -> None:
    """Tell every session in every worker process that the server is shutting down (once)."""
    global _broadcast_sent
    if _broadcast_sent:
        return
    _broadcast_sent = True
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(SHUTDOWN_GROUP, {"type": "server.shutdown"})
    except Exception:
        logger.warning("shutdown broadcast failed", exc_info=True)
