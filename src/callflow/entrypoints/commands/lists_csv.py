"""CSV in and out for ``callflow blacklist|vip import|export``.

Import reads the first column of each row; blank rows are skipped; a first row whose first cell has
letters and no digit is a header. When that header names a second column ``ttl_s``, its cells are each
row's TTL in seconds (what an export of the blacklist writes: an import restores each entry's remaining
time). Columns are separated by ``,``, or by ``;`` or a tab when the first row has more of those than
commas (spreadsheets in many locales write ``;``). Excel's UTF-8 byte order mark is tolerated, in a
file and on standard input; a row the CSV reader cannot read (a field over its 128 KiB limit) is
``UnreadableCsv``. Export writes a ``number`` header (and ``ttl_s`` for the blacklist), then one row per
number, to a temporary file renamed into place once complete.
"""
from __future__ import annotations

import csv
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Optional, TextIO

HEADER = "number"
TTL_HEADER = "ttl_s"
_DELIMITERS = ",;\t"
_BOM = "\ufeff"


class UnreadableCsv(ValueError):
    """The CSV reader gave up on a row (``line N: why``)."""


def numbers_in(stream: TextIO) -> Iterator[tuple[int, str, str]]:
    """``(line, first cell, TTL cell or "")`` for every non-blank row, the header row left out."""
    first = stream.readline().lstrip(_BOM)  # standard input is not opened as utf-8-sig
    reader = csv.reader(itertools.chain([first], stream), delimiter=_delimiter(first))
    ttl_column = False
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnreadableCsv(f"line {reader.line_num}: {exc}") from None
        cell = row[0].strip() if row else ""
        if not cell:
            continue
        if reader.line_num == 1 and _is_header(cell):
            ttl_column = len(row) > 1 and row[1].strip().lower() == TTL_HEADER
            continue
        yield reader.line_num, cell, (row[1] if ttl_column and len(row) > 1 else "")


def _delimiter(first_line: str) -> str:
    """``,`` unless the first row has more ``;`` (or tabs) than commas."""
    return max(_DELIMITERS, key=lambda d: (first_line.count(d), d == ","))


def _is_header(cell: str) -> bool:
    return any(c.isalpha() for c in cell) and not any(c.isdigit() for c in cell)


@contextmanager
def opened_for_reading(path: str) -> Iterator[TextIO]:
    """``path`` as text (``-``: standard input)."""
    if path == "-":
        yield sys.stdin
        return
    with open(path, encoding="utf-8-sig", newline="") as stream:
        yield stream


@contextmanager
def opened_for_writing(path: Optional[str]) -> Iterator[IO[str]]:
    """Standard output, or ``path`` written whole or not at all (temporary file, then rename)."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)  # gone after the rename; left behind only by a failure


def write_numbers(stream: IO[str], numbers: Iterable[str]) -> int:
    """The header and one row per number; returns how many rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([HEADER])
    count = 0
    for number in numbers:
        writer.writerow([number])
        count += 1
    return count


def write_numbers_with_ttl(stream: IO[str], rows: Iterable[tuple[str, Optional[int]]]) -> int:
    """The header with ``ttl_s`` and one row per (number, seconds left; None: no expiry, written 0 as
    ``--ttl 0`` means); returns how many rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([HEADER, TTL_HEADER])
    count = 0
    for number, ttl in rows:
        writer.writerow([number, ttl or 0])
        count += 1
    return count
