"""The wheel's package list must name every folder that is a package."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {
    "shared": "medfed.shared",
    "client": "medfed.client",
    "server": "medfed.server",
    "simulations": "medfed.simulations",
    "serve": "medfed.serve",
}


def test_every_package_folder_is_listed_in_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == listed


def test_package_dir_maps_role_folders_under_medfed():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-dir"] == {v: k for k, v in MAPPING.items()}


def test_installed_package_imports_from_the_role_folders():
    import medfed.server
    import medfed.shared

    assert Path(medfed.shared.__file__).parent == ROOT / "shared"
    assert Path(medfed.server.__file__).parent == ROOT / "server"
