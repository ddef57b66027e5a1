"""The coordinator's public port: Debian's nginx in front of a loopback SuperLink.

In flwr 1.42 one SuperLink port serves the Fleet API (hospitals), the Control API (`flwr run`,
`flwr ls`, `flwr stop`, node registration) and the Runtime API (ServerApp processes), and the
open-source build authenticates nobody on Control (its no-op account-auth plugin accepts
everyone). So the SuperLink listens on 127.0.0.1 only and nginx, at `deployment.address`,
passes exactly the Fleet API's routes (taken from Flower's own Fleet router: POST
`/v1/fleet/<method>`, forwarded under their canonical path) and answers 403 to anything else.
nginx terminates the public TLS with the server certificate and re-encrypts to the SuperLink,
verifying its loopback certificate; Flower's SuperNode authentication headers pass unchanged and
are checked by the SuperLink as before.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from medfed.server.deployment.config import DeploymentConfig
from medfed.server.deployment.superlink import (
    LOOPBACK,
    LOOPBACK_NAME,
    DeploymentError,
    LoopbackTLS,
    wait_for_port,
)
from medfed.shared.errors import ConfigError
from medfed.shared.processes import stop_process

FLEET_PREFIX = "/v1/fleet/"
INSTALL_HINT = "install Debian's nginx: apt-get install nginx"
MAX_BODY = "1g"  # one Fleet request carries one message or one object (a model's array)


def nginx_binary(search_path: str | None = None) -> str:
    """The nginx executable (PATH, then /usr/sbin, where Debian puts it).

    Raises:
        ConfigError: nginx is not installed.
    """
    path = search_path if search_path is not None else os.environ.get("PATH", "") + ":/usr/sbin"
    found = shutil.which("nginx", path=path)
    if found is None:
        raise ConfigError(
            f"medfed-server needs nginx for its public port (only the Fleet API is exposed): "
            f"{INSTALL_HINT}"
        )
    return found


def fleet_paths() -> list[str]:
    """Every route of Flower's Fleet API (what a SuperNode calls), from Flower's router."""
    from medfed.shared.flower_internals import router

    paths = sorted(
        route.path
        for route in router.routes
        if route.path.startswith(FLEET_PREFIX) and getattr(route, "methods", None) == {"POST"}
    )
    if not paths:
        raise DeploymentError("no Fleet API routes found in flwr.superlink (unsupported flwr)")
    return paths


def _quoted(path: Path) -> str:
    text = str(path)
    if any(character in text for character in '"\\\n;{}$'):
        raise ConfigError(f"{path}: medfed-server needs a path without quotes or ;{{}}$")
    return f'"{text}"'


def _worker_user() -> str:
    """As root, nginx's workers drop to nobody (named with its group: Debian has no group
    `nobody`, nginx's default); as any other user nginx needs no `user` line."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};\n"


def nginx_config(
    deployment: DeploymentConfig, upstream_port: int, work_dir: Path, tls: LoopbackTLS | None
) -> str:
    """nginx.conf: the public listener, the Fleet routes, 403 for everything else.

    `tls` None: plaintext on both sides (`--insecure`, testing only)."""
    scheme = "http" if tls is None else "https"
    listen = f"listen {deployment.address};"
    encryption = ""
    if tls is not None:
        listen = f"listen {deployment.address} ssl;"
        encryption = f"""
        ssl_certificate {_quoted(deployment.server_certificate)};
        ssl_certificate_key {_quoted(deployment.server_key)};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:medfed:1m;
        proxy_ssl_trusted_certificate {_quoted(tls.ca_certificate)};
        proxy_ssl_verify on;
        proxy_ssl_name {LOOPBACK_NAME};
        proxy_ssl_session_reuse on;"""
    routes = "".join(
        f"""
        location = {path} {{
            limit_except POST {{ deny all; }}
            proxy_pass {scheme}://superlink{path};
        }}"""
        for path in fleet_paths()
    )
    temp = "".join(
        f"    {kind}_temp_path {_quoted(work_dir / kind)};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Written by medfed-server; regenerated at every start.
{_worker_user()}worker_processes 1;
pid {_quoted(work_dir / "nginx.pid")};
error_log {_quoted(work_dir.parent / "proxy.log")} notice;
events {{ worker_connections 1024; }}
http {{
    access_log {_quoted(work_dir.parent / "proxy-access.log")};
{temp}    server_tokens off;
    default_type application/octet-stream;
    client_max_body_size {MAX_BODY};
    upstream superlink {{
        server {LOOPBACK}:{upstream_port};
        keepalive 16;
    }}
    server {{
        {listen}{encryption}
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
{routes}
        location / {{ return 403; }}
    }}
}}
"""


def _stop_stale(work_dir: Path, conf: Path) -> None:
    """Stop an nginx left running on this run directory by a coordinator that was killed."""
    try:
        pid = int((work_dir / "nginx.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(conf).encode() not in command:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _check_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise DeploymentError(
                f"deployment.address {host}:{port} cannot be bound ({exc.strerror}); "
                "is another medfed-server running?"
            ) from None


def start_proxy(
    nginx: str,
    deployment: DeploymentConfig,
    upstream_port: int,
    run_dir: Path,
    tls: LoopbackTLS | None,
) -> subprocess.Popen:
    """Write RUN_DIR/proxy/nginx.conf, start nginx in the foreground in its own process
    group, and return once it listens on `deployment.address`.

    Raises:
        DeploymentError: the address is taken, or nginx exited or did not listen in time
            (its last log line is named).
    """
    work_dir = run_dir / "proxy"
    work_dir.mkdir(mode=0o700, exist_ok=True)
    conf = work_dir / "nginx.conf"
    _stop_stale(work_dir, conf)
    conf.write_text(nginx_config(deployment, upstream_port, work_dir, tls), encoding="utf-8")
    _check_free(deployment.host, deployment.port)
    log_path = run_dir / "proxy.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(work_dir), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(
            deployment.host, deployment.port, process, deployment.startup_timeout_s, "nginx"
        )
    except DeploymentError as error:
        stop_process(process)
        lines = log_path.read_text(errors="replace").strip().splitlines()
        raise DeploymentError(f"{error}: {lines[-1] if lines else 'no output'}") from None
    return process
