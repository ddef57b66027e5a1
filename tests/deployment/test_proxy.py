"""The nginx front of medfed-server: exactly Flower's Fleet API, a config nginx accepts."""

import inspect
import re
import subprocess

import pytest
from flwr.supernode.fleet_http_client import FleetHttpClient  # noqa: TID251 - a SuperNode's client

from medfed.server.deployment.config import DeploymentConfig
from medfed.server.deployment.proxy import fleet_paths, nginx_binary, nginx_config
from medfed.server.deployment.superlink import loopback_tls
from medfed.shared.crypto.certs import create_ca, create_server_certificate
from medfed.shared.errors import ConfigError


def _supernode_paths() -> set[str]:
    """Every path Flower's SuperNode client calls on the SuperLink."""
    return set(re.findall(r'path="([^"]+)"', inspect.getsource(FleetHttpClient)))


def test_fleet_routes_cover_what_a_supernode_calls_and_nothing_else():
    paths = fleet_paths()
    assert _supernode_paths() <= set(paths)
    assert all(path.startswith("/v1/fleet/") for path in paths)
    assert len(paths) == len(set(paths)) >= 10  # register, activate, heartbeat, pull, push, ...


def test_missing_nginx_is_a_config_error_naming_the_package(tmp_path):
    with pytest.raises(ConfigError, match=r"apt-get install nginx"):
        nginx_binary(search_path=str(tmp_path))


def _deployment(tmp_path):
    create_ca(tmp_path)
    create_server_certificate(tmp_path, tmp_path, ["127.0.0.1"])
    return DeploymentConfig(
        address="127.0.0.1:9093",
        ca_certificate=tmp_path / "ca.crt",
        server_certificate=tmp_path / "server.crt",
        server_key=tmp_path / "server.key",
    )


@pytest.mark.parametrize("tls", [True, False])
def test_nginx_accepts_the_config_and_it_passes_only_fleet_routes(tmp_path, tls):
    deployment = _deployment(tmp_path)
    work_dir = tmp_path / "run" / "proxy"
    work_dir.mkdir(parents=True)
    loopback = loopback_tls(tmp_path / "run" / "superlink") if tls else None
    text = nginx_config(deployment, 40123, work_dir, loopback)
    passed = re.findall(r"location = (\S+) \{[^}]*\}\s*proxy_pass (\S+);", text)
    scheme = "https" if tls else "http"
    assert passed == [(path, f"{scheme}://superlink{path}") for path in fleet_paths()]
    assert text.count("proxy_pass") == len(passed)  # nothing else is forwarded
    assert "location / { return 403; }" in text
    assert ("proxy_ssl_verify on;" in text) == tls
    assert ("listen 127.0.0.1:9093 ssl;" in text) == tls
    conf = work_dir / "nginx.conf"
    conf.write_text(text)
    checked = subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-p", str(work_dir)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_loopback_certificate_is_made_once_and_its_ca_key_is_gone(tmp_path):
    first = loopback_tls(tmp_path)
    made = first.certificate.read_bytes()
    assert not (tmp_path / "loopback" / "ca.key").exists()
    assert loopback_tls(tmp_path).certificate.read_bytes() == made  # --resume keeps it
