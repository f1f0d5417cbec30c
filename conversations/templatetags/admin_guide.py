"""What the admin index tells an administrator: which language model answers, and how to connect one.

Users only hear that an administrator can connect a full model (``streaming/llm/offline.py``);
the settings that do it are named here, on a page only staff see.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings

register = template.Library()

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


@register.inclusion_tag("admin/conversations/language_model.html")
def language_model_guide() -> dict[str, Any]:
    """The language model in use, or the offline responder and the settings that replace it."""
    config = settings.STREAM_CONFIG
    return {
        "connected": config.use_openai,
        "base_url": config.openai_base_url or OPENAI_DEFAULT_URL,
        "model": config.openai_model,
        "has_key": bool(config.openai_api_key),
    }
