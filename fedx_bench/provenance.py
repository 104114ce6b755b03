"""Which code made a run: package version, git commit, dirty flag and sha256 hashes of the package's source files
(so an install without git is covered too). Stored as ``env.json``'s ``code`` record; torch-free.

Two hashes: ``source_sha256`` over every ``.py`` file of the ``fedx_bench`` package, and ``numerics_sha256`` over
the files that can change a run's numbers — every ``.py`` file except ``NUMERICS_NEUTRAL`` (reports, command line,
status and progress display). Two runs whose ``numerics_sha256`` agree were trained and evaluated by the same code.
Runs stored before this record existed carry only ``git_commit`` (``<sha>`` or ``<sha>-dirty``): a clean commit
identifies its code, a dirty one does not (``code_version`` says so).
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
# Package paths (relative to fedx_bench/) that never change a run's numbers: reading and display code only.
NUMERICS_NEUTRAL: tuple[str, ...] = (
    "reports/", "cli.py", "status.py", "progress.py", "provenance.py", "procutil.py", "listing.py",
)


def _source_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(PACKAGE_DIR).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _neutral(p: Path) -> bool:
    rel = p.relative_to(PACKAGE_DIR).as_posix()
    return any(rel == n or (n.endswith("/") and rel.startswith(n)) for n in NUMERICS_NEUTRAL)


def _git(args: list[str]) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    """The fedx-bench checkout's commit, ``<sha>`` or ``<sha>-dirty`` (tracked files edited anywhere in the tree);
    None outside a git tree. Stored as ``env.json``'s ``git_commit`` (what runs stored before ``code`` carry)."""
    commit = _git(["rev-parse", "HEAD"])
    if not commit:
        return None
    dirty = _git(["status", "--porcelain", "--untracked-files=no"])
    return commit + ("-dirty" if dirty else "")


@lru_cache(maxsize=1)
def code_record() -> dict[str, Any]:
    """``{"version", "git_commit", "git_dirty", "source_sha256", "numerics_sha256", "files"}`` of the running code.
    ``git_commit``/``git_dirty`` are None outside a git checkout (the hashes still identify the code)."""
    from . import __version__

    files = _source_files()
    commit = _git(["rev-parse", "HEAD"])
    dirty: bool | None = None
    if commit:
        status = _git(["status", "--porcelain", "--untracked-files=no", "--", "."])
        dirty = bool(status) if status is not None else None
    return {"version": __version__, "git_commit": commit or None, "git_dirty": dirty,
            "source_sha256": _hash(files), "numerics_sha256": _hash([p for p in files if not _neutral(p)]),
            "files": len(files)}


def code_version(env: dict[str, Any] | None) -> str:
    """A short label of the code that made a run, from its env.json: ``src:<numerics hash[:12]>`` when the run
    recorded source hashes, ``git:<commit[:12]>`` for a clean commit, ``git:<commit[:12]>-dirty`` (unknown edits)
    or ``unknown``."""
    env = env or {}
    code = env.get("code") or {}
    if code.get("numerics_sha256"):
        return "src:" + str(code["numerics_sha256"])[:12]
    commit = str(env.get("git_commit") or "")
    if not commit:
        return "unknown"
    sha, _, rest = commit.partition("-")
    return f"git:{sha[:12]}" + ("-dirty" if rest else "")


def same_code(env: dict[str, Any] | None, current: dict[str, Any] | None = None) -> bool | None:
    """Whether a stored run was made by code that computes the same numbers as the current code: True / False, or
    None when it cannot be told (the run predates source hashes and its commit is dirty, absent or unknown here)."""
    cur = current or code_record()
    env = env or {}
    code = env.get("code") or {}
    if code.get("numerics_sha256"):
        return code["numerics_sha256"] == cur["numerics_sha256"]
    commit = str(env.get("git_commit") or "")
    if not commit or commit.endswith("-dirty") or not cur.get("git_commit"):
        return None
    return _numerics_unchanged_since(commit)


@lru_cache(maxsize=256)
def _numerics_unchanged_since(commit: str) -> bool | None:
    """git: do the numerics-relevant package files of ``commit`` equal the working tree's? None if unknown."""
    excludes = [f":(exclude){n}" for n in NUMERICS_NEUTRAL]
    try:
        out = subprocess.run(["git", "diff", "--quiet", commit, "--", ".", *excludes], cwd=PACKAGE_DIR,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(out.returncode)


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``; None when unknown."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


#: The env.json ``device`` fields that name the CPU's kernels: CPU results are bit-exact only where they agree.
CPU_KEYS = ("cpu_model", "cpu_capability")


def cpu_mismatch(stored_env: dict[str, Any] | None, current_device: dict[str, Any]) -> str | None:
    """Why a CPU re-run may legitimately differ from a stored run: the stored run was made on another CPU type,
    or did not record its CPU (runs stored before ``cpu_model``/``cpu_capability`` existed). None when both
    record the same CPU. Why: torch picks its CPU kernels (vector ISA, oneDNN algorithms) per CPU type, so
    floating-point results are bit-exact only on the same type (measured: the stored quickstart's round-1 FedX
    loss 7.098101 vs 7.097443 re-run by the same commit on an AVX512 machine)."""
    dev = (stored_env or {}).get("device") or {}
    if (dev.get("type") or "cpu") != "cpu":
        return None
    stored = {k: dev.get(k) for k in CPU_KEYS}
    now = {k: current_device.get(k) for k in CPU_KEYS}
    if not any(stored.values()):
        return ("the stored run does not record its CPU type (stored before cpu_model was recorded); CPU results "
                "are bit-exact only on the same CPU type")
    if stored != now:
        def name(d: dict[str, Any]) -> str:
            return f"{d.get('cpu_model') or '?'} ({d.get('cpu_capability') or '?'})"

        return (f"stored on another CPU type, {name(stored)}, re-run on {name(now)}; CPU results are bit-exact "
                "only on the same CPU type")
    return None


def portable_paths(obj: Any, data_root: str | None = None) -> Any:
    """``obj`` with every absolute path of this machine made portable: under the data root → ``<data-root>/…``,
    inside this package → ``<fedx_bench>/…``, under the home directory → ``~/…``. Stored results are shared, so no
    committed file may name a path of the machine that made it (the numbers never depend on these strings)."""
    import os

    prefixes = []
    if data_root:
        prefixes.append((os.path.realpath(data_root), "<data-root>"))
        prefixes.append((os.path.abspath(data_root), "<data-root>"))
    prefixes.append((str(Path(__file__).resolve().parent), "<fedx_bench>"))
    prefixes.append((os.path.expanduser("~"), "~"))

    def fix(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, str) and v.startswith("/"):
            for pre, name in prefixes:
                if pre not in ("", "/") and (v == pre or v.startswith(pre.rstrip("/") + "/")):
                    return name + v[len(pre.rstrip("/")):]
        return v

    return fix(obj)
