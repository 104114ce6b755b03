"""The built wheel ships the bundled suites as package data: `list suites` (with descriptions) and `run quickstart`
(here as a dry run) work from a non-editable install, with the same run ids as the checkout."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fedx_bench.config import load_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # without build isolation when setuptools is here (fast, offline); else pip fetches it into an isolated env
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(tmp / "dist"),
                    str(REPO)], check=True, capture_output=True, text=True, timeout=300)
    [whl] = list((tmp / "dist").glob("fedx_bench-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(tmp / "site"), str(whl)], check=True, capture_output=True, text=True, timeout=300)
    return whl, tmp / "site"


def _cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))  # the installed copy first: not the checkout
    return subprocess.run([sys.executable, "-m", "fedx_bench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_wheel_contains_the_suites_and_data(installed):
    whl, _ = installed
    names = set(zipfile.ZipFile(whl).namelist())
    for p in (REPO / "suites").glob("*.yaml"):
        assert f"fedx_bench/suites/{p.name}" in names
    assert "fedx_bench/data/embedded/cifar10_quickstart.npz" in names
    assert "fedx_bench/reports/paper_numbers.json" in names
    assert not any(n.startswith(("tests/", "results/", "suites/")) for n in names)


def test_list_and_run_quickstart_from_the_install(installed, tmp_path):
    _, site = installed
    probe = subprocess.run([sys.executable, "-c", "import fedx_bench; print(fedx_bench.__file__)"], cwd=tmp_path,
                           env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().startswith(str(site)), probe.stdout
    ls = _cli(site, "list", "suites", cwd=tmp_path)
    assert ls.returncode == 0, ls.stderr
    line = next(x for x in ls.stdout.splitlines() if x.startswith("quickstart "))
    assert "embedded CIFAR-10" in line
    dry = _cli(site, "run", "quickstart", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    for run in load_suite(REPO / "suites" / "quickstart.yaml").runs:
        assert run.run_id in dry.stdout
    assert not (tmp_path / "results").exists()
