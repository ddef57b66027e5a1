"""federation.toml: a run configuration (the simulation's tables) plus `[deployment]`.

`[deployment]` says where hospitals connect (nginx, in front of a loopback SuperLink), the TLS
files, and which hospitals (public keys) may join. Relative paths are relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medfed.shared.config import RunConfig
from medfed.shared.config.loader import (
    apply_override,
    first_problem,
    parse_assignment,
    read_toml,
    validate_tree,
)
from medfed.shared.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisteredHospital(_Strict):
    name: str = Field(min_length=1)
    public_key: Path = Field(description="the hospital's node key (.pub, from medfed certs node)")


class DeploymentConfig(_Strict):
    address: str = Field(
        default="127.0.0.1:9093",
        description="public host:port hospitals dial (nginx; the SuperLink is on loopback)",
    )
    ca_certificate: Path | None = None
    server_certificate: Path | None = None
    server_key: Path | None = None
    node_authentication: bool = True
    hospitals: list[RegisteredHospital] = Field(default_factory=list)
    expected_hospitals: int | None = Field(
        default=None, ge=1, description="wait for this many before round 1; default: all listed"
    )
    input_shape: list[int] = Field(default=[13], min_length=1, description="one sample's shape")
    num_classes: int = Field(default=2, ge=2)
    poll_interval_s: float = Field(default=0.1, gt=0, le=5)
    startup_timeout_s: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _hospitals_named_once(self) -> DeploymentConfig:
        names = [hospital.name for hospital in self.hospitals]
        if len(set(names)) != len(names):
            raise ValueError("deployment.hospitals: a hospital name is listed twice")
        return self

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def hospitals_to_wait_for(self) -> int:
        return self.expected_hospitals or max(1, len(self.hospitals))


class FederationConfig(_Strict):
    run: RunConfig
    deployment: DeploymentConfig


def _resolve(deployment: DeploymentConfig, base: Path) -> DeploymentConfig:
    def absolute(path: Path | None) -> Path | None:
        return None if path is None else (base / path.expanduser()).resolve()

    hospitals = [
        h.model_copy(update={"public_key": absolute(h.public_key)}) for h in deployment.hospitals
    ]
    return deployment.model_copy(
        update={
            "ca_certificate": absolute(deployment.ca_certificate),
            "server_certificate": absolute(deployment.server_certificate),
            "server_key": absolute(deployment.server_key),
            "hospitals": hospitals,
        }
    )


def load_federation_config(path: Path, overrides: list[str] | None = None) -> FederationConfig:
    """Read federation.toml (with `--set key=value` overrides on the run's keys).

    Raises:
        ConfigError: missing file, bad TOML, unknown key or bad value (named).
    """
    tree = read_toml(path, "not found (see configs/federation.example.toml)")
    deployment_tree = tree.pop("deployment", {})
    for assignment in overrides or []:
        key, value = parse_assignment(assignment, f"{path} (--set)")
        apply_override(tree, key, value, f"{path} (--set {assignment})")
    run = validate_tree(tree, str(path))
    try:
        deployment = DeploymentConfig.model_validate(deployment_tree)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {first_problem(exc, ('deployment',))}") from None
    return FederationConfig(run=run, deployment=_resolve(deployment, path.resolve().parent))


def check_deployment(deployment: DeploymentConfig, insecure: bool, source: Path) -> list[str]:
    """Every problem with the TLS files and hospital keys, one line each (empty = ready)."""
    found = []
    if not insecure:
        for key in ("ca_certificate", "server_certificate", "server_key"):
            value = getattr(deployment, key)
            if value is None or not value.is_file():
                found.append(
                    f"{source}: deployment.{key}: {value} not found "
                    "(create it with `medfed certs init` / `medfed certs server`)"
                )
        if deployment.node_authentication and not deployment.hospitals:
            found.append(
                f"{source}: deployment.hospitals: no hospital keys listed "
                "(add [[deployment.hospitals]] name/public_key entries)"
            )
    for hospital in deployment.hospitals:
        if not hospital.public_key.is_file():
            found.append(
                f"{source}: deployment.hospitals '{hospital.name}': public_key "
                f"{hospital.public_key} not found"
            )
    return found


# What one sample is, by the rank a model takes (hospitals' data: docs/deployment.md).
SAMPLE_SHAPES = {3: "[image_channels, image_size, image_size]", 2: "[sequence_length, features]"}


def check_model(federation: FederationConfig, source: Path) -> list[str]:
    """The run's model against `deployment.input_shape`, one line if it cannot take it (the
    coordinator's model is built for that shape, and each hospital refuses one that does not
    fit its data)."""
    from medfed.shared.models import model_spec  # imports torch: only when checking

    model, shape = federation.run.model.name, federation.deployment.input_shape
    try:
        rank = model_spec(model).input_rank
    except ConfigError as error:
        return [f"{source}: {error}"]
    if rank != 1 and len(shape) != rank:
        return [
            f"{source}: deployment.input_shape = {shape}: model.name = '{model}' takes samples "
            f"of rank {rank}, {SAMPLE_SHAPES[rank]} of the hospitals' data"
        ]
    return []
