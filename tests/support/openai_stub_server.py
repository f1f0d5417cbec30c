"""A real OpenAI-compatible chat server on loopback, for testing the LLM client end to end.

It speaks HTTP/1.1 over a socket (``asyncio.start_server``) and answers
``POST /v1/chat/completions`` with ``stream=True`` as OpenAI does: chunked
server-sent events ``data: {chunk}`` and a final ``data: [DONE]``.  The
request's ``model`` picks the behaviour, so a test chooses it through
``OPENAI_MODEL``:

- any other name: stream :attr:`StubOpenAIServer.tokens` at once;
- ``"slow"``: wait :attr:`~StubOpenAIServer.token_delay_s` before each token;
- ``"stall"``: send :attr:`~StubOpenAIServer.stall_after` tokens, then hang;
- ``"error-500"`` / ``"error-401"``: answer with that HTTP error;
- ``"broken"``: send two tokens, then drop the connection mid-stream.

With :attr:`~StubOpenAIServer.drop_reused` set, it closes a kept-alive connection
when a second request arrives on it, unanswered, as llama.cpp's server can
(:attr:`~StubOpenAIServer.dropped` counts those).

The server records every request (headers and JSON body) and notices when a
client closes the connection before its stream finished
(:attr:`~StubOpenAIServer.aborted`, :attr:`~StubOpenAIServer.aborts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

ERRORS = {
    "error-500": (500, "Internal Server Error", "the stub model crashed", "server_error", None),
    "error-401": (
        401,
        "Unauthorized",
        "Incorrect API key provided",
        "invalid_request_error",
        "invalid_api_key",
    ),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One chat completion request as the server received it."""

    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class StubOpenAIServer:
    """The server: ``async with StubOpenAIServer() as server``, then use :attr:`base_url`."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", " there", ",", " how", " are", " you", "?"])
    token_delay_s: float = 0.05
    first_token_delay_s: float = 0.0
    stall_after: int = 2
    requests: list[RecordedRequest] = field(default_factory=list)
    aborts: int = 0
    completed: int = 0
    drop_reused: bool = False
    dropped: int = 0

    def __post_init__(self) -> None:
        self.aborted = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/v1"

    async def __aenter__(self) -> StubOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            served = False
            while not (served and self.drop_reused):
                if not await self._serve_one(reader, writer):
                    return
                served = True
            # Read the whole request first: closing with unread data would reset the connection.
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            self.dropped += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is finished."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if method != "POST" or path != "/v1/chat/completions":
            await _send_json(writer, 404, "Not Found", {"error": {"message": f"no route {method} {path}"}})
            return True
        request = json.loads(body)
        self.requests.append(RecordedRequest(headers, request))
        model = request.get("model", "")
        if model in ERRORS:
            status, reason, message, kind, code = ERRORS[model]
            await _send_json(
                writer, status, reason, {"error": {"message": message, "type": kind, "code": code}}
            )
            return True
        return await self._stream(reader, writer, model)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, model: str) -> bool:
        """Send the tokens as SSE; notice a client that hangs up before the end."""
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
        )
        hangup = asyncio.ensure_future(_until_closed(reader))
        try:
            await _send_event(writer, _chunk(model, {"role": "assistant", "content": ""}))
            if self.first_token_delay_s:  # reading a long prompt before the first token
                await asyncio.wait([hangup], timeout=self.first_token_delay_s)
            for index, token in enumerate(self.tokens):
                if model == "stall" and index == self.stall_after:
                    await hangup
                if model == "broken" and index == 2:
                    writer.transport.abort()
                    return False
                if model == "slow":
                    await asyncio.wait([hangup], timeout=self.token_delay_s)
                if hangup.done():
                    self._abort()
                    return False
                await _send_event(writer, _chunk(model, {"content": token}))
            await _send_event(writer, _chunk(model, {}, finish_reason="stop"))
            await _send_event(writer, "[DONE]")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self._abort()
            return False
        finally:
            hangup.cancel()
        self.completed += 1
        return True

    def _abort(self) -> None:
        self.aborts += 1
        self.aborted.set()


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Return once the client closes the connection: it sends nothing while it reads a response."""
    with contextlib.suppress(ConnectionError):
        await reader.read(1)


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
    )


async def _send_event(writer: asyncio.StreamWriter, data: str) -> None:
    event = f"data: {data}\n\n".encode()
    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    await writer.drain()


async def _send_json(writer: asyncio.StreamWriter, status: int, reason: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
