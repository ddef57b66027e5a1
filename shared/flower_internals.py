"""Every non-public Flower name medfed uses, in one place, each with the reason it is needed.

Flower's public API (`flwr.app`, `flwr.clientapp`, `flwr.serverapp`, `flwr.simulation`) has no
way to run a ClientApp task from a warm process, nor a public type for a Grid's run, so medfed
reaches into Flower's internals for the names in `INTERNALS`. They can change in any Flower
release: the `flwr` pin in pyproject.toml stops below the next minor version, CI installs the
newest Flower the pin allows, and tests/shared/test_flower_internals.py checks every name,
signature and protobuf field here against the installed Flower, failing with its version.
When Flower moves one, fix it here (and in that test); nothing else imports these modules.

Names are imported on first use (`from medfed.shared.flower_internals import Run`): the
coordinator does not pay for the SuperNode runtime it never runs.
"""

from __future__ import annotations

import importlib
from typing import Any

WRITTEN_FOR = "1.42"  # the Flower version these names were checked against

# name: (Flower module, why medfed needs it)
INTERNALS: dict[str, tuple[str, str]] = {
    "run_clientapp": (
        "flwr.supernode.runtime.run_clientapp",
        "client/executor.py runs one ClientApp task in a warm fork: what `flwr-clientapp` runs",
    ),
    "RuntimeHttpClient": (
        "flwr.supercore.runtime",
        "client/executor.py acquires tasks from the SuperNode's Runtime API, as SuperExec does",
    ),
    "AcquireTaskRequest": (
        "flwr.proto.runtime_pb2",
        "client/executor.py: the Runtime API request for the next task",
    ),
    "TaskType": (
        "flwr.supercore.constant",
        "client/executor.py takes ClientApp tasks only (TaskType.CLIENT_APP)",
    ),
    "SuperExecAuthHttpInterceptor": (
        "flwr.supercore.interceptors",
        "client/executor.py signs task requests with the SuperExec secret: no other local "
        "process can take the hospital's tasks",
    ),
    "make_simple_http_retry_invoker": (
        "flwr.supercore.retry",
        "client/executor.py: the retry policy Flower's SuperExec uses for the Runtime API",
    ),
    "get_flwr_home": (
        "flwr.supercore.utils",
        "client/executor.py: the SuperNode's FLWR_HOME, where app bundles are unpacked",
    ),
    "APP_DIR": (
        "flwr.common.constant",
        "client/executor.py checks FLWR_HOME/APP_DIR holds no coordinator-shipped code",
    ),
    "Run": (
        "flwr.supercore.run",
        "server/member_grid.py: the type of Grid.run / Grid.set_run (its grid views)",
    ),
    "router": (
        "flwr.superlink.routers.fleet.router",
        "server/deployment/proxy.py: the Fleet API's routes, the only ones nginx passes",
    ),
    "pseudo_rand_gen": (
        "flwr.common.secure_aggregation.secaggplus_utils",
        "simulations/benchmarks/secagg_masks.py: Flower's SecAgg+ mask generator, the "
        "benchmark baseline only (never used for masks)",
    ),
}
# The Runtime API method the interceptor must sign (the path RuntimeHttpClient.AcquireTask
# posts to).
ACQUIRE_TASK_METHOD = "/flwr.proto.Runtime/AcquireTask"
# Protobuf fields medfed sets or reads on Runtime API messages (module flwr.proto.*_pb2).
PROTO_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("flwr.proto.runtime_pb2", "AcquireTaskRequest"): ("supported_task_types",),
    ("flwr.proto.runtime_pb2", "AcquireTaskResponse"): ("task", "token"),
    ("flwr.proto.task_pb2", "Task"): ("task_id",),
}
# Keyword arguments medfed passes, per callable.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "run_clientapp": (
        "runtime_api_address",
        "token",
        "insecure",
        "parent_pid",
        "runtime_dependency_install",
    ),
    "RuntimeHttpClient.from_server_address": (
        "server_address",
        "insecure",
        "root_certificates",
        "interceptors",
        "retry_invoker",
    ),
    "SuperExecAuthHttpInterceptor": ("master_secret", "protected_methods"),
    "make_simple_http_retry_invoker": (),
    "get_flwr_home": (),
}

__all__ = ["ACQUIRE_TASK_METHOD", "INTERNALS", "PARAMETERS", "PROTO_FIELDS", *INTERNALS]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever Flower defines
    """Import `name` from its Flower module the first time it is asked for."""
    if name not in INTERNALS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(INTERNALS[name][0]), name)
