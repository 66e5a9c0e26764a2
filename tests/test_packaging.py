"""``pip install .`` (README, Running for real): the wheel holds every file the bot reads."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_of_the_packages_is_in_the_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = project["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    package_data = setuptools["package-data"]
    left_out = []
    for package in packages:
        top = ROOT / package
        shipped = {path for pattern in package_data.get(package, []) for path in top.glob(pattern)}
        for path in top.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            # a package's own modules are found by setuptools; everything else is data
            if path.suffix == ".py" and (path.parent / "__init__.py").exists():
                continue
            if path not in shipped:
                left_out.append(str(path.relative_to(ROOT)))
    assert not left_out, f"not in [tool.setuptools.package-data]: {left_out}"
