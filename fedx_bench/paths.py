"""Where the bundled suites live (torch-free, so reports and the CLI can find them without loading models)."""

from __future__ import annotations

from pathlib import Path


def suites_dir() -> Path:
    """The bundled suites: ``fedx_bench/suites/`` in an installed wheel (package data), else the checkout's
    top-level ``suites/`` (an editable install or a plain checkout)."""
    pkg = Path(__file__).resolve().parent
    for d in (pkg / "suites", pkg.parent / "suites"):
        if d.is_dir() and any(d.glob("*.yaml")):
            return d
    return pkg / "suites"


SUITES_DIR = suites_dir()
