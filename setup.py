"""Ships the bundled suites (the checkout's top-level ``suites/*.yaml``) inside the wheel as package data
``fedx_bench/suites/``, so ``fedx-bench list suites`` and ``fedx-bench run quickstart`` work from any install.
The checkout keeps one copy of each suite (``suites/``); ``fedx_bench.api`` finds either location.
Everything else is declared in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithSuites(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's suites/ directly
            return
        dest = Path(self.build_lib) / "fedx_bench" / "suites"
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted(Path(__file__).resolve().parent.glob("suites/*.yaml")):
            shutil.copy2(src, dest / src.name)


setup(cmdclass={"build_py": BuildPyWithSuites})
