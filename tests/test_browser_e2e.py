"""The chat page end to end in a real headless Chromium, with a real recording as its microphone.

Talking and typing to the offline responder, then what must survive the page going away: reloads and
other tabs mid-reply or mid-utterance, messages not sent yet, messages typed faster than the server
takes them. Everything said and typed must still be answered and stored. The site, the browser and
the helpers are in tests/support/browser.py; the server restarts are in test_browser_restart.py.
Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.browser import (
    ARTIFACTS,
    CLIP,
    FINAL_STATUSES,
    IN_CHROMIUM,
    chromium,  # noqa: F401 (a fixture)
    conversation_id,
    eventually,
    expect_no_turn_in_flight,
    microphone,  # noqa: F401 (a fixture)
    send,
    shows_stored_outcome,
    sign_in,
    site,  # noqa: F401 (a fixture)
    stored_turns,
    unexpected_errors,
    user_texts,
)
from tests.support.speech import clip_info, normalize_text, word_error_rate

pytestmark = IN_CHROMIUM


def test_talking_to_the_chat_page_in_chromium(site, chromium) -> None:  # noqa: F811
    page = chromium.page
    sign_in(page, site.url)
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
    expect_no_turn_in_flight(page)

    # A typed turn, answered and spoken; the conversation id is kept in the URL.
    send(page, "What time is it?")
    second = page.locator(".exchange").nth(1)
    expect(second.locator(".bubble-assistant")).to_contain_text(re.compile(r"It's \d"))
    expect(second).to_have_attribute("data-status", "completed")
    first.locator("details.latency summary").click()
    page.screenshot(path=str(ARTIFACTS / "chat-latency-breakdown.png"))
    conversation = conversation_id(page)

    # A reload resumes the same conversation, rendered from the stored turns.
    page.reload()
    expect(page.locator("[data-connection]")).to_have_attribute("data-state", "open")
    assert conversation_id(page) == conversation
    assert user_texts(page) == [heard, "What time is it?"]

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


def test_a_reload_keeps_every_turn_and_message_in_chromium(site, chromium) -> None:  # noqa: F811
    """A page rendered while the previous page's session still finishes a reply (a reload, another
    tab) shows the turn as stored once that session ends, instead of pending for ever; a reload while
    the user speaks shows the utterance once stored; a message not sent yet is sent by the next page."""
    page = chromium.page
    sign_in(page, site.url)
    send(page, "Tell me something")  # the first reply also introduces the built-in assistant: long
    first = page.locator(".exchange").nth(0)
    expect(first.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "playing")
    turn_id = first.get_attribute("data-turn-id")
    conversation = conversation_id(page)

    # The same conversation opened while the reply plays: the server renders the turn pending.
    other = chromium.new_tab()
    other.goto(page.url)
    rendered = other.locator(f".exchange[data-turn-id='{turn_id}']")
    expect(rendered).to_have_attribute("data-status", "pending")
    page.close()  # the first page goes away mid-reply, as on a reload: its session ends the turn
    expect(rendered).to_have_attribute("data-status", FINAL_STATUSES)
    stored = eventually(
        lambda: [
            t
            for t in stored_turns(site, conversation)
            if t["turn_id"] == turn_id and t["status"] != "pending"
        ],
        "the turn to be stored finished",
    )
    shows_stored_outcome(rendered, stored[0])

    # A reload while the next reply plays: the reloaded page settles that turn too.
    expect(other.locator("[data-connection]")).to_have_attribute("data-state", "open")
    send(other, "Can you help me?")
    second = other.locator(".exchange").nth(1)
    expect(second.locator(".bubble-assistant")).to_have_attribute("data-audio-state", "playing")
    second_id = second.get_attribute("data-turn-id")
    other.reload()
    settled = other.locator(f".exchange[data-turn-id='{second_id}']")
    expect(settled).to_have_attribute("data-status", FINAL_STATUSES)
    stored = {t["turn_id"]: t for t in stored_turns(site, conversation)}
    shows_stored_outcome(settled, stored[second_id])
    other.screenshot(path=str(ARTIFACTS / "chat-reload-mid-reply.png"))

    # A reload while the user speaks: the old session stores the utterance after the new page was
    # rendered, and the new page shows it. (A server short of CPU skips partials: then the words
    # first show in the final, and the reload comes as it is stored.)
    expect(other.locator("[data-connection]")).to_have_attribute("data-state", "open")
    other.click("[data-mic]")
    spoken = other.locator(".exchange").nth(2)
    expect(spoken.locator(".bubble-user")).to_contain_text("forward")
    spoken_id = spoken.get_attribute("data-turn-id")
    other.reload()
    heard = other.locator(f".exchange[data-turn-id='{spoken_id}']")
    expect(heard).to_have_attribute("data-status", FINAL_STATUSES)
    stored = {t["turn_id"]: t for t in stored_turns(site, conversation)}
    assert "forward" in normalize_text(stored[spoken_id]["user_text"])  # the words said before the reload
    shows_stored_outcome(heard, stored[spoken_id])

    # A message typed before the session began (the socket is held, as on a slow network), then a
    # reload: the next page sends it.
    held = {"on": True}
    other.route_web_socket(re.compile(r"/ws"), lambda ws: None if held["on"] else ws.connect_to_server())
    other.reload()
    send(other, "What day is it?")
    waiting = other.locator(".exchange").filter(has=other.locator(".bubble-user", has_text="What day is it?"))
    expect(waiting.locator(".turn-note")).to_have_text("Not sent yet: waiting for the connection.")
    held["on"] = False
    other.reload()
    delivered = other.locator(".exchange").filter(
        has=other.locator(".bubble-user", has_text="What day is it?")
    )
    expect(delivered).to_have_attribute("data-status", "completed")
    expect(delivered.locator(".bubble-assistant")).to_contain_text("Today is")
    typed = [t for t in stored_turns(site, conversation) if t["user_text"] == "What day is it?"]
    assert [(t["source"], t["status"]) for t in typed] == [("text", "completed")]
    assert chromium.console_errors == []


def test_messages_typed_faster_than_the_server_takes_them_go_in_order_in_chromium(site, chromium) -> None:  # noqa: F811
    """The server takes 5 typed messages at once, then one every 2 s (TEXT_TOO_FAST beyond): the page
    holds the rest back and sends them in time, so none is refused or lost."""
    page = chromium.page
    sign_in(page, site.url)
    texts = [f"Quick message number {n}" for n in range(1, 8)]
    for text in texts:
        send(page, text)
    expect(page.locator(".turn-note").first).to_have_text(
        "Not sent yet: it goes after the messages before it."
    )
    conversation = conversation_id(page)

    def all_stored() -> list[dict]:
        turns = stored_turns(site, conversation)
        return turns if len(turns) == len(texts) else []

    stored = eventually(all_stored, "every message to be stored")
    assert [turn["user_text"] for turn in stored] == texts
    sent = [m["text"] for m in page.evaluate("window.__sent") if m.get("type") == "text"]
    assert sent == texts
    assert not [n for n in page.evaluate("window.__notices") if "too fast" in n["text"].lower()]
    expect(page.locator(".turn-note")).to_have_count(0)
    assert unexpected_errors(chromium) == []
