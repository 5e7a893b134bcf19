"""Style and layout bars of the code base, checked in the test suite: ruff (lint and format, line length 120,
configured in pyproject.toml), the size of modules and functions in ``src/``, and unique class names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict

import pytest

from conftest import ROOT

PATHS = ["src", "tests", "benchmarks", "train.py", "generate.py"]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# functions allowed to be longer, each with the reason in its docstring
LONG_FUNCTIONS: set[str] = set()


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(ROOT / ".venv" / "bin")) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: `bash scripts/setup.sh` installs the dev extra")
    return [exe]


def test_ruff_lint_passes():
    p = subprocess.run(
        _ruff() + ["check", "--output-format", "concise", *PATHS], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_ruff_format_is_applied():
    p = subprocess.run(_ruff() + ["format", "--check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, "run `ruff format`: " + p.stdout[-4000:]


def _sources():
    return sorted((ROOT / "src").rglob("*.py"))


def test_modules_and_functions_stay_readable():
    too_long, long_funcs = [], []
    for f in _sources():
        text = f.read_text()
        rel = f.relative_to(ROOT)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in LONG_FUNCTIONS:
                    long_funcs.append(f"{rel}:{node.name} ({n} lines)")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
    assert not long_funcs, f"functions over {MAX_FUNCTION_LINES} lines: {long_funcs}"


def test_no_two_classes_share_a_name():
    where = defaultdict(list)
    for f in _sources():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(str(f.relative_to(ROOT)))
    dup = {k: v for k, v in where.items() if len(v) > 1}
    assert not dup, f"class names used twice: {dup}"


def test_the_pruning_task_only_wires():
    assert (ROOT / "src/gnnzoo/pruning/task.py").read_text().count("\n") <= 200


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
