"""A coordinator's app bundle (Flower's FAB) may name the ClientApp, never ship code to run.

Flower installs each run's FAB under FLWR_HOME/apps and puts its folder first on `sys.path`
before importing the ClientApp it names, so a coordinator could otherwise run any Python it
packs into the bundle at every hospital. medfed's own FAB holds only `pyproject.toml` naming
the locally installed `medfed.client.deployed_app:app`. The hospital's executor installs
`BundleCodeRefused` in each task's fork: importing a module from an installed bundle fails
with an ImportError, which Flower sends back as the error reply's reason (that one line, no
traceback and no local path).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


class BundleCodeRefused(importlib.abc.MetaPathFinder):
    """Import-system finder that refuses modules found in a folder under `apps_dir`."""

    def __init__(self, apps_dir: Path) -> None:
        self.apps_dir = apps_dir.resolve()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> None:
        """Refuse `fullname` when a bundle folder on the search path provides it; otherwise
        leave it to the other finders (returns None).

        Raises:
            ImportError: the module would come from a coordinator's bundle.
        """
        name = fullname.rpartition(".")[2]
        for entry in sys.path if path is None else path:
            folder = Path(entry or ".").resolve()
            if folder.is_relative_to(self.apps_dir) and _provides(folder, name):
                raise ImportError(
                    f"refused to import '{fullname}' from the coordinator's app bundle: "
                    "a hospital runs only code installed by its own IT",
                    name=fullname,
                )
        return None


def _provides(folder: Path, name: str) -> bool:
    if (folder / name).is_dir():
        return True
    return any(
        (folder / f"{name}{suffix}").exists() for suffix in importlib.machinery.all_suffixes()
    )


def refuse_bundle_code(apps_dir: Path) -> None:
    """Install the refusal first in `sys.meta_path` (in this process only)."""
    sys.meta_path.insert(0, BundleCodeRefused(apps_dir))
