"""Key paths of scenario data: ``--set key.path=value`` and ``--param key.path=v1,v2``.

Key paths are dotted; list items are chosen by index or by name:
``apps[0].replicas``, ``apps.0.replicas`` and ``apps.web.replicas`` all name the
replicas of the first app if it is called ``web`` (hosts by ``type``). Values are
TOML values (``7200``, ``true``, ``[1, 2]``) or bare text (``vm``).
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from fleet_sim.errors import ConfigError

_TOKEN = re.compile(r"[^.\[\]]+|\[(\d+)\]")


def parse_path(path: str, file: str = "--set") -> list[str | int]:
    """``"apps[0].workloads.1.rate_per_s"`` → ``["apps", 0, "workloads", 1, "rate_per_s"]``."""
    if not path or path.startswith(".") or path.endswith(".") or ".." in path:
        raise ConfigError(file, path or "(empty)", "not a key path",
                          "dotted keys like run.duration_s or apps.web.replicas")
    tokens: list[str | int] = []
    for m in _TOKEN.finditer(path):
        text = m[1] if m[1] is not None else m[0]
        tokens.append(int(text) if text.isdigit() else text)
    return tokens


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML value if it parses as one (number, bool, array,
    inline table, quoted string), else the text itself (``vm`` → ``"vm"``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key.path=value"`` → (key path, parsed value); ConfigError if malformed."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "expected key.path=value",
                          "e.g. run.duration_s=7200 or hosting.mode=vm")
    return key.strip(), parse_value(value.strip())


def split_values(text: str) -> list[Any]:
    """``"1,2,[3,4]"`` → ``[1, 2, [3, 4]]``: split at top-level commas, parse each value."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [parse_value(p.strip()) for p in parts]


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any],
                    file: str = "--set") -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.path → value`` set (tables created as needed).

    List items are picked by index or by their ``name`` (apps) or ``type`` (hosts).
    """
    out = copy.deepcopy(dict(data))
    for path, value in overrides.items():
        tokens = parse_path(path, file)
        node: Any = out
        for k, token in enumerate(tokens):
            last = k == len(tokens) - 1
            if isinstance(node, list):
                index = _list_index(node, token, path, tokens[:k], file)
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if isinstance(token, int):
                    raise ConfigError(f"{file} (--set)", path, f"{display_path(tokens[:k])} is "
                                      "a table, not an array", "a key name")
                if last:
                    node[token] = value
                else:
                    node = node.setdefault(token, {})
            else:
                raise ConfigError(f"{file} (--set)", path, f"{display_path(tokens[:k])} is a "
                                  f"value ({as_json(node)}), not a table", "a path to a value")
    return out


def _list_index(items: list[Any], token: str | int, path: str, prefix: list[str | int],
                file: str) -> int:
    if isinstance(token, int):
        if token < len(items):
            return token
        raise ConfigError(f"{file} (--set)", path, f"{display_path(prefix)} has {len(items)} "
                          f"entries, no [{token}]", f"an index below {len(items)}")
    for i, item in enumerate(items):
        if isinstance(item, dict) and token in (item.get("name"), item.get("type"),
                                                item.get("app")):
            return i
    names = [str(it.get("name", it.get("type", it.get("app")))) for it in items
             if isinstance(it, dict)]
    raise ConfigError(f"{file} (--set)", path, f"no entry named {as_json(token)} in "
                      f"{display_path(prefix)}", ", ".join(names) or "an index")


def as_json(value: Any) -> str:
    """``value`` as JSON text for messages (its repr if it is not JSON)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def display_path(path: Iterable[Any]) -> str:
    """``["apps", 0, "replicas"]`` → ``"apps[0].replicas"``."""
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out
