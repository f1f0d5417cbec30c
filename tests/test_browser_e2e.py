"""The chat page end to end in a real headless Chromium, with a real recording as its microphone.

A daphne subprocess serves the site on a temporary SQLite database with the real engines (Whisper
tiny.en, webrtcvad, espeak-ng, the offline responder). Chromium's fake capture device plays the
clip; the page captures it through the AudioWorklet, streams it over /ws, shows the transcripts and
plays the reply. The server is restarted under the page (SIGTERM, as a deployment does) and pages
are reloaded mid-reply: what was said and typed must still be answered and stored. Screenshots
land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
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
from tests.support.speech import clip_info, load_clip, normalize_text, silence, word_error_rate

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

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make browser)"),
]


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


def _stored_turns(site: Site, conversation: str) -> list[dict]:
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


def _generated(turn: dict) -> str:
    """The whole reply generated for a stored turn (kept apart from what was heard when interrupted)."""
    return turn["assistant_text_generated"] or turn["assistant_text"]


def _eventually(check: Callable[[], list], what: str, timeout: float = TIMEOUT_MS / 1000) -> list:
    """Poll ``check`` until it returns something non-empty (the database is written off the loop)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return found


def _expect_no_turn_in_flight(page: Page) -> None:
    """Every turn the page followed has ended: nothing to cancel, and the status line says so."""
    expect(page.locator("[data-cancel]")).to_be_disabled()
    expect(page.locator("[data-capture-status]")).to_have_text(
        "Microphone off. Press the microphone, or hold Space to talk."
    )


def _shows_stored_outcome(exchange, stored: dict, *, reply: bool = True) -> None:
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


class _FirstAnswer(threading.Thread):
    """Polls /health every 50 ms and notes when the server first answers it (any status)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answered_at: float | None = None

    def run(self) -> None:
        while self.answered_at is None:
            try:
                urllib.request.urlopen(self.url, timeout=2).close()
            except urllib.error.HTTPError:
                pass  # a 503 (the model still loading) is an answer too
            except OSError:
                time.sleep(0.05)
                continue
            self.answered_at = time.time()


def _unexpected_errors(chromium: ChromiumPage) -> list[str]:
    """Console errors, except those of a server restart: connections refused while it was down, and
    /health's 503 (polled by the page) while the restarted server loads its model."""
    expected = ("WebSocket connection to", "ERR_CONNECTION_REFUSED", "503 (Service Unavailable)")
    return [error for error in chromium.console_errors if not any(text in error for text in expected)]


def _countdowns(page: Page) -> list[tuple[float, int]]:
    """(time, seconds) of each "Reconnecting in N s" the connection notice has shown."""
    shown = page.evaluate("window.__notices")
    return [
        (entry["at"] / 1000, int(m[1])) for entry in shown if (m := re.search(r"in (\d+) s", entry["text"]))
    ]


def _counted_down(page: Page) -> bool:
    """The notice went from N s to N-1 s about a second later, as a countdown does."""
    shown = _countdowns(page)
    return any(n - 1 == m and 0.5 < t2 - t1 < 2.0 for (t1, n), (t2, m) in zip(shown, shown[1:], strict=False))


def test_talking_to_the_chat_page_in_chromium(site, chromium) -> None:
    page = chromium.page
    _sign_in(page, site.url)
    expect(page.locator("[data-offline]")).to_be_visible()  # the offline responder is labelled
    # The header words what answers for a person.
    engines = page.locator("[data-engines] .engine")
    expect(engines.nth(0)).to_have_text("Speech recognition: on this server")
    expect(engines.nth(1)).to_have_text("Replies: simple built-in assistant")
    expect(engines.nth(2)).to_have_text("Voice: Joe, English (United States)")

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
    expect(reply.locator(".bubble-text")).to_contain_text("simple built-in assistant")
    assert "forward" in normalize_text(reply.text_content())
    page.wait_for_function("() => Number(document.querySelector('.bubble-assistant').dataset.playedS) > 0")
    chip = first.locator("details.latency summary")
    chip.click()
    expect(first.locator(".latency-panel .latency-timeline")).to_be_visible()
    chip.click()
    page.screenshot(path=str(ARTIFACTS / "chat-mid-conversation.png"))

    page.click("[data-mic]")  # microphone off
    expect(reply).to_have_attribute("data-audio-state", "played")
    _expect_no_turn_in_flight(page)

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


def test_push_to_talk_cancel_and_a_server_restart_in_chromium(restartable_site, chromium) -> None:
    site = restartable_site
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
    expect(last.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "played")
    _expect_no_turn_in_flight(page)  # the turns cut by the cancel and the restart ended too
    assert _conversation_id(page) == conversation

    page.reload()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    assert _user_texts(page) == [heard, "Help", "Thank you"]
    expect(page.locator(".exchange").nth(0).locator(".badge-interrupted")).to_be_visible()
    cancelled = page.locator(".exchange").nth(1)
    expect(cancelled.locator(".badge-cancelled")).to_be_visible()
    stored_reply = cancelled.locator(".bubble-assistant .bubble-text").text_content()
    assert len(stored_reply) < len(full_reply), "the stored reply is what was heard before cancelling"

    assert _unexpected_errors(chromium) == []


@pytest.mark.parametrize("microphone", ["looping"], indirect=True)
def test_a_server_restart_mid_conversation_loses_nothing_in_chromium(restartable_site, chromium) -> None:
    """Hands-free talk, SIGTERM while the user speaks, a message typed while the server is down, the
    server back: the page reconnects at once, re-sends `start`, delivers the message, and the next
    utterance and the message are transcribed, answered and stored; the turns in flight end as stored."""
    site = restartable_site
    page = chromium.page
    pill = page.locator("[data-connection]")
    _sign_in(page, site.url)
    page.click("[data-mic]")
    expect(page.locator(".exchange").nth(0).locator(".bubble-assistant .bubble-text")).to_have_text(
        re.compile(r"\S")
    )
    conversation = _conversation_id(page)

    # The clip comes round again: the server goes down while it is being said.
    expect(page.locator(".exchange").nth(1).locator(".bubble-user.is-partial")).to_be_visible()
    site.stop()
    stopped_at = time.time()
    expect(pill).to_have_attribute("data-state", "reconnecting")
    # The microphone is still on, but nothing reaches a server: the status line does not say listening.
    status = page.locator("[data-capture-status]")
    expect(status).to_have_text("Microphone on, but not connected: what you say now is not heard.")
    expect(status).to_have_attribute("data-capture", "disconnected")
    before = {turn["turn_id"]: turn for turn in _stored_turns(site, conversation)}
    # The notice counts the seconds down to the next attempt (the backoff grows while the server is down).
    _eventually(lambda: _counted_down(page), "the reconnecting notice to count down")

    _send(page, "What time is it?")
    typed = page.locator(".exchange").filter(has=page.locator(".bubble-user", has_text="What time is it?"))
    expect(typed.locator(".turn-note")).to_have_text("Not sent yet: waiting for the connection.")
    page.screenshot(path=str(ARTIFACTS / "chat-restart-offline-message.png"))

    server_back = _FirstAnswer(f"{site.url}/health")
    server_back.start()
    site.start()
    expect(pill).to_have_attribute("data-state", "open")
    expect(status).to_have_attribute("data-capture", "live")  # once the new session said it listens
    opened_at = next(
        s["at"] / 1000
        for s in page.evaluate("window.__states")
        if s["state"] == "open" and s["at"] / 1000 > stopped_at
    )
    server_back.join(5)
    reconnect_s = opened_at - server_back.answered_at
    print(f"the page reconnected {reconnect_s:.2f} s after the server first answered /health")
    assert reconnect_s < 3.0, (
        f"reconnected {reconnect_s:.2f} s after the server was back (polls /health every 0.5 s)"
    )

    # The new connection was told to listen, and got the offline message once.
    sent = page.evaluate("window.__sent")
    assert any(command["type"] == "start" and command["at"] / 1000 > stopped_at for command in sent)
    assert [c["text"] for c in sent if c["type"] == "text"] == ["What time is it?"]

    # The message typed offline is answered on the page and stored.
    expect(typed).to_have_attribute("data-status", FINAL_STATUSES)
    expect(typed.locator(".bubble-assistant")).to_contain_text("It's")
    stored_typed = _eventually(
        lambda: [
            t for t in _stored_turns(site, conversation) if t["source"] == "text" and t["status"] != "pending"
        ],
        "the typed message to be stored",
    )
    assert [t["user_text"] for t in stored_typed] == ["What time is it?"]
    assert _generated(stored_typed[0]).startswith("It's ")

    # The next utterance reaches the server: transcribed, answered and stored.
    reference = normalize_text(clip_info(CLIP).reference_text)

    def answered_utterances() -> list[dict]:
        return [
            turn
            for turn in _stored_turns(site, conversation)
            if turn["turn_id"] not in before
            and turn["source"] == "voice"
            and normalize_text(turn["user_text"]) == reference
            and "forward" in normalize_text(_generated(turn))
        ]

    spoken = _eventually(answered_utterances, "an utterance after the restart to be answered and stored", 90)
    expect(page.locator(f".exchange[data-turn-id='{spoken[0]['turn_id']}']")).to_have_attribute(
        "data-status", FINAL_STATUSES
    )

    # Every turn that was in flight when the server went down shows how it ended, as stored.
    # (Not the words of a reply the shutdown cut: the page shows it whole, the unheard part dimmed,
    # and the server ignores the page's playback report once closing, storing its own estimate.)
    stored = {turn["turn_id"]: turn for turn in _stored_turns(site, conversation)}
    for turn_id in before:
        _shows_stored_outcome(
            page.locator(f".exchange[data-turn-id='{turn_id}']"), stored[turn_id], reply=False
        )
    page.click("[data-mic]")  # microphone off
    page.screenshot(path=str(ARTIFACTS / "chat-after-restart.png"))

    assert _unexpected_errors(chromium) == []


def test_a_reload_keeps_every_turn_and_message_in_chromium(site, chromium) -> None:
    """A page rendered while the previous page's session still finishes a reply (a reload, another
    tab) shows the turn as stored once that session ends, instead of pending for ever; a reload while
    the user speaks shows the utterance once stored; a message not sent yet is sent by the next page."""
    page = chromium.page
    _sign_in(page, site.url)
    _send(page, "Tell me something")  # the first reply also introduces the built-in assistant: long
    first = page.locator(".exchange").nth(0)
    expect(first.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "playing")
    turn_id = first.get_attribute("data-turn-id")
    conversation = _conversation_id(page)

    # The same conversation opened while the reply plays: the server renders the turn pending.
    other = chromium.new_tab()
    other.goto(page.url)
    rendered = other.locator(f".exchange[data-turn-id='{turn_id}']")
    expect(rendered).to_have_attribute("data-status", "pending")
    page.close()  # the first page goes away mid-reply, as on a reload: its session ends the turn
    expect(rendered).to_have_attribute("data-status", FINAL_STATUSES)
    stored = _eventually(
        lambda: [
            t
            for t in _stored_turns(site, conversation)
            if t["turn_id"] == turn_id and t["status"] != "pending"
        ],
        "the turn to be stored finished",
    )
    _shows_stored_outcome(rendered, stored[0])

    # A reload while the next reply plays: the reloaded page settles that turn too.
    expect(other.locator("[data-connection]")).to_have_attribute("data-state", "open")
    _send(other, "Can you help me?")
    second = other.locator(".exchange").nth(1)
    expect(second.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "playing")
    second_id = second.get_attribute("data-turn-id")
    other.reload()
    settled = other.locator(f".exchange[data-turn-id='{second_id}']")
    expect(settled).to_have_attribute("data-status", FINAL_STATUSES)
    stored = {t["turn_id"]: t for t in _stored_turns(site, conversation)}
    _shows_stored_outcome(settled, stored[second_id])
    other.screenshot(path=str(ARTIFACTS / "chat-reload-mid-reply.png"))

    # A reload while the user speaks: the old session stores the utterance after the new page was
    # rendered, and the new page shows it.
    expect(other.locator("[data-connection]")).to_have_attribute("data-state", "open")
    other.click("[data-mic]")
    spoken = other.locator(".exchange").nth(2)
    expect(spoken.locator(".bubble-user.is-partial")).to_contain_text("forward")
    spoken_id = spoken.get_attribute("data-turn-id")
    other.reload()
    heard = other.locator(f".exchange[data-turn-id='{spoken_id}']")
    expect(heard).to_have_attribute("data-status", FINAL_STATUSES)
    stored = {t["turn_id"]: t for t in _stored_turns(site, conversation)}
    assert "forward" in normalize_text(stored[spoken_id]["user_text"])  # the words said before the reload
    _shows_stored_outcome(heard, stored[spoken_id])

    # A message typed before the session began (the socket is held, as on a slow network), then a
    # reload: the next page sends it.
    held = {"on": True}
    other.route_web_socket(re.compile(r"/ws"), lambda ws: None if held["on"] else ws.connect_to_server())
    other.reload()
    _send(other, "What day is it?")
    waiting = other.locator(".exchange").filter(has=other.locator(".bubble-user", has_text="What day is it?"))
    expect(waiting.locator(".turn-note")).to_have_text("Not sent yet: waiting for the connection.")
    held["on"] = False
    other.reload()
    delivered = other.locator(".exchange").filter(
        has=other.locator(".bubble-user", has_text="What day is it?")
    )
    expect(delivered).to_have_attribute("data-status", "completed")
    expect(delivered.locator(".bubble-assistant")).to_contain_text("Today is")
    typed = [t for t in _stored_turns(site, conversation) if t["user_text"] == "What day is it?"]
    assert [(t["source"], t["status"]) for t in typed] == [("text", "completed")]
    assert chromium.console_errors == []


def test_messages_typed_faster_than_the_server_takes_them_go_in_order_in_chromium(site, chromium) -> None:
    """The server takes 5 typed messages at once, then one every 2 s (TEXT_TOO_FAST beyond): the page
    holds the rest back and sends them in time, so none is refused or lost."""
    page = chromium.page
    _sign_in(page, site.url)
    texts = [f"Quick message number {n}" for n in range(1, 8)]
    for text in texts:
        _send(page, text)
    expect(page.locator(".turn-note").first).to_have_text(
        "Not sent yet: it goes after the messages before it."
    )
    conversation = _conversation_id(page)

    def all_stored() -> list[dict]:
        turns = _stored_turns(site, conversation)
        return turns if len(turns) == len(texts) else []

    stored = _eventually(all_stored, "every message to be stored")
    assert [turn["user_text"] for turn in stored] == texts
    sent = [m["text"] for m in page.evaluate("window.__sent") if m.get("type") == "text"]
    assert sent == texts
    assert not [n for n in page.evaluate("window.__notices") if "too fast" in n["text"].lower()]
    expect(page.locator(".turn-note")).to_have_count(0)
    assert _unexpected_errors(chromium) == []
