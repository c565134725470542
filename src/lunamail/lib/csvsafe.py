"""Cells that are safe to open in a spreadsheet (the OWASP rule against CSV injection).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Sheets (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``).
Every CSV the product writes passes its cells through :func:`cell`, which prefixes such a
value with a single quote: the spreadsheet shows the text, and nothing runs.  (A value that
starts with CR or tab is written as the quote and the rest, the CR as a space.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["FORMULA_STARTS", "cell", "row"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet shows it without evaluating it (non-strings unchanged).
    Line breaks become spaces first: a bare CR would start a new row whose first cell
    could be a formula again."""
    if not isinstance(value, str):
        return value
    if "\r" in value or "\n" in value:
        value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def row(values: Iterable[Any]) -> list[Any]:
    """Every cell of a row through :func:`cell`."""
    return [cell(v) for v in values]
