"""The project installs as a package: pinned dependencies that agree with the lock, serving
code that never imports the model build's packages, and no sys.path edits anywhere."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_ONLY = ("torch", "safetensors", "onnxscript", "jamdict", "training")


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        assert match, f"not pinned exactly: {line!r}"
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return pins


def test_every_direct_dependency_is_pinned_and_matches_the_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    locked = _pins((ROOT / "constraints.txt").read_text().splitlines())
    mismatched = {name: (version, locked.get(name)) for name, version in direct.items() if locked.get(name) != version}
    assert not mismatched, f"pyproject.toml and constraints.txt disagree: {mismatched}"
    assert project["scripts"]["router"] == "router.__main__:main"


def test_serving_code_imports_nothing_from_the_model_build() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in ("router", "storage") for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts and p.name != "__main__.py"
    )
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n    importlib.import_module(name)\n"
              f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BUILD_ONLY!r}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"serving code imported build-time modules: {out.stdout}"
    assert len(modules) > 30  # the walk found the package


def test_no_module_edits_sys_path() -> None:
    offenders = [str(p.relative_to(ROOT)) for folder in ("router", "storage", "training", "bench", "pages", "tests")
                 for p in (ROOT / folder).rglob("*.py") if "sys.path." in p.read_text(encoding="utf-8")
                 and p.name != "test_packaging.py"]
    assert offenders == []
