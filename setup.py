"""Build hook: the wheel carries what the service reads beside its code.

`alembic.ini`, `migrations/` and `seed_data/` live at the project root (where Alembic, the
tests and the people editing them expect them); a built wheel copies them into the package as
`app/_bundled/`, where `app.core.config.shipped_path` finds them, so an installed service
migrates and seeds from any directory. Editable installs read them from the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("alembic.ini", "migrations", "seed_data")
DEBRIS = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


class BuildWithShippedData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "app" / "_bundled"
        for name in SHIPPED:
            source = ROOT / name
            destination = target / name
            if source.is_dir():
                shutil.rmtree(destination, ignore_errors=True)
                shutil.copytree(source, destination, ignore=DEBRIS)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildWithShippedData})
