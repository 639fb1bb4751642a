"""docs/reference.md and .env.example document every setting and every metric, with the true defaults;
the README's short settings table shows real settings with their true defaults."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import pytest
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr

import callflow.metrics
from callflow.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"CALLFLOW_{name.upper()}": name for name in Settings.model_fields}
REFERENCE = ROOT / "docs" / "reference.md"
HOW_TO_FIX = "add it to docs/reference.md's settings table and to .env.example (name, default, description)"


def plain_default(field: str) -> Optional[str]:
    """The default as an operator writes it, or None when it is computed (paths under the state dir)."""
    info = Settings.model_fields[field]
    if info.default_factory is not None or info.default is None:
        return None
    value = info.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return str(value).lower() if isinstance(value, bool) else str(value)


PLAIN_DEFAULTS = sorted(name for name, field in SETTINGS.items() if plain_default(field) is not None)


def table_settings(page: Path) -> dict[str, str]:
    """{CALLFLOW_NAME: default cell} from the rows of a page's settings table."""
    rows = re.findall(r"^\| `(CALLFLOW_\w+)` \| ([^|]*) \|", page.read_text(encoding="utf-8"), re.M)
    return {name: cell.strip() for name, cell in rows}


def reference_settings() -> dict[str, str]:
    """{CALLFLOW_NAME: default cell} from the rows of docs/reference.md's settings table."""
    return table_settings(REFERENCE)


def env_example() -> dict[str, str]:
    """{CALLFLOW_NAME: value} from .env.example, commented-out lines included."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return dict(re.findall(r"^#? ?(CALLFLOW_\w+)=(.*)$", text, re.M))


def test_reference_table_lists_every_setting_once() -> None:
    """Each Settings field has exactly one row in docs/reference.md's table, and each row is a real setting."""
    rows = re.findall(r"^\| `(CALLFLOW_\w+)` \|", REFERENCE.read_text(encoding="utf-8"), re.M)
    missing = sorted(set(SETTINGS) - set(rows))
    assert not missing, f"undocumented settings {missing}: {HOW_TO_FIX}"
    assert sorted(set(rows) - set(SETTINGS)) == [], "docs/reference.md documents settings that do not exist"
    assert len(rows) == len(set(rows)), "a setting has two rows in docs/reference.md"


@pytest.mark.parametrize("name", PLAIN_DEFAULTS)
def test_reference_shows_the_true_default(name: str) -> None:
    """The default column of docs/reference.md is the Settings default (computed paths have their own text)."""
    assert reference_settings().get(name) == f"`{plain_default(SETTINGS[name])}`", HOW_TO_FIX


def test_readme_short_table_shows_real_settings_with_their_true_defaults() -> None:
    """Each row of the README's short settings table is a real setting, once, with the default the full table gives."""
    rows = re.findall(r"^\| `(CALLFLOW_\w+)` \|", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    assert rows, "the README has a settings table"
    assert sorted(set(rows) - set(SETTINGS)) == [], "README.md shows settings that do not exist"
    assert len(rows) == len(set(rows)), "a setting has two rows in README.md"
    full = reference_settings()
    wrong = {name: cell for name, cell in table_settings(ROOT / "README.md").items() if cell != full.get(name)}
    assert wrong == {}, "README.md's short table shows another default than docs/reference.md"


def test_env_example_lists_every_setting_once() -> None:
    """.env.example names each setting exactly once and nothing that is not a setting."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    names = re.findall(r"^#? ?(CALLFLOW_\w+)=", text, re.M)
    assert sorted(set(SETTINGS) - set(names)) == [], HOW_TO_FIX
    assert sorted(set(names) - set(SETTINGS)) == []
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", PLAIN_DEFAULTS)
def test_env_example_shows_the_true_default(name: str) -> None:
    """A line of .env.example, uncommented, changes nothing (computed paths show an example path)."""
    assert env_example().get(name) == plain_default(SETTINGS[name]), HOW_TO_FIX


def test_env_example_uncommented_is_a_valid_configuration(tmp_path: Path, monkeypatch) -> None:
    """Every line of .env.example uncommented loads into Settings without an error."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_example().items()), encoding="utf-8")
    settings = Settings(_env_file=str(env_file))
    assert settings.data_dir == Path(env_example()["CALLFLOW_DATA_DIR"])


def test_reference_lists_every_metric() -> None:
    """Each metric of callflow/metrics.py is in docs/reference.md under the name Prometheus scrapes."""
    reference = REFERENCE.read_text(encoding="utf-8")
    missing = []
    for metric in vars(callflow.metrics).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            if f"| `{name}` |" not in reference:
                missing.append(name)
    assert missing == [], "add these metrics to docs/reference.md's metrics table"
