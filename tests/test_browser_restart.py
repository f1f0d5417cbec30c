"""Server restarts under the chat page in a real headless Chromium (SIGTERM, as a deployment does).

The page must say so in plain words, reconnect as soon as the server is back, re-send `start` and
deliver what was typed meanwhile; what was said and typed must still be answered and stored, and the
turns in flight must end as stored. Kept apart from test_browser_e2e.py because these tests stop the
site their module shares (``restartable_site`` starts it again). Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import (
    ARTIFACTS,
    CLIP,
    FINAL_STATUSES,
    IN_CHROMIUM,
    chromium,  # noqa: F401 (a fixture)
    conversation_id,
    eventually,
    expect_no_turn_in_flight,
    generated,
    microphone,  # noqa: F401 (a fixture)
    restartable_site,  # noqa: F401 (a fixture)
    send,
    shows_stored_outcome,
    sign_in,
    site,  # noqa: F401 (a fixture)
    stored_turns,
    unexpected_errors,
    user_texts,
)
from tests.support.speech import clip_info, normalize_text

pytestmark = IN_CHROMIUM


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


def test_push_to_talk_cancel_and_a_server_restart_in_chromium(restartable_site, chromium) -> None:  # noqa: F811
    site = restartable_site  # noqa: F811
    page = chromium.page
    sign_in(page, site.url)

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
    send(page, "Help")
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
    conversation = conversation_id(page)

    # The server restarts: the page says so in plain words, reconnects with backoff and resumes.
    site.stop()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("[data-notices]")).to_contain_text("The server is restarting")
    page.screenshot(path=str(ARTIFACTS / "chat-reconnecting.png"))
    site.start()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    expect(page.locator("[data-notices]")).to_contain_text("Reconnected")
    send(page, "Thank you")
    last = page.locator(".exchange").nth(2)
    expect(last).to_have_attribute("data-status", "completed")
    expect(last.locator(".bubble-assistant")).to_contain_text("welcome")
    expect(last.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "played")
    expect_no_turn_in_flight(page)  # the turns cut by the cancel and the restart ended too
    assert conversation_id(page) == conversation

    page.reload()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    assert user_texts(page) == [heard, "Help", "Thank you"]
    expect(page.locator(".exchange").nth(0).locator(".badge-interrupted")).to_be_visible()
    cancelled = page.locator(".exchange").nth(1)
    expect(cancelled.locator(".badge-cancelled")).to_be_visible()
    stored_reply = cancelled.locator(".bubble-assistant .bubble-text").text_content()
    assert len(stored_reply) < len(full_reply), "the stored reply is what was heard before cancelling"

    assert unexpected_errors(chromium) == []


@pytest.mark.parametrize("microphone", ["looping"], indirect=True)
def test_a_server_restart_mid_conversation_loses_nothing_in_chromium(restartable_site, chromium) -> None:  # noqa: F811
    """Hands-free talk, SIGTERM while the user speaks, a message typed while the server is down, the
    server back: the page reconnects at once, re-sends `start`, delivers the message, and the next
    utterance and the message are transcribed, answered and stored; the turns in flight end as stored."""
    site = restartable_site  # noqa: F811
    page = chromium.page
    pill = page.locator("[data-connection]")
    sign_in(page, site.url)
    page.click("[data-mic]")
    expect(page.locator(".exchange").nth(0).locator(".bubble-assistant .bubble-text")).to_have_text(
        re.compile(r"\S")
    )
    conversation = conversation_id(page)

    # The clip comes round again: the server goes down while it is being said.
    expect(page.locator(".exchange").nth(1).locator(".bubble-user.is-partial")).to_be_visible()
    site.stop()
    stopped_at = time.time()
    expect(pill).to_have_attribute("data-state", "reconnecting")
    # The microphone is still on, but nothing reaches a server: the status line does not say listening.
    status = page.locator("[data-capture-status]")
    expect(status).to_have_text("Microphone on, but not connected: what you say now is not heard.")
    expect(status).to_have_attribute("data-capture", "disconnected")
    before = {turn["turn_id"]: turn for turn in stored_turns(site, conversation)}
    # The notice counts the seconds down to the next attempt (the backoff grows while the server is down).
    eventually(lambda: _counted_down(page), "the reconnecting notice to count down")

    send(page, "What time is it?")
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
    stored_typed = eventually(
        lambda: [
            t for t in stored_turns(site, conversation) if t["source"] == "text" and t["status"] != "pending"
        ],
        "the typed message to be stored",
    )
    assert [t["user_text"] for t in stored_typed] == ["What time is it?"]
    assert generated(stored_typed[0]).startswith("It's ")

    # The next utterance reaches the server: transcribed, answered and stored.
    reference = normalize_text(clip_info(CLIP).reference_text)

    def answered_utterances() -> list[dict]:
        return [
            turn
            for turn in stored_turns(site, conversation)
            if turn["turn_id"] not in before
            and turn["source"] == "voice"
            and normalize_text(turn["user_text"]) == reference
            and "forward" in normalize_text(generated(turn))
        ]

    spoken = eventually(answered_utterances, "an utterance after the restart to be answered and stored", 90)
    expect(page.locator(f".exchange[data-turn-id='{spoken[0]['turn_id']}']")).to_have_attribute(
        "data-status", FINAL_STATUSES
    )

    # Every turn that was in flight when the server went down shows how it ended, as stored.
    # (Not the words of a reply the shutdown cut: the page shows it whole, the unheard part dimmed,
    # and the server ignores the page's playback report once closing, storing its own estimate.)
    stored = {turn["turn_id"]: turn for turn in stored_turns(site, conversation)}
    for turn_id in before:
        shows_stored_outcome(
            page.locator(f".exchange[data-turn-id='{turn_id}']"), stored[turn_id], reply=False
        )
    page.click("[data-mic]")  # microphone off
    page.screenshot(path=str(ARTIFACTS / "chat-after-restart.png"))

    assert unexpected_errors(chromium) == []
