"""A coordinator's app bundle cannot run code at a hospital (the import refusal the executor
installs in each task's fork)."""

import importlib
import sys

import pytest

from medfed.client.app_bundle import refuse_bundle_code


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    """A bundle folder under apps/ and a local folder, both on sys.path, with the refusal on."""
    bundle = tmp_path / "apps" / "evil.app.1.0.0.abcd"
    local = tmp_path / "local"
    for folder in (bundle, local):
        folder.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(local))
    monkeypatch.syspath_prepend(str(bundle))  # Flower puts the bundle folder first
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    refuse_bundle_code(tmp_path / "apps")
    yield bundle, local, tmp_path / "ran"
    for name in [n for n in sys.modules if n.startswith("medfed_test_")]:
        del sys.modules[name]


def _module_that_marks(folder, name, marker):
    (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\napp = 1\n")


def test_a_module_shipped_in_the_bundle_is_refused_and_never_runs(guarded):
    bundle, _local, marker = guarded
    _module_that_marks(bundle, "medfed_test_evil", marker)
    with pytest.raises(ImportError, match="coordinator's app bundle"):
        importlib.import_module("medfed_test_evil")
    assert not marker.exists()


def test_a_package_shipped_in_the_bundle_is_refused(guarded):
    bundle, _local, marker = guarded
    (bundle / "medfed_test_pkg").mkdir()
    _module_that_marks(bundle / "medfed_test_pkg", "__init__", marker)
    with pytest.raises(ImportError, match="medfed_test_pkg"):
        importlib.import_module("medfed_test_pkg")
    assert not marker.exists()


def test_a_bundle_cannot_shadow_a_locally_installed_module(guarded):
    bundle, local, marker = guarded
    _module_that_marks(bundle, "medfed_test_shadowed", marker)
    (local / "medfed_test_shadowed.py").write_text("app = 'local'\n")
    with pytest.raises(ImportError):
        importlib.import_module("medfed_test_shadowed")
    assert not marker.exists()


def test_locally_installed_code_still_imports(guarded):
    _bundle, local, _marker = guarded
    (local / "medfed_test_local.py").write_text("app = 'local'\n")
    assert importlib.import_module("medfed_test_local").app == "local"
    sys.modules.pop("colorsys", None)  # a stdlib module, found afresh through the finders
    assert importlib.import_module("colorsys").rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
