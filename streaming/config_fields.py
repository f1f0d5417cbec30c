"""How a setting is declared and read: a dataclass field bound to an environment variable, its
bounds, and the parsing that checks a raw value against them (for :mod:`streaming.config`)."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration variable holds a value outside its allowed range."""

    def __init__(self, name: str, value: str, allowed: str) -> None:
        super().__init__(f"{name}={value!r} is invalid: allowed {allowed}")
        self.name = name
        self.value = value
        self.allowed = allowed


def setting(
    env_name: str,
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """Declare a field bound to an environment variable with its bounds."""
    meta = {"env": env_name, "low": low, "high": high, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)


def allowed_values(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta["choices"]:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    if f.type in ("bool", bool):
        return "1/0, true/false, yes/no, on/off"
    if meta["low"] is not None:
        return f"{_number(meta['low'])}..{_number(meta['high'])}"
    return "any text"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(f: dataclasses.Field, raw: str) -> Any:
    meta = f.metadata
    name, allowed = meta["env"], allowed_values(f)
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "bool":
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, raw, allowed)
    if kind in ("int", "float"):
        try:
            value: float = int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ConfigError(name, raw, allowed) from None
        if value != value or (meta["low"] is not None and not meta["low"] <= value <= meta["high"]):
            raise ConfigError(name, raw, allowed)
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(name, raw, allowed)
        return value
    if meta["choices"] and raw not in meta["choices"]:
        raise ConfigError(name, raw, allowed)
    return raw
