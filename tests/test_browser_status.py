"""The chat page's status line says what the microphone really does, in real headless Chromium.

The site, the fake microphone and the pages are those of tests/support/browser.py. A mode being on
is not the microphone capturing: while the browser has not handed the microphone over (its
permission prompt) the line says it is starting, a refused microphone is called unavailable, and a
phone is told what to tap rather than to hold a space bar.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.support.browser import (
    ARTIFACTS,
    IN_CHROMIUM,
    microphone,  # noqa: F401 (a fixture)
    open_page,  # noqa: F401 (a fixture)
    sign_in,
    site,  # noqa: F401 (a fixture)
)

pytestmark = IN_CHROMIUM

# getUserMedia waits until the test calls window.__grantMicrophone(), as it waits for a person to
# answer the browser's permission prompt.
PROMPT = """
const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
let grant;
const granted = new Promise((resolve) => { grant = resolve; });
window.__grantMicrophone = () => grant();
navigator.mediaDevices.getUserMedia = async (constraints) => {
  await granted;
  return getUserMedia(constraints);
};
"""
OFF_KEYS = "Microphone off. Press the microphone, or hold Space to talk."
OFF_TOUCH = "Microphone off. Tap the microphone, or touch and hold “Hold to talk”."
LISTENING = "Listening. Just talk, and pause when you are done."


def _status(page: Page):
    return page.locator("[data-capture-status]")


def test_the_status_line_waits_for_the_microphone_before_saying_listening(site, open_page) -> None:  # noqa: F811
    page = open_page(init_script=PROMPT)
    sign_in(page, site.url)
    expect(_status(page)).to_have_text(OFF_KEYS)

    # Hands-free is on, but the browser has not handed the microphone over: nothing is heard yet.
    page.click("[data-mic]")
    expect(page.locator("[data-mic]")).to_have_attribute("aria-pressed", "true")
    expect(_status(page)).to_have_text("Starting the microphone…")
    expect(_status(page)).to_have_attribute("data-capture", "starting")
    page.wait_for_timeout(500)
    expect(_status(page)).to_have_text("Starting the microphone…")  # still: it does not guess
    assert not any(c["type"] == "start" for c in page.evaluate("window.__sent"))

    # Granted: the server is told to listen and says it does; only then is the page listening.
    page.evaluate("window.__grantMicrophone()")
    expect(_status(page)).to_have_attribute("data-capture", "live")
    expect(_status(page)).to_have_text(re.compile(rf"^({re.escape(LISTENING)}|Hearing you…|Transcribing…)$"))
    assert any(c["type"] == "start" for c in page.evaluate("window.__sent"))

    page.click("[data-mic]")
    expect(_status(page)).to_have_attribute("data-capture", "off")


def test_a_refused_microphone_is_called_unavailable(site, open_page) -> None:  # noqa: F811
    page = open_page(allow_microphone=False)
    sign_in(page, site.url)
    page.click("[data-mic]")
    expect(page.locator("[data-notices]")).to_contain_text("Microphone access is blocked")
    expect(page.locator("[data-mic]")).to_have_attribute("aria-pressed", "false")
    expect(_status(page)).to_have_text("Microphone unavailable. You can type instead.")
    expect(_status(page)).to_have_attribute("data-capture", "unavailable")
    page.screenshot(path=str(ARTIFACTS / "chat-microphone-refused.png"))


def test_a_touch_screen_is_told_what_to_tap(site, open_page) -> None:  # noqa: F811
    page = open_page(has_touch=True, is_mobile=True, viewport={"width": 390, "height": 844})
    sign_in(page, site.url)
    expect(_status(page)).to_have_text(OFF_TOUCH)
    empty = page.locator("[data-empty]")
    expect(empty).to_contain_text("Tap the microphone")
    expect(empty.locator("kbd")).to_be_hidden()
    assert "Space" not in empty.inner_text()
    # The header says what answers in words, not the engines' names.
    expect(page.locator("[data-engines]")).to_contain_text("Replies: simple built-in assistant")
    page.screenshot(path=str(ARTIFACTS / "chat-touch.png"))
