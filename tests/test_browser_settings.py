"""The chat page's settings panel in real headless Chromium: bounded by the server, sent as configure.

The site, the fake microphone and the pages are those of tests/support/browser.py.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.support.browser import (
    ARTIFACTS,
    IN_CHROMIUM,
    microphone,  # noqa: F401 (a fixture)
    open_page,  # noqa: F401 (a fixture)
    sign_in,
    site,  # noqa: F401 (a fixture)
)

pytestmark = IN_CHROMIUM


def test_the_settings_panel_configures_the_session(site, open_page) -> None:  # noqa: F811
    page = open_page()
    sign_in(page, site.url)
    page.click("[data-settings-panel] summary")
    silence, prompt = page.locator("[name=silence_ms]"), page.locator("[name=system_prompt]")
    # The bounds and the values are the server's, from the session event.
    expect(silence).to_have_attribute("min", "300")
    expect(silence).to_have_attribute("max", "1200")
    expect(prompt).to_have_attribute("maxlength", "2000")
    expect(prompt).to_have_value(re.compile(r"^You are a friendly voice assistant\."))
    expect(page.locator("[data-settings-save]")).to_be_disabled()

    silence.fill("900")
    expect(page.locator("[data-silence-value]")).to_have_text("0.9 s")
    page.uncheck("[name=barge_in]")
    page.select_option("[name=turn_detection]", "adaptive")
    expect(page.locator("[name=language]")).to_be_disabled()  # the site's tiny.en hears English only
    expect(page.locator("[name=voice] option")).to_have_text(
        ["Best for the language", "Joe, English (United States)", "Basic synthetic voice"]
    )
    page.select_option("[name=voice]", "espeak-ng")
    prompt.fill("Answer like a pirate.")
    page.click("[data-settings-save]")
    expect(page.locator("[data-notices]")).to_contain_text("Settings applied from your next turn.")
    expect(page.locator("[data-settings]")).to_have_attribute("data-state", "saved")
    sent = [c for c in page.evaluate("window.__sent") if c["type"] == "configure"]
    assert sent == [
        {
            "type": "configure",
            "at": sent[0]["at"],
            "settings": {
                "silence_ms": 900,
                "barge_in": False,
                "turn_detection": "adaptive",
                "voice": "espeak-ng",
                "system_prompt": "Answer like a pirate.",
            },
        }
    ]
    expect(page.locator("[data-engines]")).to_contain_text("Voice: Basic synthetic voice (en-us)")
    page.screenshot(path=str(ARTIFACTS / "chat-settings.png"))

    # A value the server refuses (the page's own limit lifted) is told in a notice; nothing changes.
    page.evaluate("document.querySelector('[name=system_prompt]').maxLength = 5000")
    prompt.fill("x" * 2001)
    page.click("[data-settings-save]")
    expect(page.locator("[data-notices]")).to_contain_text(
        "settings.system_prompt is limited to 2000 characters"
    )
    # The form is not left saving: what was chosen stays, to be corrected or sent again.
    expect(page.locator("[data-settings]")).to_have_attribute("data-state", "changed")
    expect(page.locator("[data-settings-save]")).to_be_enabled()
    page.click("[data-settings] button[type=reset]")
    expect(prompt).to_have_value("Answer like a pirate.")
