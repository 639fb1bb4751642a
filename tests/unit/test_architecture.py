"""The layering of ADR 0002 holds."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    """Imports point inward and the inner ring imports no outer library (import-linter)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout


def test_panoramisk_is_imported_by_one_module_only():
    """panoramisk stays behind entrypoints/agi/fastagi.py, the module that owns its bugs."""
    users = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "src").rglob("*.py")
        if any(line.lstrip().startswith(("import panoramisk", "from panoramisk")) for line in p.read_text().splitlines())
    )
    assert users in ([], ["src/callflow/entrypoints/agi/fastagi.py"])
