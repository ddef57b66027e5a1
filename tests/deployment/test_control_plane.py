"""Only the coordinator's operator reaches the SuperLink's Control API (issue 12).

medfed-server runs; an outsider holding only ca.crt, and one holding a registered hospital's
node key (its Control API requests carry that node's signed authentication headers), point
`flwr` at the public address: `flwr run` with their own app (its ServerApp would write a
marker file, already when it is imported) and `flwr ls` are refused and the marker never
appears. Raw HTTPS requests for anything but the Fleet API are refused at the public port,
path tricks included. The operator's own `flwr ls` (loopback, RUN_DIR/superlink) still works.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys

import pytest

from .conftest import BIN

pytestmark = pytest.mark.slow
HOSPITAL = "Cleveland"

EVIL_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "evil-app"
version = "0.1.0"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "evil"

[tool.flwr.app.components]
serverapp = "evil_app:app"
clientapp = "evil_app:client"
"""
EVIL_APP = """from pathlib import Path

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

MARKER = Path({marker!r})
MARKER.write_text("imported on the coordinator")
app = ServerApp()
client = ClientApp()


@app.main()
def main(grid, context):
    MARKER.write_text("ran on the coordinator")
"""
# `flwr` whose Control API requests carry a hospital's signed SuperNode authentication headers.
KEYED_FLWR = """import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from flwr.supercore.control import ControlHttpClient
from flwr.supernode.node_auth_http_interceptor import NodeAuthHttpInterceptor

key = load_ssh_private_key(Path(sys.argv.pop(1)).read_bytes(), None)
plain = ControlHttpClient.from_server_address.__func__


def keyed(cls, *args, interceptors=(), **kwargs):
    signed = [*interceptors, NodeAuthHttpInterceptor(key, key.public_key())]
    return plain(cls, *args, interceptors=signed, **kwargs)


ControlHttpClient.from_server_address = classmethod(keyed)
from flwr.cli.app import app

app(sys.argv[1:])
"""
REFUSED_PATHS = [
    "/v1/control/list-runs",
    "/v1/control/start-run",
    "/v1/runtime/get-run",
    "/health",
    "/docs",
    "/openapi.json",
    "/v1/fleet/../control/list-runs",
    "/v1/fleet/%2e%2e/control/list-runs",
    "/v1/fleet/..%2fcontrol/list-runs",
    "/v1//control/list-runs",
]


@pytest.fixture(scope="module")
def attacked(deployment_in):
    deployment = deployment_in("control")
    deployment.make_certs([HOSPITAL])
    deployment.write_federation([HOSPITAL], rounds=1, expected=1)
    server = deployment.start_server()
    assert deployment.wait_for(
        lambda: "waiting for hospitals" in deployment.output("server.out"), 120
    ), deployment.output("server.out")
    root = deployment.root
    app_dir = root / "evil"
    app_dir.mkdir()
    deployment.marker = root / "evil-ran.txt"
    (app_dir / "pyproject.toml").write_text(EVIL_PYPROJECT, encoding="utf-8")
    (app_dir / "evil_app.py").write_text(EVIL_APP.format(marker=str(deployment.marker)))
    home = root / "attacker-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "target"\n\n[superlink.target]\n'
        f'address = "127.0.0.1:{deployment.port}"\n'
        f'root-certificates = "{root / "certs" / "ca.crt"}"\n',
        encoding="utf-8",
    )
    (root / "keyed_flwr.py").write_text(KEYED_FLWR, encoding="utf-8")
    environment = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0"}
    outsider = [str(BIN / "flwr")]
    keyed = [sys.executable, str(root / "keyed_flwr.py"), str(root / "certs/nodes" / HOSPITAL)]

    def attempt(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, cwd=root, env=environment, capture_output=True, text=True, timeout=120
        )

    deployment.attempts = {
        "outsider run": attempt([*outsider, "run", str(app_dir), "target"]),
        "outsider ls": attempt([*outsider, "ls", "target"]),
        "hospital-key run": attempt([*keyed, "run", str(app_dir), "target"]),
        "hospital-key ls": attempt([*keyed, "ls", "target"]),
    }
    # Had a run been accepted, Flower's SuperExec would start its ServerApp within seconds
    # (it polls every 0.2 s; the operator's own run started the same way above).
    deployment.wait_for(deployment.marker.exists, 30)
    deployment.server = server
    return deployment


@pytest.mark.parametrize(
    "attempt", ["outsider run", "outsider ls", "hospital-key run", "hospital-key ls"]
)
def test_flwr_against_the_public_address_is_refused(attacked, attempt):
    result = attacked.attempts[attempt]
    assert result.returncode != 0, result.stdout + result.stderr


def test_the_attackers_serverapp_never_runs_on_the_coordinator(attacked):
    assert not attacked.marker.exists(), attacked.marker.read_text()
    assert attacked.server.poll() is None, attacked.output("server.out")  # still serving


@pytest.mark.parametrize("path", REFUSED_PATHS)
def test_only_the_fleet_api_answers_at_the_public_port(attacked, path):
    context = ssl.create_default_context(cafile=str(attacked.root / "certs" / "ca.crt"))
    connection = http.client.HTTPSConnection("127.0.0.1", attacked.port, context=context)
    try:
        connection.request("POST", path, body=b"", headers={"Content-Type": "application/protobuf"})
        response = connection.getresponse()
        assert response.status in (400, 403), (response.status, response.read()[:200])
    finally:
        connection.close()


def test_the_operator_lists_runs_through_loopback(attacked):
    listed = subprocess.run(
        [str(BIN / "flwr"), "ls", "medfed", "--format", "json"],
        env={**os.environ, "FLWR_HOME": str(attacked.root / "run" / "superlink")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [run["fab-name"] for run in runs] == ["medfed-app"]  # only the operator's run
