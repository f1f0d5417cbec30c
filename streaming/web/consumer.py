"""The /ws Channels consumer: translates WebSocket messages to a VoiceSession and back.

It computes nothing: ``receive()`` only parses and hands data to the session,
events are encoded by ``protocol.py``, and everything worth keeping goes to the
database through :class:`conversations.recorder.ConversationRecorder`, off the
event loop.  Errors leave as ``error`` events with the code of the exception,
at most one per kind per second (:mod:`streaming.web.error_throttle`).

Two checked state machines (:mod:`streaming.web.lifecycle`), like Starlette's ``WebSocket``
(application and client state): :class:`Phase` is the session's lifetime, :class:`SocketState` the socket's,
which the client may close while its session is still being finalized.  Whatever
happens — bad input, a crash, a database outage, a shutdown — a session that opened is
closed through ``_close``, which stores its end (one attached to its conversation that never
opened is detached by :mod:`streaming.web.opening`), and its place (a slot in this worker, a lease
across workers: :mod:`streaming.web.leases`) is given back there, by ``_refuse``, or for the slot
at the latest in ``__call__``'s ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from conversations import prometheus, services
from conversations.recorder import ConversationRecorder
from streaming.aio import cancel_and_wait
from streaming.asr import model_readiness
from streaming.commands import (
    CancelCommand,
    ConfigureCommand,
    PlaybackReport,
    StartCommand,
    StopCommand,
    TextCommand,
)
from streaming.config import StreamConfig
from streaming.engines import engine_names, shared_engines
from streaming.errors import (
    FrameTooLarge,
    MessagesTooFast,
    ModelLoadFailed,
    SessionLimit,
    ShuttingDown,
    StorageUnavailable,
    StreamError,
    Unauthorized,
)
from streaming.events import ErrorEvent, Event
from streaming.memory import ConversationMemory
from streaming.rate_limit import COMMAND_BURST, COMMANDS_PER_S, allowance
from streaming.session import Engines, VoiceSession
from streaming.web import auth, notices, opening, protocol, shutdown
from streaming.web.error_throttle import ErrorThrottle
from streaming.web.leases import SessionPlace
from streaming.web.lifecycle import PHASES, SOCKET, Phase, SocketState
from streaming.web.slots import SessionSlots
from streaming.web.stored_settings import restore_settings
from streaming.web.watchdog import ACCESS_CHECK_INTERVAL_S, SessionWatchdog

logger = logging.getLogger(__name__)

slots = SessionSlots()


class VoiceConsumer(AsyncWebsocketConsumer):
    """One WebSocket connection = one conversation = one :class:`VoiceSession`."""

    config: StreamConfig
    phase = Phase.CONNECTING
    socket = SocketState.CONNECTING
    _close_task: asyncio.Task  # set when the phase becomes CLOSING

    async def __call__(self, scope, receive, send):
        self._place: SessionPlace | None = None
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # daphne cancels every consumer on shutdown instead of sending a disconnect, and one
            # whose client left long ago; a close under way is shielded, so it is waited for.
            if self.phase is Phase.OPEN:
                self._begin_close("server_shutdown")
            await self._closed()
            raise
        except Exception:
            logger.exception("voice consumer failed", extra=self._log_context())
            if self.phase is Phase.OPEN:
                self._begin_close("error")
            await self._closed()
            raise
        finally:
            if self._place is not None:
                self._place.give_back_slot()  # a crash before the session opened: its lease lapses

    async def connect(self) -> None:
        """Authenticate, take a session slot and open the conversation, or refuse with a close code."""
        self.config = settings.STREAM_CONFIG
        user = self.scope.get("user")
        self.user = user if user is not None and user.is_authenticated else None
        self.token_id: int | None = self.scope.get("api_token_id")
        if self.user is None:
            await self._close_socket(protocol.CLOSE_UNAUTHORIZED)  # refused at the handshake (HTTP 403)
            self.phase = PHASES.check(self.phase, Phase.CLOSED)
            return
        await self.accept()
        self.socket = SOCKET.check(self.socket, SocketState.CONNECTED)
        if shutdown.draining():
            error = ShuttingDown("The server is shutting down; reconnect in a moment.")
            await self._refuse(error, protocol.CLOSE_SHUTDOWN)
            return
        resume = self.scope.get("query", {}).get("conversation")
        # A new conversation's id is chosen here: its session's lease is named by it (leases.py).
        self._place = SessionPlace(slots, self.user.pk, resume or str(uuid.uuid4()))
        if not await self._place.take(self.channel_layer, self.config):
            await self._refuse(SessionLimit("Too many concurrent voice sessions; close one and retry."))
            return
        engines = shared_engines(self.config)
        try:
            opened = await opening.attach(
                self.user,
                self._place.conversation_id,
                client_kind="api" if self.token_id else "browser",
                engines=engine_names(engines),
            )
        except services.ConversationNotFound:
            await self._refuse(Unauthorized("That conversation is not yours."), protocol.CLOSE_NOT_FOUND)
            return
        except DatabaseError:
            logger.exception("could not open a conversation", extra={"user_id": self.user.pk})
            error = StorageUnavailable("Conversations cannot be stored right now; reconnect in a moment.")
            await self._refuse(error, protocol.CLOSE_TRY_LATER)
            return
        try:
            await self._open(opened, engines)
        except Exception:
            if self.phase is Phase.CONNECTING:  # attached but never open: no close will detach it
                await opening.detach(opened, recorder=getattr(self, "recorder", None), reason="error")
            raise

    async def _open(self, opened: services.OpenedConversation, engines: Engines) -> None:
        """Start the session ``opened`` attached: its recorder, pipeline and watchdog, then say so."""
        conversation = opened.conversation
        self.conversation_id = str(conversation.pk)
        self.session_key = opened.session_key
        self.recorder = ConversationRecorder(
            self.conversation_id, session_key=self.session_key, on_delayed=self._storage_delayed
        )
        self.recorder.start()
        self._errors = ErrorThrottle(self._deliver)
        self._commands = allowance(COMMANDS_PER_S, COMMAND_BURST)
        memory = ConversationMemory(
            self.config.system_prompt,
            max_turns=self.config.memory_turns,
            max_chars=self.config.memory_max_chars,
            history=opened.history,
        )
        self.session = VoiceSession(
            self.config, engines, self._emit, memory=memory, conversation_id=self.conversation_id
        )
        restore_settings(self.session, conversation.settings, self._log_context())
        # The conversation stores the settings its session starts with.
        self.recorder.record(services.record_settings, self.conversation_id, self.session.settings.stored())
        self.session.open()
        self.watchdog = SessionWatchdog(
            self.config,
            self._begin_close,
            check_access=self._check_access,
            access_check_interval_s=ACCESS_CHECK_INTERVAL_S,
        )
        self._watchdog = asyncio.get_running_loop().create_task(self.watchdog.run(), name="session-watchdog")
        self.metrics = prometheus.SessionMetrics()  # with the phase: every OPEN session reaches _close
        self.phase = PHASES.check(self.phase, Phase.OPEN)
        await self._send_json(
            protocol.session_message(
                self.conversation_id,
                self.session.config,
                engines,
                resumed=opened.resumed,
                tts=self.session.tts,
                settings=self.session.settings,
            )
        )
        state, detail = model_readiness()
        if state == "failed":
            await self._emit(ErrorEvent.from_error(ModelLoadFailed(detail)))
        logger.info("session connected", extra={"event": "connect", **self._log_context()})
        await notices.join(self.channel_layer, self.user.pk, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.phase is Phase.CLOSING and text_data is not None:
            self._late_playback_report(text_data)
            return
        if self.phase is not Phase.OPEN:
            return
        self.watchdog.touch()
        try:
            await self._handle(text_data, bytes_data)
        except StreamError as exc:
            await self._emit(ErrorEvent.from_error(exc))
        except Exception:  # a defect of ours must not end the user's session
            logger.exception("could not handle a client message", extra=self._log_context())
            await self._emit(ErrorEvent("INTERNAL_ERROR", "The server failed to process that message.", True))

    async def _handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        session = self.session
        text = text_data or ""
        size = len(bytes_data) if bytes_data is not None else len(text.encode("utf-8", "surrogatepass"))
        if size > self.config.max_message_bytes:
            raise FrameTooLarge(
                f"Message of {size} bytes exceeds the {self.config.max_message_bytes}-byte limit; "
                f"send audio in chunks of about {self.config.pcm_chunk_size} bytes."
            )
        if bytes_data is not None:
            session.push_audio(bytes_data)
            return
        if not self._commands.take():
            raise MessagesTooFast(
                f"JSON commands are limited to {COMMAND_BURST} at once and {COMMANDS_PER_S:g} a second."
            )
        command = protocol.parse_command(text)
        if isinstance(command, StartCommand):
            session.start(command.sample_rate)
            await self._send_json(protocol.listening_message(command.sample_rate))
        elif isinstance(command, StopCommand):
            session.stop()
        elif isinstance(command, CancelCommand):
            await session.cancel()
        elif isinstance(command, TextCommand):
            await session.submit_text(command.text)
        elif isinstance(command, PlaybackReport):
            self._record_heard(command)
        elif isinstance(command, ConfigureCommand):
            settings = self.session.configure(command)  # BadSetting: nothing changed
            self.recorder.record(services.record_settings, self.conversation_id, settings.stored())
            await self._send_json(
                protocol.session_updated_message(settings, self.session.config, self.session.tts)
            )

    def _record_heard(self, report: PlaybackReport) -> None:
        heard = self.session.heard_text(report.turn_id, report.seq, report.played_s)
        if heard is not None:
            self.recorder.record(services.record_heard_text, report.turn_id, heard)

    def _late_playback_report(self, text: str) -> None:
        """While closing, the client may still report what it played of the reply the close cut;
        within the command limit, as when open: each report is a write the close waits for."""
        if not self._commands.take():
            return
        try:
            command = protocol.parse_command(text)
        except StreamError:
            return
        if isinstance(command, PlaybackReport):
            self._record_heard(command)

    async def _check_access(self) -> tuple[str, StreamError] | None:
        """The watchdog's check; it also renews the session's lease and its notices subscription."""
        await self._place.renew(self.channel_layer)
        await notices.join(self.channel_layer, self.user.pk, self.channel_name)
        user, token, conversation = self.user.pk, self.token_id, self.conversation_id
        return await auth.why_session_must_end(user, token, conversation, self._log_context())

    async def access_changed(self, message: dict) -> None:
        """A token or conversation of this user went, or the account, on some worker (``notices``)."""
        if self.phase is Phase.OPEN:
            self.watchdog.recheck_access()

    async def disconnect(self, code: int) -> None:
        """The client closed the socket: finalize its session, which a cancel must not cut short."""
        self._socket_gone()
        if self.phase is Phase.OPEN:
            await asyncio.shield(self._begin_close("client_closed"))

    async def _storage_delayed(self, error: StreamError | None) -> None:
        """The recorder's report: writes are failing but kept (``error``), or all stored again."""
        if error is None:
            await self._send_json(protocol.info_message(protocol.STORAGE_BACK_NOTICE))
        else:
            await self._emit(ErrorEvent.from_error(error))

    # -- events out -------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        """Send a pipeline event to the client and record it; error storms are coalesced first."""
        if isinstance(event, ErrorEvent):
            await self._errors.submit(event)
        else:
            await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """Record what must be kept, then send the event if the client is still connected."""
        self.recorder.handle(event)
        self.metrics.observe(event)
        if isinstance(event, ErrorEvent):
            logger.warning(
                "session error",
                extra={
                    "event": "error",
                    **self._log_context(),
                    "turn_id": event.turn_id,
                    "code": event.code,
                    "recoverable": event.recoverable,
                    "count": event.count,
                    "detail": event.detail or event.message,
                },
            )
        await self._send_json(protocol.encode_event(event))

    async def _send_json(self, message: dict[str, Any]) -> None:
        if self.socket is not SocketState.CONNECTED:
            return
        try:
            await self.send(text_data=json.dumps(message))
        except Exception:  # the socket went away; persistence already happened
            self._socket_gone()

    async def _refuse(self, exc: StreamError, code: int = protocol.CLOSE_LIMIT) -> None:
        if self._place is not None:
            await self._place.give_back(self.channel_layer)
        prometheus.count_error(exc.code)
        await self._send_json(protocol.error_message(exc.code, exc.told, exc.recoverable))
        await self._close_socket(code)
        self.phase = PHASES.check(self.phase, Phase.CLOSED)

    async def _close_socket(self, code: int) -> None:
        """Close the socket unless either side already has (before ``accept``: refuse the handshake)."""
        if self.socket is not SocketState.DISCONNECTED:
            self._socket_gone()
            try:
                await self.close(code=code)
            except Exception:
                logger.warning("could not close the socket", exc_info=True)

    def _socket_gone(self) -> None:
        if self.socket is not SocketState.DISCONNECTED:
            self.socket = SOCKET.check(self.socket, SocketState.DISCONNECTED)

    # -- lifetime ---------------------------------------------------------------------------

    def _begin_close(self, reason: str, error: StreamError | None = None) -> asyncio.Task:
        """Start closing an open session; a caller once it is closing gets the same task to await."""
        if self.phase is Phase.OPEN:
            self.phase = PHASES.check(self.phase, Phase.CLOSING)
            self._close_task = asyncio.get_running_loop().create_task(
                self._close(reason, error), name="session-close"
            )
        return self._close_task

    async def _closed(self) -> None:
        """Wait for a close that is under way to finish."""
        if self.phase is Phase.CLOSING:
            await asyncio.wait([self._close_task])

    async def _close(self, reason: str, error: StreamError | None) -> None:
        """Finalize the session and store its end; every step runs even if one before it failed."""
        try:
            if reason == "server_shutdown":
                await self._send_json(protocol.info_message(protocol.SHUTDOWN_NOTICE))
                error = ShuttingDown("The server is shutting down; reconnect in a moment.")
            if error is not None:
                await self._emit(ErrorEvent.from_error(error))
            await cancel_and_wait(self._watchdog)
            await self.session.aclose(reason)
            await self._errors.aclose()
            await notices.leave(self.channel_layer, self.user.pk, self.channel_name)
        except Exception:
            logger.exception("session did not close cleanly", extra=self._log_context())
        finally:
            self.recorder.record(
                services.end_conversation, self.conversation_id, reason=reason, session_key=self.session_key
            )
            try:
                await self.recorder.aclose()
            except Exception:
                logger.exception("recorder did not close cleanly", extra=self._log_context())
            await self._place.give_back(self.channel_layer)
            self.metrics.close()
            logger.info(
                "session closed", extra={"event": "disconnect", **self._log_context(), "reason": reason}
            )
            await self._close_socket(protocol.close_code(reason))
            self.phase = PHASES.check(self.phase, Phase.CLOSED)

    def _log_context(self) -> dict[str, Any]:
        user = getattr(self, "user", None)
        return {"conversation_id": getattr(self, "conversation_id", None), "user_id": user and user.pk}
