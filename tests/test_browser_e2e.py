"""The chat page end to end in a real headless Chromium, with a real recording as its microphone.

A daphne subprocess serves the site on a temporary SQLite database with the real engines (Whisper
tiny.en, webrtcvad, espeak-ng, the offline responder). Chromium's fake capture device plays the
clip; the page captures it through the AudioWorklet, streams it over /ws, shows the transcripts and
plays the reply. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.speech import clip_info, load_clip, normalize_text, silence, word_error_rate

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
CLIP = "ps_goforward"
USERNAME, PASSWORD = "ada", "a-long-test-passphrase"
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make browser)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


class Site:
    """The site served by a daphne subprocess on a temporary SQLite database; restartable in place."""

    def __init__(self, tmp: Path) -> None:
        ignored = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        self.env = {k: v for k, v in os.environ.items() if k not in ignored}
        self.env.update(SQLITE_PATH=str(tmp / "db.sqlite3"), SECRET_KEY="x", DEBUG="0", LOG_LEVEL="WARNING")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "daphne.log"
        self.server: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.server = subprocess.Popen(
                [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port)]
                + ["voicesite.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM, as a deployment does: sessions are told the server is going down."""
        if self.server is None or self.server.poll() is not None:
            return
        self.server.terminate()
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(10)

    def _wait_ready(self, timeout: float = 120) -> None:
        """Wait until /health reports every component ready (the Whisper model loads in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.server.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if json.load(response)["status"] == "ok":
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"the site did not become ready; see {self.log}")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("e2e-site"))
    _manage(site.env, "migrate", "--noinput")
    create_user = "from django.contrib.auth.models import User; User.objects.create_user({!r}, password={!r})"
    _manage(site.env, "shell", "-c", create_user.format(USERNAME, PASSWORD))
    site.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def microphone(tmp_path) -> Path:
    """The clip between silences, as 16 kHz mono 16-bit WAV. Chromium loops the file, so the trailing
    silence is long enough for the whole conversation: the clip is spoken once."""
    samples = np.concatenate([silence(0.8), load_clip(CLIP), silence(60.0)])
    path = tmp_path / "microphone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


@dataclass
class ChromiumPage:
    """A page of the headless browser and the console errors it has logged so far."""

    page: Page
    console_errors: list[str]


@pytest.fixture
def chromium(microphone) -> Iterator[ChromiumPage]:
    """A page in headless Chromium whose microphone plays ``microphone``; console errors are collected."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={microphone}"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 880})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            errors: list[str] = []
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield ChromiumPage(page, errors)
        finally:
            browser.close()


def _sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"{url}/")
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")


def _send(page: Page, text: str) -> None:
    page.fill("[data-text]", text)
    page.press("[data-text]", "Enter")


def _conversation_id(page: Page) -> str:
    match = re.search(r"[?&]c=([0-9a-f-]{36})", page.url)
    assert match, f"the conversation is not in the URL: {page.url}"
    return match[1]


def _user_texts(page: Page) -> list[str]:
    return page.locator(".exchange .bubble-user .bubble-text").all_text_contents()


def test_talking_to_the_chat_page_in_chromium(site, chromium) -> None:
    page = chromium.page
    _sign_in(page, site.url)
    expect(page.locator("[data-offline]")).to_be_visible()  # the offline responder is labelled

    page.click("[data-mic]")
    expect(page.locator("[data-mic]")).to_have_attribute("aria-pressed", "true")

    # The final transcript replaces the partial one; it matches the words spoken.
    first = page.locator(".exchange").nth(0)
    expect(first.locator(".bubble-user:not(.is-partial)")).to_be_visible()
    heard = first.locator(".bubble-user .bubble-text").text_content()
    reference = clip_info(CLIP).reference_text
    assert word_error_rate([reference], [heard]) == 0, f"{heard!r} is not {reference!r}"

    # The reply streams in, its audio plays, and the turn's latency is shown with its breakdown.
    reply = first.locator(".bubble-assistant")
    expect(reply.locator(".bubble-text")).to_contain_text("offline responder")
    assert "forward" in normalize_text(reply.text_content())
    page.wait_for_function("() => Number(document.querySelector('.bubble-assistant').dataset.playedS) > 0")
    chip = first.locator("details.latency summary")
    chip.click()
    expect(first.locator(".latency-panel .latency-timeline")).to_be_visible()
    chip.click()
    page.screenshot(path=str(ARTIFACTS / "chat-mid-conversation.png"))

    page.click("[data-mic]")  # microphone off
    expect(reply).to_have_attribute("data-audio-state", "played")

    # A typed turn, answered and spoken; the conversation id is kept in the URL.
    _send(page, "What time is it?")
    second = page.locator(".exchange").nth(1)
    expect(second.locator(".bubble-assistant")).to_contain_text(re.compile(r"It's \d"))
    expect(second).to_have_attribute("data-status", "completed")
    first.locator("details.latency summary").click()
    page.screenshot(path=str(ARTIFACTS / "chat-latency-breakdown.png"))
    conversation = _conversation_id(page)

    # A reload resumes the same conversation, rendered from the stored turns.
    page.reload()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    assert _conversation_id(page) == conversation
    assert _user_texts(page) == [heard, "What time is it?"]

    page.click("[data-history-link]")
    page.wait_for_url(f"{site.url}/history/{conversation}/")
    transcript = normalize_text(page.text_content(".transcript"))
    assert normalize_text(heard) in transcript and "what time is it" in transcript
    page.screenshot(path=str(ARTIFACTS / "history-conversation.png"), full_page=True)

    page.click("nav.main-nav >> text=History")
    page.wait_for_url(f"{site.url}/history/")
    expect(page.locator(f"a[href='/history/{conversation}/']")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "history-list.png"))

    assert chromium.console_errors == []


def test_push_to_talk_cancel_and_a_server_restart_in_chromium(site, chromium) -> None:
    page = chromium.page
    _sign_in(page, site.url)

    # Push-to-talk: hold the space bar while speaking; releasing it stops the microphone stream.
    page.keyboard.down("Space")
    expect(page.locator("[data-ptt]")).to_have_class(re.compile(r"\bis-held\b"))
    expect(page.locator("[data-capture-status]")).to_have_text("Recording. Release to send.")
    spoken = page.locator(".exchange").nth(0)
    expect(spoken.locator(".bubble-assistant")).to_be_visible()  # the final transcript arrived
    page.keyboard.up("Space")
    expect(page.locator("[data-capture-status]")).not_to_have_attribute("data-mode", "ptt")
    heard = spoken.locator(".bubble-user .bubble-text").text_content()
    assert normalize_text(heard) == normalize_text(clip_info(CLIP).reference_text)

    # Typing while the reply plays interrupts it (the server's barge-in) and playback stops.
    expect(spoken.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "playing")
    _send(page, "Help")
    expect(spoken.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "stopped")
    expect(spoken.locator(".badge-interrupted")).to_be_visible()

    # Cancel (Escape) cuts the reply's audio at once; what was not played is marked as unheard.
    reply = page.locator(".exchange").nth(1).locator(".bubble-assistant")
    expect(reply).to_have_attribute("data-audio-state", "playing")
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-audio-state", "stopped")
    expect(page.locator(".exchange[data-status=cancelled] .badge-cancelled")).to_be_visible()
    expect(reply.locator(".unheard")).to_be_visible()
    full_reply = reply.locator(".bubble-text").text_content()
    conversation = _conversation_id(page)

    # The server restarts: the page says so in plain words, reconnects with backoff and resumes.
    site.stop()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("[data-notices]")).to_contain_text("The server is restarting")
    page.screenshot(path=str(ARTIFACTS / "chat-reconnecting.png"))
    site.start()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    expect(page.locator("[data-notices]")).to_contain_text("Reconnected")
    _send(page, "Thank you")
    last = page.locator(".exchange").nth(2)
    expect(last).to_have_attribute("data-status", "completed")
    expect(last.locator(".bubble-assistant")).to_contain_text("welcome")
    assert _conversation_id(page) == conversation

    page.reload()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    assert _user_texts(page) == [heard, "Help", "Thank you"]
    expect(page.locator(".exchange").nth(0).locator(".badge-interrupted")).to_be_visible()
    cancelled = page.locator(".exchange").nth(1)
    expect(cancelled.locator(".badge-cancelled")).to_be_visible()
    stored_reply = cancelled.locator(".bubble-assistant .bubble-text").text_content()
    assert len(stored_reply) < len(full_reply), "the stored reply is what was heard before cancelling"

    # Connection failures while the server was down are expected; nothing else may fail.
    unexpected = [
        error
        for error in chromium.console_errors
        if "WebSocket connection to" not in error and "ERR_CONNECTION_REFUSED" not in error
    ]
    assert unexpected == []
