"""Where in a document an issue is (``pools[0].ips[1].holders[0]``), and what a value loaded as."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

__all__ = ["DICT_SECTIONS", "Loc", "describe", "format_path"]

#: A path into the document: keys and list positions from the top.
Loc = tuple[Any, ...]

# The two sections that are mappings keyed by user text (zone names contain dots).
DICT_SECTIONS = ("server_states", "zones")


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (_dt.date, _dt.time)):
        return key.isoformat()
    return repr(key)


def format_path(loc: Loc) -> str:
    """``('pools', 0, 'ips', 1, 'holders', 0)`` -> ``pools[0].ips[1].holders[0]``.

    Keys of the two mapping sections are written in brackets, JSON-quoted, because zone names contain
    dots: ``zones["example.com"]``, ``server_states["lhr01-s002"]``.
    """
    out: list[str] = []
    for k, part in enumerate(loc):
        if k == 1 and loc[0] in DICT_SECTIONS:
            out.append(f"[{_key_text(part)}]")
        elif isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        else:
            out.append(("." if out else "") + str(part))
    return "".join(out)


def describe(value: Any) -> str:
    """What a value loaded as, in the words of the file formats."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "the boolean true" if value else "the boolean false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return f"the date/time {value.isoformat()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a {type(value).__name__}"
