"""CSV exports open safely in a spreadsheet: a cell that would be a formula is quoted."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from hub.csvout import cell, to_csv


def test_formulas_are_neutralised_numbers_are_not() -> None:
    assert cell('=HYPERLINK("http://evil")').startswith("'=")
    assert cell("+1+1").startswith("'")
    assert cell("@SUM(A1)").startswith("'")
    assert cell("-3.5") == "-3.5"
    assert cell(None) == "" and cell(12) == "12"


@given(st.lists(st.lists(st.text(max_size=20), min_size=2, max_size=2), max_size=5))
def test_round_trip(rows: list[list[str]]) -> None:
    text = to_csv(("a", "b"), rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["a", "b"] and len(parsed) == len(rows) + 1
    for got, want in zip(parsed[1:], rows, strict=True):
        assert got == [cell(v) for v in want]
        assert not any(v.startswith(("=", "+", "@")) for v in got)
