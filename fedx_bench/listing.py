"""What is there to run: bundled suites and the registries (methods, datasets, protocols, backbones, aggregators),
as ``fedx-bench list`` prints them."""

from __future__ import annotations

from pathlib import Path

from .paths import SUITES_DIR
from .registry import AGGREGATORS, BACKBONES, DATASETS, EVALUATIONS, METHODS, load_builtins


def list_suites(suites_dir: str | Path | None = None) -> list[str]:
    d = Path(suites_dir) if suites_dir else SUITES_DIR
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def suite_description(name: str, suites_dir: str | Path | None = None) -> str:
    """A bundled suite's ``description`` (read from its YAML without expanding it; empty if unreadable)."""
    import yaml

    p = (Path(suites_dir) if suites_dir else SUITES_DIR) / f"{name}.yaml"
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return ""
    return " ".join(str(doc.get("description", "")).split()) if isinstance(doc, dict) else ""


def list_registry(kind: str) -> list[tuple[str, str]]:
    """``methods|datasets|protocols|backbones|aggregators|suites`` → [(name, description)]."""
    load_builtins()
    if kind == "suites":
        return [(s, suite_description(s)) for s in list_suites()]
    reg = {"methods": METHODS, "datasets": DATASETS, "protocols": EVALUATIONS, "backbones": BACKBONES,
           "aggregators": AGGREGATORS}[kind]
    out = []
    for name in reg.names():
        meta = reg.meta(name)
        label = f"{name}@{meta['version']}" if "version" in meta else name
        out.append((label, str(meta.get("description", ""))))
    return out


