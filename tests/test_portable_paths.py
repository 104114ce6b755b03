"""Stored results are shared: no file a run writes names a path of the machine that made it."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from fedx_bench.provenance import portable_paths


def test_portable_paths_replaces_data_root_package_and_home(tmp_path: Path) -> None:
    root = tmp_path / "data"
    home = os.path.expanduser("~")
    pkg = str(Path(__import__("fedx_bench").__file__).resolve().parent)
    got = portable_paths({"a": f"{root}/cifar10/x.tar.gz", "b": [f"{home}/.cache/c"], "c": f"{pkg}/data/e",
                          "d": "rel/path", "e": "/usr/share/x", "n": 3}, str(root))
    assert got == {"a": "<data-root>/cifar10/x.tar.gz", "b": ["~/.cache/c"], "c": "<fedx_bench>/data/e",
                   "d": "rel/path", "e": "/usr/share/x", "n": 3}


REPO = Path(__file__).resolve().parent.parent
_MACHINE_PATH = re.compile(r"(?<![\w<.~])/(?:work|root|home|tmp|Users|mnt|opt|var|private|scratch)/")
_TEXT = {".json", ".jsonl", ".md", ".csv", ".log", ".txt", ".yaml"}


def _committed_text_files() -> list[Path]:
    """The tracked text files of results/ and reports/ (a user's own git-ignored results/local/ is not ours to
    check); every such file when the tree is not a git checkout."""
    out = subprocess.run(["git", "ls-files", "results", "reports"], cwd=REPO, capture_output=True, text=True,
                         check=False)
    if out.returncode == 0:
        paths = [REPO / line for line in out.stdout.splitlines()]
    else:
        paths = [p for d in ("results", "reports") if (REPO / d).is_dir() for p in (REPO / d).rglob("*")]
    files = [p for p in paths if p.suffix in _TEXT and p.is_file()]
    if not files:
        pytest.skip("no stored results next to the tests (installed package)")
    return files


def test_stored_results_and_reports_name_no_machine_path() -> None:
    """What a user clones must not name the directories of the machine that made it."""
    bad = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in _committed_text_files()
           for m in [_MACHINE_PATH.search(p.read_text(errors="replace"))] if m]
    assert not bad, bad[:5]


def test_stored_runs_come_from_committed_trees() -> None:
    """A stored run made by an uncommitted tree cannot be tied to code anyone can check out."""
    envs = sorted((REPO / "results" / "runs").glob("*/env.json"))
    if not envs:
        pytest.skip("no stored runs next to the tests")
    dirty = [e.parent.name for e in envs for env in [json.loads(e.read_text())]
             if str(env.get("git_commit", "")).endswith("-dirty") or (env.get("code") or {}).get("git_dirty")]
    assert not dirty, dirty[:5]
