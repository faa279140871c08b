"""The house's layering (docs/architecture.md), checked on every `make test`.

import-linter runs the contracts of ``pyproject.toml`` (stages import only downwards, private
modules stay inside their package, no cycles inside a package; imports inside functions count).
The same contracts must fail on a copy of the code with one deliberate back-edge, so the check
can fail. A second check, by AST, forbids importing another package's ``_private`` *names*
(import-linter sees modules only).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "profiles", "devices", "converters", "runtimes", "profiler", "edgeship")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINT.exists():
        pytest.skip(f"import-linter is not installed in {sys.prefix} (`make setup` installs it)")
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_the_layering_contracts_hold() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "3 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("module", "edge", "contract"), [
    ("converters/_util.py", "from runtimes import ship_bundle", "Stages import only downwards"),
    ("core/paths.py", "import profiles", "Stages import only downwards"),
    ("edgeship/deploy.py", "from converters._isolate import LeftOut", "_private modules"),
    ("converters/verify.py", "from converters.pipeline import prepare_reference",
     "No import cycles"),
])
def test_a_back_edge_breaks_them(tmp_path: Path, module: str, edge: str, contract: str) -> None:
    """A copy of the code with one forbidden import added (inside a function, like a lazy import)."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n\ndef _back_edge() -> None:\n    {edge}\n")
    res = _lint(tmp_path)
    assert res.returncode != 0, res.stdout[-2000:]
    broken = res.stdout[res.stdout.index("Broken contracts"):]
    assert contract in broken, broken[:2000]


def _private_name_imports() -> list[str]:
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                top = node.module.split(".")[0]
                if top in PACKAGES and top != pkg:
                    found += [f"{path.relative_to(ROOT)}: from {node.module} import {a.name}"
                              for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_package_imports_another_packages_private_names() -> None:
    assert _private_name_imports() == []
