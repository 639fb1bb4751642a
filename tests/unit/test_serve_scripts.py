"""scripts/serve and scripts/callflow run callflow in a runtime environment without the test packages."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["serve", "callflow"])
def test_the_runtime_environment_has_no_test_extra(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text(encoding="utf-8")
    assert re.search(r"EXTRAS=fast\b", text), "installs only the runtime extra"
    assert "test" not in re.findall(r"EXTRAS=(\S+)", text)[0]
    assert ".venv-serve" in text, "its own environment, apart from the tests' .venv"
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)]).returncode == 0


def test_bootstrap_installs_the_extras_it_is_given() -> None:
    text = (ROOT / "scripts" / "bootstrap").read_text(encoding="utf-8")
    assert 'EXTRAS=${EXTRAS:-test,fast}' in text and '-e ".[$EXTRAS]"' in text
