"""Structural rules of the package (issue 12): what must stay torch-free, how large a module may grow, and that the
scheduler's run processes import this very checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fedx_bench

PACKAGE_DIR = Path(fedx_bench.__file__).resolve().parent
MAX_MODULE_LINES = 600

# Reading the run store, showing where runs stand and building reports need no torch (seconds of import, and the
# design rule that reports read only the store); the scheduler package is what supervisors import: it stays light so
# that a supervisor never crashes with its run.
TORCH_FREE = ["fedx_bench.store", "fedx_bench.status", "fedx_bench.reports", "fedx_bench.procutil",
              "fedx_bench.progress", "fedx_bench.scheduler"]


def test_store_status_reports_and_scheduler_import_no_torch():
    code = ("import sys\n"
            f"for m in {TORCH_FREE!r}:\n"
            "    __import__(m)\n"
            "    assert 'torch' not in sys.modules, f'importing {m} loaded torch'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env())
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_no_module_over_600_lines():
    sizes = {p.relative_to(PACKAGE_DIR).as_posix(): len(p.read_text().splitlines())
             for p in sorted(PACKAGE_DIR.rglob("*.py")) if "__pycache__" not in p.parts}
    assert len(sizes) > 20  # the walk found the package
    offenders = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines (split them by concern): " + ", ".join(
        f"fedx_bench/{name} ({n})" for name, n in sorted(offenders.items()))


def test_run_processes_import_this_checkout():
    """Supervisors put ``PACKAGE_ROOT`` first on a run process's import path: it must be the folder that holds this
    ``fedx_bench`` (moving the scheduler into a package moved its ``__file__`` one level down)."""
    from fedx_bench.scheduler import PACKAGE_ROOT
    from fedx_bench.scheduler.zygote import _child_env

    assert Path(PACKAGE_ROOT) == PACKAGE_DIR.parent
    assert _child_env()["PYTHONPATH"].split(os.pathsep)[0] == PACKAGE_ROOT


def test_scheduler_entry_point_runs_as_module():
    """``python -m fedx_bench.scheduler`` is how a fresh run process and the zygote start: it must resolve to the
    package's entry (a job with no config fails as a KeyError, not an import error)."""
    out = subprocess.run([sys.executable, "-m", "fedx_bench.scheduler"], input="{}", capture_output=True, text=True,
                         timeout=300, env=_env())
    assert out.returncode != 0 and "KeyError: 'config'" in out.stderr, out.stderr[-2000:]
    assert "fedx_bench/scheduler/run_process.py" in out.stderr  # child_main ran from the package module


def _env() -> dict[str, str]:
    """This environment, importing this checkout's ``fedx_bench`` (whatever is installed)."""
    return dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
