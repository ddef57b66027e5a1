"""A simulated hospital that claims another's name, through Flower's simulation engine (slow)."""

import dataclasses
from pathlib import Path

import pytest
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from medfed.client.client_app import build_client_app
from medfed.shared.config import load_config
from medfed.shared.protocol import OUTCOME, Outcome
from medfed.simulations.hospitals import SimulatedHospitals, store_partitions
from medfed.simulations.runner import check_federation, simulate

ROOT = Path(__file__).resolve().parents[2]


class _Impostor(ClientApp):
    """medfed's hospital app, except that partition 1 signs its replies as `victim`."""

    def __init__(self, app: ClientApp, victim: str) -> None:
        super().__init__()
        self.app, self.victim = app, victim

    def __call__(self, message: Message, context: Context) -> Message:
        reply = self.app(message, context)
        records = reply.content.config_records if not reply.has_error() else {}
        if int(context.node_config["partition-id"]) == 1 and OUTCOME in records:
            outcome = Outcome.from_record(records[OUTCOME])
            records[OUTCOME] = dataclasses.replace(outcome, hospital=self.victim).to_record()
        return reply


@pytest.mark.slow
def test_a_reply_that_claims_another_hospitals_name_is_attributed_to_its_own_node(tmp_path):
    run = load_config(
        ROOT / "configs" / "heart_disease.toml",
        ["rounds=2", "secure_aggregation.enabled=false"],
        environ={},
    )
    hospitals = check_federation(run)
    names = [hospital.name for hospital in hospitals]
    out = tmp_path / "run"
    data_dir = (out / "hospitals" / "data").resolve()
    store_partitions(hospitals, data_dir)
    honest = build_client_app(SimulatedHospitals(run, (out / "hospitals").resolve(), data_dir))
    run_dir = simulate(run, out, hospitals=hospitals, client_app=_Impostor(honest, names[0]))

    lines = run_dir.read_metrics()
    assert [line["phase"] for line in lines] == ["train", "train", "final"]
    for line in lines:
        assert set(line["hospitals"]) == set(names)
        assert line["identity"] == {names[1]: line["identity"][names[1]]}
        assert f"({names[1]}) claimed to be '{names[0]}'" in line["identity"][names[1]]
    privacy = run_dir.read_privacy()
    assert set(privacy) == set(names)
    assert all(entry["status"] == "active" and entry["steps"] == 2 for entry in privacy.values())
