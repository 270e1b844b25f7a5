"""Strict JSON: duplicate members, NaN/Infinity and lone surrogates are refused; everything
else parses as `json.loads` would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.wire.strict_json import check_text, loads_strict

# Any code point, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=10,
)


def _valid_unicode(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_valid_unicode(item) for item in value)
    if isinstance(value, dict):
        return all(_valid_unicode(k) and _valid_unicode(v) for k, v in value.items())
    return True


@given(json_values)
def test_any_value_parses_unless_its_text_is_not_unicode(value: Any) -> None:
    text = json.dumps(value)  # ASCII: a surrogate travels as a \\udxxx escape
    if _valid_unicode(value):
        assert loads_strict(text) == json.loads(text)
        assert loads_strict(text.encode()) == json.loads(text)
    else:
        with pytest.raises(ValueError, match="not valid Unicode"):
            loads_strict(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"v": 1, "cmd": "status", "cmd": "pause"}', "duplicate member 'cmd'"),
        ('{"a": {"b": 1, "b": 2}}', "duplicate member 'b'"),
        ('[{"b": 1, "b": 2}]', "duplicate member 'b'"),
        ('{"a": NaN}', "NaN is not JSON"),
        ('{"a": -Infinity}', "-Infinity is not JSON"),
        ('{"camera": "front\\ud83d"}', "member 'camera'"),
        ('{"k\\udc00": 1}', "member name"),
        ('{"a": [["x\\ud83d"]]}', "not valid Unicode"),
        ('"\\ud83d"', "not valid Unicode"),
        ('[1, "\\udfff"]', "not valid Unicode"),
    ],
)
def test_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        loads_strict(text)


def test_a_surrogate_pair_is_one_valid_character() -> None:
    assert loads_strict('{"e": "\\ud83d\\ude00"}') == {"e": "\U0001f600"}


def test_check_text_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"kid 'k\\ud83d' is not valid Unicode"):
        check_text("k\ud83d", "kid")
