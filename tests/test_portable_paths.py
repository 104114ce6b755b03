"""Stored results are shared: no file a run writes names a path of the machine that made it."""

import os
from pathlib import Path

from fedx_bench.provenance import portable_paths


def test_portable_paths_replaces_data_root_package_and_home(tmp_path: Path) -> None:
    root = tmp_path / "data"
    home = os.path.expanduser("~")
    pkg = str(Path(__import__("fedx_bench").__file__).resolve().parent)
    got = portable_paths({"a": f"{root}/cifar10/x.tar.gz", "b": [f"{home}/.cache/c"], "c": f"{pkg}/data/e",
                          "d": "rel/path", "e": "/usr/share/x", "n": 3}, str(root))
    assert got == {"a": "<data-root>/cifar10/x.tar.gz", "b": ["~/.cache/c"], "c": "<fedx_bench>/data/e",
                   "d": "rel/path", "e": "/usr/share/x", "n": 3}

