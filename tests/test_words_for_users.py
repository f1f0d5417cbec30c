"""Words for users: what a user reads names no setting or library; an administrator learns, in the
admin, how to connect a language model (the offline responder only says that one can be)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from streaming import errors
from streaming.errors import LLMError, StreamError
from streaming.events import ErrorEvent
from streaming.llm.offline import CONNECT_HINT

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL")
# A setting's name, a library or a model: words a user should never have to read.
TECHNICAL = re.compile(
    r"\b(?-i:(STREAM|OPENAI|DJANGO|DATABASE|REDIS|SQLITE|CONVERSATION)_[A-Z_]+|SECRET_KEY)\b"
    r"|openai|pyttsx|espeak|whisper|ctranslate|webrtc|redis|postgres|sqlite|daphne|onnx|piper|llama"
    r"|gemma|offline responder",
    re.IGNORECASE,
)


def _error_classes() -> list[type[StreamError]]:
    return [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, StreamError)]


@pytest.mark.parametrize("cls", [c for c in _error_classes() if c.public_message], ids=lambda c: c.code)
def test_engine_errors_tell_users_plain_words_and_keep_the_detail_for_the_log(cls) -> None:
    event = ErrorEvent.from_error(cls("could not reach http://x:8080/v1; check OPENAI_BASE_URL"), "t1")
    assert event.message == cls.public_message and not TECHNICAL.search(event.message)
    assert event.detail == "could not reach http://x:8080/v1; check OPENAI_BASE_URL"
    assert (event.code, event.turn_id) == (cls.code, "t1")


def test_every_error_an_engine_raises_has_words_for_users() -> None:
    engine_codes = {"ASR_FAILED", "ASR_TIMEOUT", "MODEL_LOAD_FAILED", "LLM_ERROR", "LLM_TIMEOUT"}
    engine_codes |= {"TTS_FAILED", "TTS_TIMEOUT"}
    assert {c.code for c in _error_classes() if c.public_message} == engine_codes
    # Our own protocol errors are worded for the client already and keep their message.
    event = ErrorEvent.from_error(errors.NotStarted("Send start first."))
    assert (event.message, event.detail) == ("Send start first.", "")
    assert LLMError("x").told == LLMError.public_message


def _user_pages() -> list[Path]:
    """Templates a user sees (the admin's are for staff) and the chat page's scripts."""
    pages = [p for p in (ROOT / "templates").rglob("*.html") if "admin" not in p.parts]
    return pages + sorted((ROOT / "static" / "js").rglob("*.js"))


def _visible_text(path: Path) -> str:
    """The quoted strings of a script, or a template without its tags: what can reach the page."""
    text = path.read_text()
    if path.suffix == ".js":
        text = re.sub(r"^\s*(//|\*|/\*).*$", "", text, flags=re.MULTILINE)  # comments
        return " ".join(re.findall(r'"[^"\n]*"|`[^`]*`', text))
    return re.sub(r"{%.*?%}|{{.*?}}|{#.*?#}", " ", text, flags=re.DOTALL)


@pytest.mark.parametrize("path", _user_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_and_scripts_name_no_setting_or_library(path) -> None:
    assert not TECHNICAL.search(_visible_text(path)), TECHNICAL.search(_visible_text(path))


@pytest.mark.django_db
def test_staff_see_how_to_connect_a_language_model_on_the_admin_index(client, django_user_model) -> None:
    staff = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("admin:index")).content.decode()
    assert "No language model is connected" in page
    assert all(name in page for name in SETTINGS) and "make llm-server" in page


@pytest.mark.django_db
def test_the_admin_index_names_the_connected_model(client, django_user_model, stream_config) -> None:
    stream_config(openai_base_url="http://127.0.0.1:8080/v1", openai_model="smol", openai_api_key="sk-secret")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(root)
    page = client.get(reverse("admin:index")).content.decode()
    assert "No language model is connected" not in page
    assert "<code>smol</code>" in page and "http://127.0.0.1:8080/v1" in page
    assert "sk-secret" not in page


@pytest.mark.django_db
def test_a_user_is_not_shown_the_settings(client, alice) -> None:
    client.force_login(alice)
    admin = client.get(reverse("admin:index"))
    assert admin.status_code == 302 and "/login/" in admin["Location"]
    chat = client.get(reverse("chat")).content.decode()
    assert not any(name in chat for name in SETTINGS) and "llm-server" not in chat


def test_the_offline_responder_points_users_to_their_administrator() -> None:
    assert "administrator" in CONNECT_HINT and not TECHNICAL.search(CONNECT_HINT)
