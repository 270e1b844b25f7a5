"""Strict JSON for input from outside: what `json.loads` lets through and we refuse.

Python's parser accepts duplicate members (the last one wins, so two readers of the same text
can disagree on what it says), the constants NaN and Infinity (not JSON), and `\\ud83d`
escapes that decode to a lone UTF-16 surrogate (a `str` that cannot be encoded as UTF-8, so it
breaks every file, database and message it reaches later). `loads_strict` refuses all three with
a ValueError that says which, before anything else sees the value.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_SHOWN = 40


def _shown(text: str) -> str:
    shown = ascii(text)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 1] + "…"


def check_text(text: str, what: str = "text") -> str:
    """`text` itself if it is valid Unicode; ValueError naming `what` if not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        surrogate = ascii(exc.object[exc.start])
        raise ValueError(
            f"{what} {_shown(text)} is not valid Unicode (a lone surrogate {surrogate})"
        ) from None
    return text


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        check_text(name, "member name")
        if name in out:
            raise ValueError(f"duplicate member {_shown(name)}")
        if isinstance(value, str):
            check_text(value, f"member {_shown(name)}")
        elif isinstance(value, list):
            _check_list(value)
        out[name] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON text, refusing duplicate members, NaN/Infinity and lone surrogates.

    ValueError (or RecursionError for absurd nesting) says what is wrong.
    """
    obj = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    if isinstance(obj, str):
        check_text(obj)
    elif isinstance(obj, list):
        _check_list(obj)
    return obj


def _check_list(items: list[Any]) -> None:
    # Objects anywhere were checked by the hook as they were built; arrays' own strings not.
    for item in items:
        if isinstance(item, str):
            check_text(item, "an array item")
        elif isinstance(item, list):
            _check_list(item)
