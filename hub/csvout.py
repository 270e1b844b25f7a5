"""CSV exports that are safe to open in a spreadsheet: a cell that would start with `=`, `+`,
`-`, `@`, a tab or a carriage return is prefixed with `'` (OWASP's advice against formula
injection), since names, reasons and details come from sites and analysts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)  # a negative number stays a number
        except ValueError:
            return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return out.getvalue()
