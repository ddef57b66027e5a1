"""Contract: every non-public Flower name medfed uses still exists with the shape medfed needs.

Fails naming the installed Flower version and what changed, so an incompatible Flower inside
the pinned range is found here, not in a hospital's executor at run time.
"""

import ast
import importlib
import inspect
from importlib.metadata import version
from pathlib import Path

import pytest

from medfed.shared import flower_internals

FLOWER = version("flwr")
ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ("flwr.app", "flwr.clientapp", "flwr.serverapp", "flwr.simulation")


def incompatible(what: str) -> str:
    return (
        f"flwr {FLOWER} is incompatible with medfed (shared/flower_internals.py, written for "
        f"flwr {flower_internals.WRITTEN_FOR}): {what}. Update the adapter or the flwr pin in "
        "pyproject.toml."
    )


def resolve(dotted: str):
    name, *attributes = dotted.split(".")
    value = getattr(flower_internals, name)
    for attribute in attributes:
        value = getattr(value, attribute)
    return value


@pytest.mark.parametrize("name", sorted(flower_internals.INTERNALS))
def test_every_internal_name_imports_from_its_flower_module(name):
    module, reason = flower_internals.INTERNALS[name]
    assert reason, f"{name}: say why medfed needs it"
    try:
        getattr(flower_internals, name)
    except (ImportError, AttributeError) as error:
        pytest.fail(incompatible(f"{module}.{name} is gone ({error})"))


@pytest.mark.parametrize("dotted", sorted(flower_internals.PARAMETERS))
def test_every_callable_takes_the_keyword_arguments_medfed_passes(dotted):
    parameters = inspect.signature(resolve(dotted)).parameters
    missing = [p for p in flower_internals.PARAMETERS[dotted] if p not in parameters]
    assert not missing, incompatible(f"{dotted} has no parameter {missing} ({list(parameters)})")
    required = [
        name
        for name, p in parameters.items()
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in flower_internals.PARAMETERS[dotted]
    ]
    assert not required, incompatible(f"{dotted} now requires {required}")


@pytest.mark.parametrize(("location", "fields"), sorted(flower_internals.PROTO_FIELDS.items()))
def test_runtime_api_messages_have_the_fields_medfed_reads_and_sets(location, fields):
    module, message = location
    descriptor = getattr(importlib.import_module(module), message).DESCRIPTOR
    missing = [field for field in fields if field not in descriptor.fields_by_name]
    assert not missing, incompatible(f"{module}.{message} has no field {missing}")


def test_the_executor_takes_client_app_tasks_and_signs_the_method_flower_posts_to():
    assert flower_internals.TaskType.CLIENT_APP == "flwr-clientapp", incompatible("task type")
    source = inspect.getsource(flower_internals.RuntimeHttpClient.AcquireTask)
    assert flower_internals.ACQUIRE_TASK_METHOD in source, incompatible(
        f"RuntimeHttpClient.AcquireTask no longer posts to {flower_internals.ACQUIRE_TASK_METHOD}"
    )
    request = flower_internals.AcquireTaskRequest(
        supported_task_types=[flower_internals.TaskType.CLIENT_APP]
    )
    assert list(request.supported_task_types) == ["flwr-clientapp"]
    assert isinstance(flower_internals.APP_DIR, str)
    assert isinstance(flower_internals.get_flwr_home(), Path)


def test_polling_grid_overrides_every_abstract_method_of_flowers_grid():
    from flwr.serverapp import Grid

    from medfed.server.deployment.grid import PollingGrid
    from medfed.server.member_grid import MemberGrid

    abstract = {name for name in Grid.__abstractmethods__}
    for view in (PollingGrid, MemberGrid):
        assert not view.__abstractmethods__, incompatible(
            f"Grid gained abstract methods {sorted(view.__abstractmethods__)}"
        )
    assert "set_run" in abstract and "run" in abstract
    assert "run" in inspect.signature(Grid.set_run).parameters


def test_nothing_outside_the_adapter_imports_a_non_public_flower_module():
    """Only the adapter (by name) and tests may reach Flower's internals."""
    offenders = []
    for folder in ("client", "serve", "server", "shared", "simulations"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                offenders += [
                    f"{path.relative_to(ROOT)}: {name}"
                    for name in names
                    if name.startswith("flwr") and not name.startswith(PUBLIC)
                ]
    assert offenders == []
