"""CSV for people who open it in a spreadsheet: every CSV the site writes goes through `csv_text`.

Model names, usernames and prompts are typed by people, and a spreadsheet runs a cell that starts with
`=`, `+`, `-` or `@` (or a tab or carriage return before one) as a formula. As OWASP recommends for CSV
injection, such a text cell is written with a leading `'`, which spreadsheets show as text. Numbers are
written as numbers: a negative alpha stays -0.092, because only text can carry a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from numbers import Number
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """The cell as written: None is empty, numbers unchanged, text that could start a formula quoted."""
    if value is None:
        return ""
    if isinstance(value, Number):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """Rows (the header first) as CSV text, each cell through `spreadsheet_safe`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()
