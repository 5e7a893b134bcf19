"""The import-linter contracts of pyproject.toml (DESIGN.md, "Layers") hold: imports point down only."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def test_import_contracts_are_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed (pip install -e '.[dev]')")
    p = subprocess.run(
        [str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "2 kept, 0 broken" in p.stdout
