"""A brand-new virtual environment with only what pyproject.toml declares imports every
module of ``studio`` (slow: installs torch and the rest, ~3 min on 2 cores).

A package the code imports but pyproject.toml does not name fails here, even on a machine
whose own Python happens to have it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

IMPORT_ALL = r"""
import importlib, pkgutil, sys
import studio
failed = []
for m in pkgutil.walk_packages(studio.__path__, "studio."):
    try:
        importlib.import_module(m.name)
    except Exception as e:  # noqa: BLE001
        failed.append(f"{m.name}: {type(e).__name__}: {e}")
print("\n".join(failed) or "ALL IMPORTED")
sys.exit(1 if failed else 0)
"""


def test_fresh_venv_imports_every_studio_module(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    for cmd in (["-m", "pip", "install", "-q", "torch==2.14.1", "torchvision==0.29.1"],
                ["-m", "pip", "install", "-q", "-e", str(REPO)]):
        r = subprocess.run([py, *cmd], env=env, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([py, "-c", IMPORT_ALL], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "ALL IMPORTED" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
