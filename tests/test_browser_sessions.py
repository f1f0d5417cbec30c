"""When the server ends a session or a conversation, in real headless Chromium: the page carries on
where the person expects it to, and only there.

The site, the fake microphone and the pages are those of tests/support/browser.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

from playwright.sync_api import Page, WebSocketRoute, expect

from tests.support.browser import (
    IN_CHROMIUM,
    conversation_id,
    microphone,  # noqa: F401 (a fixture)
    open_page,  # noqa: F401 (a fixture)
    restartable_site,  # noqa: F401 (a fixture)
    send,
    sign_in,
    site,  # noqa: F401 (a fixture)
    stored_turns,
    user_texts,
)

pytestmark = IN_CHROMIUM


def _starts(page: Page) -> int:
    return sum(command["type"] == "start" for command in page.evaluate("window.__sent"))


def _conversation_exists(site, conversation: str) -> bool:  # noqa: F811 (not the fixture)
    db = sqlite3.connect(f"file:{site.env['SQLITE_PATH']}?mode=ro", uri=True, timeout=30)
    try:
        query = "SELECT 1 FROM conversations_conversation WHERE id = ?"
        return db.execute(query, (uuid.UUID(conversation).hex,)).fetchone() is not None
    finally:
        db.close()


def test_hands_free_carries_on_past_the_session_time_limit(restartable_site, open_page) -> None:  # noqa: F811
    site = restartable_site  # noqa: F811
    site.stop()
    site.env["STREAM_MAX_SESSION_S"] = "8"
    try:
        site.start()
        page = open_page()
        sign_in(page, site.url)
        page.click("[data-mic]")
        capture = page.locator("[data-capture-status]")
        expect(capture).to_have_attribute("data-capture", "live")
        first = conversation_id(page)
        # The session reaches its 8 s: the person is still talking hands-free, so the page begins
        # the next one itself, in the same conversation, and tells it to listen.
        page.wait_for_function("window.__sent.filter((c) => c.type === 'start').length >= 2", timeout=30_000)
        expect(capture).to_have_attribute("data-capture", "live")
        expect(page.locator("[data-mic]")).to_have_attribute("aria-pressed", "true")
        assert conversation_id(page) == first and _starts(page) == 2
    finally:
        site.stop()
        del site.env["STREAM_MAX_SESSION_S"]
        site.start()


def test_a_deleted_conversation_is_not_begun_again_under_its_id(site, open_page) -> None:  # noqa: F811
    page = open_page()
    sign_in(page, site.url)
    send(page, "Remember this.")
    expect(page.locator("li.exchange").last).to_have_attribute("data-status", "completed")
    deleted = conversation_id(page)

    other = page.context.new_page()
    other.goto(f"{site.url}/history/{deleted}/delete/")
    other.get_by_role("button", name="Delete").click()
    expect(page.locator("[data-notices]")).to_contain_text("This conversation was deleted.")
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "closed")

    # Typing, or turning the microphone on, does not resume it: under its id the server would
    # begin a new conversation, with this page still showing the deleted one.
    send(page, "Are you still there?")
    page.click("[data-mic]")
    page.wait_for_timeout(2000)  # long enough for a reconnect, which must not happen
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "closed")
    assert not _conversation_exists(site, deleted)
    expect(page.get_by_role("alert").get_by_role("link", name="New conversation")).to_be_visible()


def test_a_refusal_while_the_database_was_locked_is_not_shown_once_connected(site, open_page) -> None:  # noqa: F811
    page = open_page()
    sign_in(page, site.url)
    lock = sqlite3.connect(site.env["SQLITE_PATH"], timeout=30)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the write lock: the next session cannot open its conversation
        page.reload()
        notices = page.locator("[data-notices]")
        # The site waits out its 20 s busy timeout, then refuses the session (1013).
        expect(notices).to_contain_text("cannot be stored right now", timeout=60_000)
    finally:
        lock.rollback()
        lock.close()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    expect(notices).not_to_contain_text("cannot be stored")


class _LateTurns:
    """Between the page and the real server: once :attr:`holding`, the server's events from the next
    typed turn's final on are held until the server says it is shutting down, then sent after that
    notice, as a server going down sends the turns it still finishes (a typed turn queued behind a
    spoken one being transcribed)."""

    def __init__(self) -> None:
        self.holding = False
        self.held: list[str | bytes] = []

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda message: self._from_server(ws, message))

    def _from_server(self, ws: WebSocketRoute, message: str | bytes) -> None:
        event = json.loads(message) if isinstance(message, str) else {}
        if self.holding and (self.held or event.get("type") == "final_transcript"):
            if event.get("code") != "SHUTTING_DOWN":
                self.held.append(message)
                return
            self.holding = False
            ws.send(message)
            for late in self.held:
                ws.send(late)
            return
        ws.send(message)


def test_a_message_the_server_finished_as_it_went_down_is_not_sent_again(restartable_site, open_page) -> None:  # noqa: F811
    site = restartable_site  # noqa: F811
    page = open_page()
    late = _LateTurns()
    page.route_web_socket(lambda url: "/ws" in url, late.route)
    sign_in(page, site.url)
    late.holding = True
    send(page, "Store this once.")
    deadline = time.monotonic() + 30
    while not any('"turn_complete"' in message for message in late.held):  # answered; events held
        assert time.monotonic() < deadline, late.held
        page.wait_for_timeout(100)
    stopping = threading.Thread(target=site.stop)
    stopping.start()
    expect(page.locator("[data-notices]")).to_contain_text("restarting", timeout=30_000)
    stopping.join()
    site.start()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    page.wait_for_timeout(2000)  # the page has looked the message up among the stored turns
    stored = [turn["user_text"] for turn in stored_turns(site, conversation_id(page))]
    assert stored == ["Store this once."]
    assert user_texts(page) == ["Store this once."]


def test_a_page_back_from_the_back_forward_cache_is_not_left_starting_the_microphone(site, open_page) -> None:  # noqa: F811
    page = open_page()
    sign_in(page, site.url)
    page.click("[data-mic]")
    capture = page.locator("[data-capture-status]")
    expect(capture).to_have_attribute("data-capture", "live")
    # Left, and shown again from the cache (the events a Back and a Forward fire).
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))")
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    expect(capture).to_have_attribute("data-capture", "off")
    expect(page.locator("[data-mic]")).to_have_attribute("aria-pressed", "false")
