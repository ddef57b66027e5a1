"""The final model is scored by every hospital, or by a seeded sample in a large federation."""

from flwr.app import ArrayRecord

from medfed.server.federation import Federation
from medfed.shared.config import RunConfig


class FixedGrid:
    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):
        return list(self.nodes)


def _evaluators(nodes, fraction, seed=0):
    run = RunConfig(seed=seed, strategy={"fraction_evaluate": fraction})
    return Federation(FixedGrid(nodes), run, ArrayRecord(), run_dir=None)._evaluators()


def test_every_hospital_scores_the_final_model_by_default():
    assert _evaluators([5, 3, 9], 1.0) == [3, 5, 9]


def test_fraction_evaluate_samples_that_share_reproducibly_from_the_seed():
    nodes = list(range(100, 1100))
    chosen = _evaluators(nodes, 0.01)
    assert len(chosen) == 10 and set(chosen) <= set(nodes)
    assert chosen == _evaluators(list(reversed(nodes)), 0.01)  # order of discovery is irrelevant
    assert chosen != _evaluators(nodes, 0.01, seed=1)


def test_a_tiny_fraction_still_asks_one_hospital():
    assert len(_evaluators([1, 2, 3], 0.01)) == 1
