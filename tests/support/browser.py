"""Machinery shared by the browser tests (test_browser_*.py): the site and a headless Chromium.

A daphne subprocess serves the site on a temporary SQLite database with the real engines (Whisper
tiny.en, webrtcvad, espeak-ng, the offline responder). Chromium's fake capture device plays a real
recording as the microphone; a script in every page records what it sends and shows. The helpers
sign in, type, and read the turns back as the page shows them and as the server stored them. Kept
here, not in a test module, so each browser test module imports the same fixtures and helpers.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from tests.support.daphne_process import DAPHNE, ROOT, free_port, manage, server_env
from tests.support.speech import load_clip, silence

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make browser)"
)
IN_CHROMIUM = [pytest.mark.e2e, NEEDS_CHROMIUM]
"""The marks of a module of tests that drive Debian's Chromium: ``pytestmark = IN_CHROMIUM``."""
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
LOOP_PERIOD_S = 12.0  # the looping microphone says the clip once every this many seconds
FINAL_STATUSES = re.compile(r"^(completed|interrupted|cancelled|failed)$")

# Records, in the page, every JSON command sent on a WebSocket, each state of the connection pill and
# each text of the notice area, with their Date.now() times.
SPY = """
window.__sent = [];
window.__states = [];
window.__notices = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  if (typeof data === "string") window.__sent.push({ at: Date.now(), ...JSON.parse(data) });
  return send.call(this, data);
};
document.addEventListener("DOMContentLoaded", () => {
  const pill = document.querySelector("[data-connection]");
  const notices = document.querySelector("[data-notices]");
  if (!pill) return;
  const record = () => {
    const state = pill.dataset.state;
    if (window.__states.at(-1)?.state !== state) window.__states.push({ at: Date.now(), state });
    const notice = notices.textContent;
    if (window.__notices.at(-1)?.text !== notice) window.__notices.push({ at: Date.now(), text: notice });
  };
  const changes = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(record).observe(document.body, changes);
  record();
});
"""


class Site:
    """The site served by a daphne subprocess on a temporary SQLite database; restartable in place."""

    def __init__(self, tmp: Path) -> None:
        # INFO: after a failure, daphne.log tells how each session's turns ended.
        self.env = server_env(tmp, LOG_LEVEL="INFO")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "daphne.log"
        self.server: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.server = subprocess.Popen(
                [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port)] + ["voicesite.asgi:application"],
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
    manage(site.env, "migrate", "--noinput")
    create_user = "from django.contrib.auth.models import User; User.objects.create_user({!r}, password={!r})"
    manage(site.env, "shell", "-c", create_user.format(USERNAME, PASSWORD))
    site.start()
    try:
        yield site
    finally:
        site.stop()


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


@pytest.fixture
def restartable_site(site) -> Iterator[Site]:
    """The site, for a test that stops it: started again afterwards if the test left it down."""
    yield site
    if site.server is None or site.server.poll() is not None:
        site.start()


@pytest.fixture
def microphone(request, tmp_path) -> Path:
    """The clip between silences, as 16 kHz mono 16-bit WAV. Chromium loops the file, so the trailing
    silence is long enough for the whole conversation: the clip is spoken once. A test marked
    ``@pytest.mark.parametrize("microphone", ["looping"], indirect=True)`` gets the clip once every
    ``LOOP_PERIOD_S`` seconds instead, for as long as it listens."""
    clip = load_clip(CLIP)
    if getattr(request, "param", None) == "looping":
        trailing = LOOP_PERIOD_S - 0.8 - len(clip) / 16000
        return _write_wav(tmp_path / "looping.wav", np.concatenate([silence(0.8), clip, silence(trailing)]))
    return _write_wav(tmp_path / "microphone.wav", np.concatenate([silence(0.8), clip, silence(60.0)]))


@dataclass
class ChromiumPage:
    """A page of the headless browser, its context (for more tabs) and the console errors so far."""

    page: Page
    context: BrowserContext
    console_errors: list[str]

    def new_tab(self) -> Page:
        """Another page of the same context: same cookies, same microphone, errors collected too."""
        page = self.context.new_page()
        self._watch(page)
        return page

    def _watch(self, page: Page) -> None:
        page.on(
            "console", lambda message: message.type == "error" and self.console_errors.append(message.text)
        )
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))


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
            context = browser.new_context(viewport={"width": 1280, "height": 880})
            context.set_default_timeout(TIMEOUT_MS)
            context.add_init_script(SPY)
            expect.set_options(timeout=TIMEOUT_MS)
            chromium = ChromiumPage(context.new_page(), context, [])
            chromium._watch(chromium.page)
            yield chromium
        finally:
            browser.close()


@pytest.fixture
def open_page(microphone) -> Iterator[Callable[..., Page]]:
    """``open_page(allow_microphone=True, **context_options)``: a new page in headless Chromium whose
    microphone plays ``microphone``; without ``allow_microphone`` the browser refuses it."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browsers = []

        def open_page(*, allow_microphone: bool = True, init_script: str = "", **options) -> Page:
            flags = [f for f in CHROMIUM_FLAGS if allow_microphone or f != "--use-fake-ui-for-media-stream"]
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[*flags, f"--use-file-for-fake-audio-capture={microphone}"],
            )
            browsers.append(browser)
            context = browser.new_context(**{"viewport": {"width": 1280, "height": 880}, **options})
            context.set_default_timeout(TIMEOUT_MS)
            context.add_init_script(SPY + init_script)
            expect.set_options(timeout=TIMEOUT_MS)
            return context.new_page()

        try:
            yield open_page
        finally:
            for browser in browsers:
                browser.close()


def sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"{url}/")
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")


def send(page: Page, text: str) -> None:
    page.fill("[data-text]", text)
    page.press("[data-text]", "Enter")


def conversation_id(page: Page) -> str:
    match = re.search(r"[?&]c=([0-9a-f-]{36})", page.url)
    assert match, f"the conversation is not in the URL: {page.url}"
    return match[1]


def user_texts(page: Page) -> list[str]:
    return page.locator(".exchange .bubble-user .bubble-text").all_text_contents()


def stored_turns(site: Site, conversation: str) -> list[dict]:
    """The conversation's turns as the server stored them, read from the site's SQLite file."""
    query = (
        "SELECT turn_id, source, status, user_text, assistant_text, assistant_text_generated"
        ' FROM conversations_turn WHERE conversation_id = ? ORDER BY "index"'
    )
    db = sqlite3.connect(f"file:{site.env['SQLITE_PATH']}?mode=ro", uri=True, timeout=30)
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute(query, (uuid.UUID(conversation).hex,))]
    finally:
        db.close()
    return [{**row, "turn_id": str(uuid.UUID(row["turn_id"]))} for row in rows]


def generated(turn: dict) -> str:
    """The whole reply generated for a stored turn (kept apart from what was heard when interrupted)."""
    return turn["assistant_text_generated"] or turn["assistant_text"]


def eventually(check: Callable[[], list], what: str, timeout: float = TIMEOUT_MS / 1000) -> list:
    """Poll ``check`` until it returns something non-empty (the database is written off the loop)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return found


def expect_no_turn_in_flight(page: Page) -> None:
    """Every turn the page followed has ended: nothing to cancel, and the status line says so."""
    expect(page.locator("[data-cancel]")).to_be_disabled()
    expect(page.locator("[data-capture-status]")).to_have_text(
        "Microphone off. Press the microphone, or hold Space to talk."
    )


def shows_stored_outcome(exchange, stored: dict, *, reply: bool = True) -> None:
    """The exchange shows the turn as a reload would: its status, its words and (``reply``) the reply
    that was heard, and no longer waits for the server."""
    expect(exchange).to_have_attribute("data-status", stored["status"])
    expect(exchange.locator(".bubble-user .bubble-text")).to_have_text(stored["user_text"])
    expect(exchange.locator(".turn-note")).to_have_count(0)
    if not reply:
        return
    reply = stored["assistant_text"] or (
        "No reply." if stored["status"] == "failed" else "Stopped before replying."
    )
    expect(exchange.locator(".bubble-assistant .bubble-text")).to_have_text(reply)


def unexpected_errors(chromium: ChromiumPage) -> list[str]:
    """Console errors, except those of a server restart: connections refused while it was down or
    reset as it stopped (the page polls /health meanwhile), and /health's 503 while the restarted
    server loads its model."""
    expected = (
        "WebSocket connection to",
        "ERR_CONNECTION_REFUSED",
        "ERR_CONNECTION_RESET",
        "503 (Service Unavailable)",
    )
    return [error for error in chromium.console_errors if not any(text in error for text in expected)]
