"""The pipeline's own exceptions, each carrying its protocol error code.

Engine modules convert vendor errors (ctranslate2, openai, pyttsx3) into these
at their edge (``raise ... from None``), so nothing above an engine ever sees a
library exception, and the consumer maps them to ``error`` events in one place.

An engine's message is for the server log: it may name a library, a model, an
address or a setting.  Those classes set ``public_message``, the words a user is
told instead (the ``error`` event and the stored error carry it).
"""

from __future__ import annotations


class StreamError(Exception):
    """Base class: a failure the client is told about with ``code`` and ``recoverable``."""

    code = "INTERNAL_ERROR"
    recoverable = True
    public_message: str | None = None
    """What a user is told when ``message`` is technical detail meant for the server log."""

    def __init__(self, message: str, *, recoverable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if recoverable is not None:
            self.recoverable = recoverable

    @property
    def told(self) -> str:
        """The words the client is told: ``public_message`` if the class has one, else ``message``."""
        return self.public_message or self.message


class BadMessage(StreamError):
    """The client sent something that is not a valid protocol message."""

    code = "BAD_MESSAGE"


class BadSetting(StreamError):
    """A ``configure`` value is unknown, of the wrong type or out of the server's bounds.

    ``field`` names the setting; the session keeps all its previous settings.
    """

    code = "BAD_SETTING"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotStarted(StreamError):
    """Audio or a command arrived before ``start``."""

    code = "NOT_STARTED"


class UnsupportedSampleRate(StreamError):
    """``start`` declared a sample rate the server cannot resample."""

    code = "UNSUPPORTED_SAMPLE_RATE"


class FrameTooLarge(StreamError):
    """A WebSocket message exceeded ``STREAM_MAX_MESSAGE_BYTES``."""

    code = "FRAME_TOO_LARGE"


class AudioTooFast(StreamError):
    """Audio arrived faster than real time allows; what exceeded the bound was dropped."""

    code = "AUDIO_TOO_FAST"


class TextTooFast(StreamError):
    """Typed messages arrived faster than a person types; this one was not taken."""

    code = "TEXT_TOO_FAST"


class MessagesTooFast(StreamError):
    """JSON commands arrived faster than any client needs; this one was not processed."""

    code = "MESSAGES_TOO_FAST"


class StorageDelayed(StreamError):
    """The database is not accepting writes; the session's data is kept and stored later."""

    code = "STORAGE_DELAYED"


class StorageUnavailable(StreamError):
    """The database could not open the conversation; the client should reconnect later (1013)."""

    code = "STORAGE_UNAVAILABLE"
    recoverable = False


class ASRFailed(StreamError):
    """Speech recognition raised an error for one utterance."""

    code = "ASR_FAILED"
    public_message = "Sorry, that could not be transcribed. Please say it again."


class ASRTimeout(StreamError):
    """Speech recognition took longer than ``STREAM_ASR_TIMEOUT_S``."""

    code = "ASR_TIMEOUT"
    public_message = "Transcribing took too long. Please try again, perhaps in shorter sentences."


class ModelLoadFailed(StreamError):
    """The Whisper model could not be loaded; speech input is unavailable."""

    code = "MODEL_LOAD_FAILED"
    public_message = "Speech recognition is unavailable on the server right now. You can still type."
    recoverable = False


class LLMError(StreamError):
    """The language model endpoint failed or answered with an error."""

    code = "LLM_ERROR"
    public_message = "The assistant could not answer this time. Please try again in a moment."


class LLMTimeout(StreamError):
    """No token within the token timeout, or the reply exceeded ``STREAM_LLM_TIMEOUT_S``."""

    code = "LLM_TIMEOUT"
    public_message = "The assistant took too long to answer. Please try again."


class TTSFailed(StreamError):
    """Speech synthesis failed for a phrase."""

    code = "TTS_FAILED"
    public_message = "Part of the reply could not be spoken; its text is shown."


class TTSTimeout(StreamError):
    """Speech synthesis of one phrase exceeded ``STREAM_TTS_TIMEOUT_S``."""

    code = "TTS_TIMEOUT"
    public_message = "Part of the reply took too long to speak; its text is shown."


class SessionLimit(StreamError):
    """Too many concurrent sessions for this user or this server."""

    code = "SESSION_LIMIT"
    recoverable = False


class IdleTimeout(StreamError):
    """No client message for ``STREAM_IDLE_TIMEOUT_S``."""

    code = "IDLE_TIMEOUT"
    recoverable = False


class SessionExpired(StreamError):
    """The session reached ``STREAM_MAX_SESSION_S``."""

    code = "SESSION_EXPIRED"
    recoverable = False


class Unauthorized(StreamError):
    """The credentials were refused or have been revoked."""

    code = "UNAUTHORIZED"
    recoverable = False


class ShuttingDown(StreamError):
    """The server is shutting down."""

    code = "SHUTTING_DOWN"
    recoverable = False
