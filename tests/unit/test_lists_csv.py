"""CSV rows for ``callflow blacklist|vip import``: separators, header, per-row TTL."""
from __future__ import annotations

import io

import pytest

from callflow.entrypoints.commands.lists_csv import numbers_in, write_numbers_with_ttl


@pytest.mark.parametrize("text", [
    "number,note\n0912406496,a;b\n",
    "number;note\n0912406496;a,b\n",
    "number\tnote\n0912406496\ta,b;c\n",
])
def test_the_separator_is_read_off_the_first_row(text: str) -> None:
    assert list(numbers_in(io.StringIO(text))) == [(2, "0912406496", "")]


def test_a_single_column_file_is_read_as_it_is() -> None:
    assert list(numbers_in(io.StringIO("0912406496\n\n+84 987 654 321\n"))) == [
        (1, "0912406496", ""), (3, "+84 987 654 321", "")]


def test_a_ttl_column_is_read_only_under_its_header() -> None:
    assert list(numbers_in(io.StringIO("number;ttl_s\n0912406496;600\n0987654321;\n"))) == [
        (2, "0912406496", "600"), (3, "0987654321", "")]
    assert list(numbers_in(io.StringIO("0912406496,600\n"))) == [(1, "0912406496", "")]


def test_what_export_writes_import_reads_back() -> None:
    out = io.StringIO()
    assert write_numbers_with_ttl(out, [("84912406496", 600), ("84987654321", None)]) == 2
    assert list(numbers_in(io.StringIO(out.getvalue()))) == [(2, "84912406496", "600"), (3, "84987654321", "0")]
