"""Finding an OpenAI-compatible server (llama.cpp's ``llama-server``) to benchmark a real LLM with."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

LLAMA_CPP_DEFAULT = "http://127.0.0.1:8080/v1"


@dataclass(frozen=True)
class Endpoint:
    """A reachable chat endpoint: base URL, model name and API key to give the server."""

    base_url: str
    model: str
    api_key: str

    def server_env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_MODEL": self.model, "OPENAI_API_KEY": self.api_key}


def _models(base_url: str, api_key: str) -> list[str]:
    """The model names the server lists; [] if it answers without a model list (not every server has one)."""
    request = urllib.request.Request(
        base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return [model["id"] for model in json.load(response).get("data", [])]
    except urllib.error.HTTPError:
        return []


def find_endpoint(base_url: str | None, model: str | None) -> tuple[Endpoint | None, str]:
    """The endpoint to use and how it was found, or None and why there is none.

    ``base_url`` (``--openai-base-url``) wins, then ``OPENAI_BASE_URL``, then a
    llama.cpp server on its default port.
    """
    candidates = [u for u in (base_url, os.environ.get("OPENAI_BASE_URL"), LLAMA_CPP_DEFAULT) if u]
    api_key = os.environ.get("OPENAI_API_KEY") or "no-key"
    tried = []
    for url in dict.fromkeys(candidates):
        try:
            names = _models(url, api_key)
        except (OSError, ValueError) as exc:
            tried.append(f"{url} ({type(exc).__name__})")
            continue
        chosen = model or os.environ.get("OPENAI_MODEL") or (names[0] if names else "default")
        return Endpoint(url, chosen, api_key), f"{url} serving {', '.join(names) or 'unnamed models'}"
    return None, "no OpenAI-compatible server answered: " + "; ".join(tried)
