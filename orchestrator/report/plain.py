"""Plain text for output that is not a terminal (a pipe, a file, a CI log): no rich, no boxes, no wrapping.

`list` piped to grep or a file gets one line per scenario, columns padded with spaces.
"""
from __future__ import annotations

from collections.abc import Sequence


def text_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A title line, a header line and one line per row; every column but the last padded to its widest cell."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([title, line(headers), *(line(r) for r in rows)]) + "\n"
