"""Build step that puts the recipes and schedule templates inside the wheel.

The repository's top-level images/ and schedules/ stay the source of truth; a wheel
(built from the checkout or from the sdist, which carries both, see MANIFEST.in) gets
a copy under factory/_data/, where factory.common.shipped finds them with importlib.resources.
An editable install copies nothing: factory.common.shipped falls back to the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("images", "schedules")  # top-level directory -> factory/_data/<same name>


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            target = Path(self.build_lib) / "factory" / "_data" / name
            if target.exists():
                shutil.rmtree(target)
            # copyfile: the bytes only, not the checkout's modes or mtimes
            shutil.copytree(
                HERE / name,
                target,
                copy_function=shutil.copyfile,
                # proxy-wheels/: what schedules/proxy-wheels.sh downloaded for the proxy's
                # image, not part of reprobase
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "proxy-wheels"),
            )


setup(cmdclass={"build_py": BuildPyWithData})
