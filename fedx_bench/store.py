"""The run store: ``results/runs/<run_id>/`` — the contract between training and reporting.

Files per run: ``spec.json`` (resolved config, hash, protocol versions), ``env.json`` (provenance),
``partition.json``, ``metrics.jsonl`` (one line per evaluated/trained round), ``eval.json`` (Last/Best
summary), ``status.json`` (pending/running/done/failed, with traceback on failure) and
``checkpoint.pt`` while a run is unfinished. Every write is atomic (temp file + rename), so a crash
never leaves a half-written file behind.

Torch-free file handling only (the scheduler's supervisors, ``status`` and ``reports`` import it without loading
torch): checkpoints are written and loaded by ``fedx_bench.checkpoint``, ``env.json`` is recorded by
``fedx_bench.environment`` — the code that runs models.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

STORE_VERSION = "v1"
TMP_SUFFIX = ".tmp"
# errnos of a results directory that cannot take a write: reported as one line naming the file, never a traceback
STORE_WRITE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a new result file: what ``open()`` would give (0666 minus the umask), not ``mkstemp``'s 0600, so a
    shared results directory stays readable to colleagues."""
    return 0o666 & ~_umask()


def _named(e: OSError, path: Path) -> OSError:
    """The same error, naming the destination file instead of its temp file (one line for the user)."""
    out = OSError(e.errno, e.strerror or str(e), str(path))
    out.__cause__ = None
    return out


def _mkstemp(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, file_mode())
    except OSError:  # pragma: no cover - a filesystem without modes
        pass
    return fd, tmp


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via a temp file in the same folder and ``os.replace``: readers see old or new, never half. ``write``
    fills the open binary file (bytes, JSON, or a checkpoint from the code that runs models). A failed write (disk
    full, read-only) leaves the old file untouched and raises an ``OSError`` naming ``path``."""
    try:
        fd, tmp = _mkstemp(path)
    except OSError as e:
        raise _named(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``data`` written atomically (see ``atomic_write_with``)."""
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def is_store_write_error(e: BaseException) -> bool:
    """A results directory that cannot be written (disk full, read-only, no permission, quota)."""
    return isinstance(e, OSError) and e.errno in STORE_WRITE_ERRNOS


def one_line_error(e: BaseException) -> str:
    """``Type: message`` on one line (what ``status.json`` and the suite summary show)."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from the store, or ``{}``: missing, unreadable, not UTF-8, not JSON or not an object reads as
    unknown, never a traceback (status display, reference checks)."""
    try:
        out = read_json(path, {})
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREV = "checkpoint.prev.pt"  # the one before: the fallback when the latest is damaged
RESULT_FILES = ("spec.json", "eval.json", "metrics.jsonl", "status.json")


class RunDir:
    """One run's folder and its files."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = root / "runs" / run_id

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def status(self) -> dict[str, Any]:
        st = read_json(self.file("status.json"), {"state": "pending"})
        return st if isinstance(st, dict) else {"state": "pending"}

    def set_status(self, state: str, **fields: Any) -> None:
        rec = dict(self.status)
        rec.update(fields)
        rec["state"] = state
        rec["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(self.file("status.json"), rec)

    def is_done(self) -> bool:
        """Done only when every result file parses and they agree (see ``inspect_run``)."""
        return inspect_run(self.path)[0] == "done"

    def clean_temp(self) -> None:
        """Remove temp files a killed writer left behind (``.status.json.XXXX.tmp``); call only while holding the
        run's lock, when nobody else writes this folder."""
        if self.path.is_dir():
            for p in self.path.glob(f".*{TMP_SUFFIX}"):
                p.unlink(missing_ok=True)

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` whole (atomic); it is small (one line per round)."""
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_bytes(self.file("metrics.jsonl"), data.encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        p = self.file("metrics.jsonl")
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    def drop_checkpoints(self) -> None:
        for name in (CHECKPOINT, CHECKPOINT_PREV):
            self.file(name).unlink(missing_ok=True)


def _read_strict(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, problem naming the file)."""
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, f"{path.name} is not valid JSON ({type(e).__name__}: {str(e)[:80]})"
    except OSError as e:
        return None, f"{path.name} cannot be read ({e.strerror})"


def inspect_run(path: str | Path) -> tuple[str, str | None]:
    """Where a stored run stands, checked from its files: ``(state, problem)``.

    ``state`` is the recorded one (pending, running, failed, interrupted, done) except that a run recorded done
    is ``damaged`` unless ``spec.json``, ``eval.json``, ``metrics.jsonl`` and ``status.json`` all parse and agree
    (run id = folder name, the same number of rounds everywhere, one metrics line per trained round). ``problem``
    says what is wrong (file and why) for a damaged run, and for a run whose ``spec.json`` is unreadable; else None.
    Reports call this to name every run they leave out and why; the scheduler re-runs a damaged run.
    """
    path = Path(path)
    run_id = path.name
    st, st_problem = _read_strict(path / "status.json")
    state = st.get("state", "pending") if isinstance(st, dict) else "pending"
    spec, spec_problem = _read_strict(path / "spec.json")
    if spec_problem is None and not (isinstance(spec, dict) and spec.get("run_id") == run_id):
        spec_problem = f"spec.json records run id {spec.get('run_id') if isinstance(spec, dict) else None!r}"
    if state != "done":
        if st_problem is not None and (path / "status.json").exists():
            return "damaged", st_problem
        return state, spec_problem if (path / "spec.json").exists() else None
    if spec_problem is not None:
        return "damaged", spec_problem
    try:
        rounds = int(spec["config"]["federation"]["rounds"])
    except (KeyError, TypeError, ValueError):
        return "damaged", "spec.json has no config.federation.rounds"
    ev, problem = _read_strict(path / "eval.json")
    if problem is not None:
        return "damaged", problem
    if not isinstance(ev, dict) or not isinstance(ev.get("metrics"), dict):
        return "damaged", "eval.json has no metrics"
    if "rounds" in ev and ev["rounds"] != rounds:  # (written by every run; hand-made stores may omit it)
        return "damaged", f"eval.json says {ev.get('rounds')} rounds, spec.json {rounds}"
    if st.get("round") not in (None, rounds):
        return "damaged", f"status.json says done after round {st.get('round')} of {rounds}"
    try:
        text = (path / "metrics.jsonl").read_text()
    except OSError as e:
        return "damaged", f"metrics.jsonl cannot be read ({e.strerror or e})"
    seen: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            seen.append(int(rec["round"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return "damaged", f"metrics.jsonl line {n} is not a metrics record"
    trained = [r for r in seen if r > 0]
    if trained != list(range(1, rounds + 1)):
        return "damaged", f"metrics.jsonl holds rounds {_ranges(trained)}, expected 1-{rounds}"
    return "done", None


def _ranges(xs: list[int]) -> str:
    if not xs:
        return "none"
    if xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}-{xs[-1]}" if len(xs) > 1 else str(xs[0])
    return ",".join(map(str, xs[:12])) + ("..." if len(xs) > 12 else "")


def left_out_runs(*roots: str | Path) -> list[tuple[str, str, str]]:
    """``(run_id, state, why)`` for every stored run a report leaves out (not done, or damaged), for reports to
    name them; done runs are not listed."""
    out = []
    for root in roots:
        base = Path(root) / "runs"
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if not p.is_dir():
                continue
            state, problem = inspect_run(p)
            if state != "done":
                out.append((p.name, state, problem or f"state {state}"))
    return out


class RunStore:
    """A results directory: ``runs/<id>/`` per run and ``suites/<name>.json`` per suite invocation."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.root, run_id)

    def run_dirs(self) -> Iterator[RunDir]:
        base = self.root / "runs"
        if not base.is_dir():
            return
        for p in sorted(base.iterdir()):
            if p.is_dir() and (p / "spec.json").exists():
                yield RunDir(self.root, p.name)

    def write_suite(self, name: str, record: dict[str, Any]) -> Path:
        """Record a suite invocation; not rewritten when only its ``updated`` stamp would change, so re-running a
        finished suite on a read-only store writes nothing."""
        path = self.root / "suites" / f"{name}.json"
        old = read_json(path)
        if isinstance(old, dict) and {k: v for k, v in old.items() if k != "updated"} == \
                {k: v for k, v in record.items() if k != "updated"}:
            return path
        atomic_write_json(path, record)
        return path

    def read_suite(self, name: str) -> dict[str, Any] | None:
        return read_json(self.root / "suites" / f"{name}.json")

    def suites(self) -> list[str]:
        d = self.root / "suites"
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def load_results(*roots: str | Path) -> list[dict[str, Any]]:
    """Flat records (spec + eval summary + status) for every run under the given results directories. A run whose
    files do not parse or agree gets ``status.state == "damaged"`` and ``problem`` (see ``inspect_run``), so no
    table counts it and reports can say why it is left out."""
    out = []
    for root in roots:
        for rd in RunStore(root).run_dirs():
            state, problem = inspect_run(rd.path)
            spec = read_json(rd.file("spec.json"), {})
            status = dict(rd.status)
            if state == "damaged":
                status["state"] = "damaged"
            ev = read_json(rd.file("eval.json"))
            out.append(
                {
                    "run_id": rd.run_id,
                    "results_dir": str(root),
                    "spec": spec if isinstance(spec, dict) else {},
                    "eval": ev if isinstance(ev, dict) else None,
                    "status": status,
                    "env": read_json(rd.file("env.json"), {}) or {},
                    "problem": problem,
                }
            )
    return out
