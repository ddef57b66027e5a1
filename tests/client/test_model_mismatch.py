"""A coordinator's model that does not fit the hospital's data is refused by name, not crashed on.

The coordinator builds its model from federation.toml (`model.name`, `deployment.input_shape`,
`deployment.num_classes`); a wrong shape there (or a malicious message) must give a typed
refusal the coordinator can act on, touch no budget, and carry no traceback.
"""

import pytest
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.shared.config import RunConfig
from medfed.shared.data.base import split_train_test
from medfed.shared.data.imaging import synthetic_lesions
from medfed.shared.errors import ModelMismatch
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.protocol import ARRAYS, CONFIG, OUTCOME, Outcome, state_to_arrays
from medfed.shared.secagg.config import SecureAggregationConfig


@pytest.fixture(scope="module")
def grey_images():
    images, labels = synthetic_lesions(40, 16, 1, 0)
    return split_train_test("North", images, labels, 2, 0.34, 0)


def _content(model: str, input_shape: tuple[int, ...], num_classes: int = 2) -> RecordDict:
    """What a coordinator whose federation.toml says `model`/`input_shape` sends."""
    run = RunConfig(rounds=2)
    run.model.name, run.model.hidden_size = model, 4
    weights = build_model(run.model, input_shape, num_classes).state_dict()
    config = dict(instruction_record(run, "run1")) | {"server-round": 1}
    return RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})


def _answer(kind: str, content: RecordDict, data, tmp_path) -> Outcome:
    plain = SecureAggregationConfig(enabled=False)  # a plain round: the refusal is the model's
    settings = HospitalSettings(
        "North", 5.0, tmp_path / "North.jsonl", tmp_path / "keys", secure_aggregation=plain
    )
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reply = answer(kind, content, context, lambda _: (data, settings))
    return Outcome.from_record(reply.config_records[OUTCOME])


@pytest.mark.parametrize(
    ("model", "input_shape", "num_classes", "named"),
    [
        (
            "logistic",
            (13,),
            2,
            "'1.weight' has shape [2, 13]",
        ),  # a heart-disease model sent to an imaging hospital
        ("cnn", (3, 16, 16), 2, "'0.weight' has shape [4, 3, 3, 3]"),  # RGB weights, grey images
        (
            "cnn",
            (1, 16, 16),
            3,
            "'4.weight' has shape [3, 4]",
        ),  # three classes, the hospital declares two
        ("gru", (48, 9), 2, "rank 2"),  # a sequence model
    ],
)
@pytest.mark.parametrize("kind", ["train", "evaluate"])
def test_a_model_that_does_not_fit_the_data_is_refused_with_the_fix(
    grey_images, tmp_path, kind, model, input_shape, num_classes, named
):
    outcome = _answer(kind, _content(model, input_shape, num_classes), grey_images, tmp_path)
    assert (outcome.status, outcome.code) == ("refused", ModelMismatch.code)
    assert "deployment.input_shape" in outcome.message and named in outcome.message
    assert "input_shape = [1, 16, 16]" in outcome.message  # this hospital's config-fixed shape
    assert "Traceback" not in outcome.message
    assert not (tmp_path / "North.jsonl").exists()  # refused before any release


def test_a_cnn_for_the_hospitals_images_is_not_refused(grey_images, tmp_path):
    outcome = _answer("evaluate", _content("cnn", (1, 16, 16)), grey_images, tmp_path)
    assert outcome.status == "ok", outcome


def test_weights_with_a_missing_or_extra_tensor_are_refused(grey_images, tmp_path):
    content = _content("cnn", (1, 16, 16))
    arrays = content.array_records[ARRAYS]
    dropped = next(iter(arrays))
    del arrays[dropped]
    outcome = _answer("evaluate", content, grey_images, tmp_path)
    assert (outcome.status, outcome.code) == ("refused", ModelMismatch.code)
    assert dropped in outcome.message
