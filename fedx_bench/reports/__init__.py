"""Reports read only the run store and the paper's stored numbers; they never import training code.

``build_report`` writes a paper-style report folder (tables as md/tex/csv, figures as png/pdf, index.md);
``collect``/``export`` gather runs of many results directories into one table (Parquet + CSV); ``compare``
matches new runs with stored ones and flags what is not like-for-like.
"""

from .build import Artefact, ReportResult, build_report
from .compare import CompareResult, compare
from .design import SuiteDesign, detect_sweeps, main_setting
from .results import (
                      KEY_SETTINGS,
                      PAPER,
                      collect,
                      export,
                      load_curves,
                      paper_cells,
                      paper_value,
                      read_export,
                      results_frame,
)
from .table1 import render_summary, render_table1, table1_frame

__all__ = [
    "KEY_SETTINGS",
    "PAPER",
    "Artefact",
    "CompareResult",
    "ReportResult",
    "SuiteDesign",
    "build_report",
    "collect",
    "compare",
    "detect_sweeps",
    "export",
    "load_curves",
    "main_setting",
    "paper_cells",
    "paper_value",
    "read_export",
    "render_summary",
    "render_table1",
    "results_frame",
    "table1_frame",
]
