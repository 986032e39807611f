"""A resolved config (nested dicts and lists, as in ``manifest.json``) written as TOML.

Tables become ``[a.b]`` headers, lists of tables ``[[apps]]`` (nested lists of
tables follow their parent, as in a scenario file), small tables of plain values
(distributions, power models) stay inline. TOML has no null: a key whose value
is None is written as a comment, ``# key = (not set)``. ``tomllib.loads`` of the
text gives the config back without its None values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

#: a table of at most this many plain values is written inline
INLINE_KEYS = 4
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _plain(value: Any) -> bool:
    return not isinstance(value, Mapping) and not _table_list(value)


def _table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _inline(value: Any) -> bool:
    return (isinstance(value, Mapping) and len(value) <= INLINE_KEYS
            and all(_plain(v) and not isinstance(v, list) for v in value.values()))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()
                                if v is not None) + " }"
    return json.dumps(str(value))


def dumps(config: Mapping[str, Any]) -> str:
    """``config`` as TOML text."""
    return "\n".join(_table(config, [])).strip() + "\n"


def _table(data: Mapping[str, Any], path: list[str]) -> list[str]:
    lines = []
    for k, v in data.items():
        if v is None:
            lines.append(f"# {_key(str(k))} = (not set)")
        elif _plain(v) or _inline(v):
            lines.append(f"{_key(str(k))} = {_value(v)}")
    for k, v in data.items():
        if v is None or _plain(v) or _inline(v):
            continue
        where = [*path, _key(str(k))]
        if isinstance(v, Mapping):
            lines += ["", f"[{'.'.join(where)}]", *_table(v, where)]
        else:
            for item in v:
                lines += ["", f"[[{'.'.join(where)}]]", *_table(item, where)]
    return lines
