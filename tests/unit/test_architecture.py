"""The layering of ADR 0002 holds."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    """Imports point inward and the inner ring imports no outer library (import-linter)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken" in result.stdout


def test_panoramisk_is_imported_by_no_module():
    """The AGI layer is callflow's own (ADR 0135): panoramisk is no dependency, so an import of it would
    fail where it is not installed."""
    users = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "src").rglob("*.py")
        if any(line.lstrip().startswith(("import panoramisk", "from panoramisk")) for line in p.read_text().splitlines())
    )
    assert users == []


def test_the_service_layer_declares_only_ports_its_use_cases_call():
    """Every Protocol of service_layer/ports.py is named by a use case; the ports behind the delivery
    (outbox, publisher, monitor) live with it in adapters/delivery (ADR 0130)."""
    layer = ROOT / "src" / "callflow" / "service_layer"
    protocols = [
        node.name for node in ast.parse((layer / "ports.py").read_text()).body
        if isinstance(node, ast.ClassDef) and any(getattr(base, "id", None) == "Protocol" for base in node.bases)
    ]
    use_cases = [p.read_text() for p in layer.glob("*.py") if p.name not in ("ports.py", "__init__.py")]
    uncalled = [name for name in protocols if not any(re.search(rf"\b{name}\b", text) for text in use_cases)]
    assert protocols and uncalled == []
