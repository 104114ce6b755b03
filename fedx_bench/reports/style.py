"""One look for every figure: method names, colours, line styles and sizes live here so that a method is
drawn the same way in every figure of every report (readers compare panels across figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports run headless (CI, servers); never pick an interactive backend

import matplotlib.pyplot as plt  # noqa: E402

# Okabe-Ito colours (colour-blind safe). The paper draws FedSimCLR orange and + FedX blue; we keep that, and
# + FedX is the same blue accent for every base method.
FEDX_COLOUR = "#0072B2"
INIT_COLOUR = "#000000"
METHOD_COLOURS: dict[str, str] = {
    "simclr": "#E69F00",
    "moco": "#009E73",
    "byol": "#D55E00",
    "protocl": "#CC79A7",
    "fedu": "#A6761D",
}
_FALLBACK_COLOURS = ["#999999", "#56B4E9", "#F0E442", "#1B9E77", "#7570B3"]

METHOD_NAMES: dict[str, str] = {
    "simclr": "FedSimCLR",
    "moco": "FedMoCo",
    "byol": "FedBYOL",
    "protocl": "FedProtoCL",
    "fedu": "FedU",
}
METHOD_ORDER = ["simclr", "moco", "byol", "protocl", "fedu"]

# Ablation variants: FedX-family lines are blues/greys with distinct dashes; the base stays in its method colour.
VARIANT_STYLE: dict[str, dict[str, Any]] = {
    "fedx": {"color": FEDX_COLOUR, "linestyle": "-", "marker": "o"},
    "fedx-no-relational": {"color": "#56B4E9", "linestyle": "--", "marker": "s"},
    "fedx-no-global": {"color": "#404040", "linestyle": ":", "marker": "^"},
    "fedx-no-head": {"color": "#6A3D9A", "linestyle": "-.", "marker": "D"},
    "fedx-local-only-relational": {"color": "#1B9E77", "linestyle": (0, (5, 1)), "marker": "v"},
    "fedx-global-only-relational": {"color": "#7F7F7F", "linestyle": (0, (3, 1, 1, 1)), "marker": "P"},
}
# Legend names of the paper's ablation figure (spec §3.3); the finer splits are ours.
VARIANT_NAMES: dict[str, str] = {
    "fedx": "All components",
    "fedx-no-relational": "w/o relational loss",
    "fedx-no-global": "w/o global KD",
    "fedx-no-head": "w/o projection head",
    "fedx-local-only-relational": "w/o global relational",
    "fedx-global-only-relational": "w/o local relational",
}

COLUMN_WIDTH_IN = 3.3  # one column of a two-column paper
FULL_WIDTH_IN = 6.9
PANEL_HEIGHT_IN = 2.3

RC: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 3.5,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,  # editable text in the PDF
    "ps.fonttype": 42,
    "svg.hashsalt": "fedx-bench",
}

ACC_LABEL = "Linear-probe top-1 (%)"
ROUND_LABEL = "Round"


def method_name(method: str) -> str:
    """Paper-style name (``simclr`` → ``FedSimCLR``, ``byol@ldawa`` → ``FedBYOL + L-DAWA``); other methods take
    their declared display name (``fedema`` → ``FedEMA``), plug-ins their class name. The one naming rule of every
    report table and figure (torch-free: ``methods.display_name`` reads declarations only)."""
    if method in METHOD_NAMES:
        return METHOD_NAMES[method]
    try:
        from ..methods import display_name as registry_name

        return registry_name(method)
    except Exception:  # noqa: BLE001 - a report must render even when a plug-in cannot be imported
        return str(method).rsplit(":", 1)[-1]


def method_colour(method: str) -> str:
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return _FALLBACK_COLOURS[sum(map(ord, str(method))) % len(_FALLBACK_COLOURS)]


def variant_name(method: str, variant: str) -> str:
    """Row/legend label of a (method, FedX variant): ``FedSimCLR``, ``+ FedX``, ``w/o global KD``."""
    if variant == "none":
        return method_name(method)
    if variant == "fedx":
        return "+ FedX"
    return VARIANT_NAMES.get(variant, f"+ {variant}")


def series_style(method: str, variant: str) -> dict[str, Any]:
    """Colour/line/marker of a curve: base methods solid in their colour, FedX variants the blue family."""
    if variant == "none":
        return {"color": method_colour(method), "linestyle": "-", "marker": "o"}
    return dict(VARIANT_STYLE.get(variant, {"color": FEDX_COLOUR, "linestyle": "-", "marker": "o"}))


def figure(n_panels: int, nrows: int = 1, height: float = PANEL_HEIGHT_IN, sharey: bool = False) -> tuple[Any, Any]:
    """A figure of ``nrows`` × ceil(n/nrows) panels: one panel at column width, more at full width."""
    ncols = max(1, -(-n_panels // nrows))
    width = COLUMN_WIDTH_IN if ncols == 1 else min(FULL_WIDTH_IN, 2.35 * ncols)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False, sharey=sharey)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def save(fig: Any, path_stem: Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` (tight, deterministic metadata) and close the figure."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with plt.rc_context(RC):
        fig.tight_layout()
        png = path_stem.with_suffix(".png")
        fig.savefig(png, dpi=300, bbox_inches="tight", metadata={"Software": None})
        pdf = path_stem.with_suffix(".pdf")
        fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None, "Creator": None, "Producer": None})
        out += [png, pdf]
    plt.close(fig)
    return out


def apply_rc() -> Any:
    """Context manager with the report rcParams (use around all drawing code)."""
    return plt.rc_context(RC)
