"""Decoding fitted on dev in runs: recorded, and never fitted on test labels."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from hmtc_bench.data.synthetic import generate
from hmtc_bench.runner import run_decodings

POLICIES = ["threshold", "tuned", "tuned-global", "level-top-k", "clamp", "mandatory-leaf"]


@pytest.fixture(scope="module")
def data():
    return generate(n_train=300, n_dev=120, n_test=80, seed=2, depth=3, branching=3)


def _run(data):
    return {r.decode: r for r in run_decodings("flat-logreg", data, 0, {"max_features": 3000},
                                               POLICIES, track=False, quiet=True)}


def test_fitted_policies_are_recorded_and_ignore_test_labels(data):
    records = _run(data)
    tuned = records["tuned"].decode_params
    assert len(tuned["thresholds"]) == len(data.hierarchy) and tuned["n_dev"] == len(data.dev)
    assert records["tuned-global"].decode_params["threshold"] > 0
    assert records["threshold"].decode_params is None
    # the same run with other test labels: the fitted decoders must not move
    rng = np.random.default_rng(0)
    scrambled = sp.csr_matrix(rng.random(data.test.Y.shape) < 0.3, dtype=np.int8)
    other = dataclasses.replace(data, test=dataclasses.replace(data.test, Y=scrambled))
    again = _run(other)
    for policy in ("tuned", "tuned-global"):
        assert again[policy].decode_params == records[policy].decode_params, policy
    assert again["tuned"].metrics["micro_f1"] != records["tuned"].metrics["micro_f1"]


def test_every_record_has_the_threshold_free_and_lca_metrics(data):
    record = _run(data)["mandatory-leaf"]
    for key in ("micro_ap", "macro_ap", "micro_ap_level_3", "lca_f1", "exact_match"):
        assert 0 <= record.metrics[key] <= 1, key
    assert record.metrics["inconsistency_ratio"] == 0


def test_a_policy_the_hierarchy_cannot_take_is_refused_before_the_fit(data, monkeypatch):
    from hmtc_bench.errors import ParameterError
    from hmtc_bench.hierarchy import LabelHierarchy
    edges = [*data.hierarchy.to_edges(), (data.hierarchy.labels[0], data.hierarchy.leaves[-1])]
    dag = dataclasses.replace(data, hierarchy=LabelHierarchy.from_edges(edges))
    monkeypatch.setattr("hmtc_bench.runner._fit_and_evaluate",
                        lambda *a, **k: pytest.fail("fitted before the policy was checked"))
    with pytest.raises(ParameterError, match="needs a tree"):
        run_decodings("flat-svm", dag, 0, {}, ["mandatory-leaf"], track=False, quiet=True)
