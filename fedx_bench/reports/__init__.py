"""Reports read only the run store and the paper's stored numbers; they never import training code."""

from .results import PAPER, paper_value, results_frame
from .table1 import render_summary, render_table1, table1_frame

__all__ = ["PAPER", "paper_value", "render_summary", "render_table1", "results_frame", "table1_frame"]
