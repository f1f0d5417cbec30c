"""Helpers to drive the real ASGI router with WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from conversations.tokens import create_token
from voicesite.asgi import application


class Client:
    """A WebSocket client through the real router that keeps every message it received."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.messages: list[dict] = []
        self.closed_code: int | None = None

    async def send(self, **message) -> None:
        await self.ws.send_to(text_data=json.dumps(message))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_to(text_data=text)

    async def send_audio(self, samples: np.ndarray, chunk: int = 3200, pace: float = 0.0) -> None:
        data = samples.astype(np.int16).tobytes()
        for start in range(0, len(data), chunk):
            await self.ws.send_to(bytes_data=data[start : start + chunk])
            await asyncio.sleep(pace)

    async def until(self, predicate, timeout: float = 30.0) -> dict:
        """Receive until a message matches ``predicate``; return it."""
        for message in self.messages:
            if predicate(message):
                return message
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no matching message; got {[m.get('type') for m in self.messages]}")
            output = await self.ws.receive_output(timeout=remaining)
            if output["type"] == "websocket.close":
                self.closed_code = output.get("code")
                raise ConnectionError(f"closed with {self.closed_code}")
            message = json.loads(output["text"])
            self.messages.append(message)
            if predicate(message):
                return message

    async def until_type(self, kind: str, timeout: float = 30.0, **fields) -> dict:
        return await self.until(
            lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in fields.items()), timeout
        )

    async def until_closed(self, timeout: float = 30.0) -> int | None:
        """Receive until the server closes the socket; return the close code."""
        try:
            await self.until(lambda m: False, timeout)
        except ConnectionError:
            return self.closed_code
        raise AssertionError("socket not closed")

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    async def close(self) -> None:
        await self.ws.disconnect()


async def open_client(
    path: str = "/ws", headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[Client, bool]:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=20)
    return Client(communicator), connected


async def make_user(username: str = "alice"):
    return await sync_to_async(get_user_model().objects.create_user)(username, password="correct horse 42")


async def make_token(user) -> str:
    _, raw = await sync_to_async(create_token)(user, "test")
    return raw


async def connect_as(user, path: str = "/ws") -> Client:
    """Connect with a fresh API token in the Authorization header and read the session event."""
    token = await make_token(user)
    client, connected = await open_client(path, [(b"authorization", f"Bearer {token}".encode())])
    assert connected
    await client.until_type("session")
    return client
