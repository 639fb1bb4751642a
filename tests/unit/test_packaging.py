"""pyproject.toml builds with the setuptools it allows, in the form setuptools keeps supporting."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python < 3.11: pytest depends on tomli there
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_license_is_an_spdx_expression_string() -> None:
    """``license = { text = ... }`` stops building after 2027-02-18 (setuptools' deprecation): a string it is."""
    license_ = pyproject()["project"]["license"]
    assert isinstance(license_, str)
    assert re.fullmatch(r"LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", license_)
    classifiers = pyproject()["project"].get("classifiers", [])
    assert not [c for c in classifiers if c.startswith("License ::")], "license classifiers conflict with it"


def test_the_build_backend_is_bounded_on_both_sides() -> None:
    """setuptools from 77 (the first that reads an SPDX string) and below a major not yet tried."""
    [requirement] = [r for r in pyproject()["build-system"]["requires"] if r.startswith("setuptools")]
    lower = re.search(r">=\s*([\d.]+)", requirement)
    upper = re.search(r"<\s*([\d.]+)", requirement)
    assert lower and upper, f"{requirement!r} needs both a lower and an upper bound"
    assert _version(lower.group(1)) >= (77,)
    assert _version(upper.group(1)) > _version(lower.group(1))
