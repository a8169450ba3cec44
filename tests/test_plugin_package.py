"""A third-party plugin package built and installed the way a user would (pyproject.toml,
pip, entry points), with a classical method (one file) and a neural method (an estimator
file and a network file): adding them edits nothing in hmtc-bench.

The package is installed with ``pip install --target`` into a temporary folder and used
from subprocesses with that folder on ``PYTHONPATH``, so nothing outside the test's
temporary folder changes. These files are also the example of the README's section
"Adding a method".
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

PYPROJECT = textwrap.dedent('''\
    [build-system]
    requires = ["setuptools>=68"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "hmtc-toy-methods"
    version = "0.1.0"
    dependencies = ["hmtc-bench"]

    [tool.setuptools]
    py-modules = ["hmtc_toy_centroid", "hmtc_toy_maxpool", "hmtc_toy_maxpool_net"]

    [project.entry-points."hmtc_bench.methods"]
    toy-centroid = "hmtc_toy_centroid:LabelCentroid"
    toy-maxpool = "hmtc_toy_maxpool:MaxPoolBERT"
''')

CLASSICAL = textwrap.dedent('''\
    """A classical method in one file: the cosine similarity of a text's TF-IDF vector to
    the centroid of each label's training texts."""

    import numpy as np

    from hmtc_bench.methods.classical.features import TfidfMethod


    class LabelCentroid(TfidfMethod):
        """TF-IDF features (``TfidfMethod`` vectorizes); one centroid per label."""

        TAGS = {"family": "flat", "requires": ("sklearn",)}

        def __init__(self, ngram_max: int = 1, min_df: int = 1, max_features: int = 20_000,
                     sublinear_tf: bool = True, char_ngrams: bool = False):
            self.ngram_max = ngram_max
            self.min_df = min_df
            self.max_features = max_features
            self.sublinear_tf = sublinear_tf
            self.char_ngrams = char_ngrams

        def _fit_features(self, X, Y, hierarchy):
            sums = (Y.T @ X).toarray()                    # (labels, features)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            self.centroids_ = sums / np.maximum(norms, 1e-12)

        def _proba_from_features(self, X):
            return np.asarray(X @ self.centroids_.T)     # rows of X have unit norm
''')

NEURAL = textwrap.dedent('''\
    """A neural method, file 1 of 2: the estimator. It does not import torch, so that
    ``hmtc-bench list`` stays fast; the network is imported when fitting."""

    from hmtc_bench.methods.neural.base import TINY_TEST_PARAMS, NeuralMethod


    class MaxPoolBERT(NeuralMethod):
        """The encoder's token states max-pooled, a hidden layer, one sigmoid per label.
        The shared parameters (encoder, max_length, lr_head, epochs, dropout, device,
        random_state, ...) come from NeuralMethod; only the own ones are declared."""

        TAGS = {**NeuralMethod.TAGS, "family": "flat"}
        PARAMS = {"hidden_size": 256}

        @classmethod
        def get_test_params(cls) -> dict:
            return {**TINY_TEST_PARAMS, "hidden_size": 64}

        def _build_network(self, encoder_stack, hierarchy):
            from hmtc_toy_maxpool_net import MaxPoolNet
            return MaxPoolNet(encoder_stack, len(hierarchy), self.hidden_size, self.dropout)
''')

NETWORK = textwrap.dedent('''\
    """A neural method, file 2 of 2: the torch network."""

    import torch
    from torch import nn

    from hmtc_bench.methods.neural.heads import TextClassifier


    class MaxPoolNet(TextClassifier):
        def __init__(self, encoder, n_labels: int, hidden_size: int, dropout: float):
            super().__init__(encoder)
            self.hidden = nn.Linear(encoder.hidden_size, hidden_size)
            self.output = nn.Linear(hidden_size, n_labels)
            self.dropout = nn.Dropout(dropout)

        def set_prior(self, prior_logits):
            with torch.no_grad():
                self.output.bias.copy_(torch.as_tensor(prior_logits))

        def classify(self, states, mask):
            padding = (mask == 0).unsqueeze(-1)
            pooled = states.masked_fill(padding, float("-inf")).amax(dim=1)
            return self.output(self.dropout(torch.relu(self.hidden(pooled))))
''')

FILES = {"pyproject.toml": PYPROJECT, "hmtc_toy_centroid.py": CLASSICAL,
         "hmtc_toy_maxpool.py": NEURAL, "hmtc_toy_maxpool_net.py": NETWORK}
HAS_TORCH = all(importlib.util.find_spec(m) is not None
                for m in ("torch", "transformers", "safetensors"))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch, transformers or safetensors "
                                                       "not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The plugin package written and installed into a private folder (not site-packages)."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "hmtc-toy-methods"
    package.mkdir()
    for name, text in FILES.items():
        (package / name).write_text(text, encoding="utf-8")
    target = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--quiet",
         "--target", str(target), str(package)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def run_in(site, *argv: str) -> str:
    """Run ``python *argv`` in a fresh interpreter that sees the installed plugin; its
    stdout."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def run_python(site, code: str) -> str:
    return run_in(site, "-c", textwrap.dedent(code))


def test_cli_lists_the_installed_methods(site):
    listed = json.loads(run_in(site, "-m", "hmtc_bench.cli", "list", "--json"))["methods"]
    methods = {m["name"]: m for m in listed}
    assert methods["toy-centroid"]["available"], methods["toy-centroid"]["reason"]
    assert methods["toy-centroid"]["family"] == "flat"
    assert methods["toy-centroid"]["entry_point"] == "hmtc_toy_centroid:LabelCentroid"
    if HAS_TORCH:
        assert methods["toy-maxpool"]["available"], methods["toy-maxpool"]["reason"]
    assert "flat-svm" in methods and "msml" in methods       # the built-in ones still there
    text = run_in(site, "-m", "hmtc_bench.cli", "list")
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    for name in ("toy-centroid", "toy-maxpool") if HAS_TORCH else ("toy-centroid",):
        assert rows[name].split()[1:] == ["flat", "available"], rows[name]


def test_listing_imports_no_torch(site):
    run_python(site, """
        import sys
        from hmtc_bench.methods import list_methods
        assert {m.name for m in list_methods() if m.available} >= {"toy-centroid"}
        assert "torch" not in sys.modules, "listing imported torch"
    """)


def test_classical_plugin_passes_the_conformance_suite(site):
    out = run_python(site, """
        from hmtc_bench.methods import get_method
        from hmtc_bench.testing import check_method
        cls = get_method("toy-centroid")
        assert cls.__module__ == "hmtc_toy_centroid", cls.__module__
        check_method(cls)
        print("conformant")
    """)
    assert out.strip().endswith("conformant")


@needs_torch
def test_neural_plugin_passes_the_conformance_suite(site):
    out = run_python(site, """
        import inspect
        import torch
        torch.set_num_threads(1)
        from hmtc_bench.methods import get_method
        from hmtc_bench.methods.neural.base import MODEL_PARAMS, RUN_PARAMS
        from hmtc_bench.testing import check_method
        cls = get_method("toy-maxpool")
        assert cls.__module__ == "hmtc_toy_maxpool", cls.__module__
        params = cls().get_params()
        assert list(params) == [*MODEL_PARAMS, "hidden_size", *RUN_PARAMS], list(params)
        assert params["hidden_size"] == 256 and params["encoder"] == "default"
        assert list(inspect.signature(cls).parameters) == list(params)
        assert cls(hidden_size=8, epochs=2).clone().get_params()["epochs"] == 2
        check_method(cls)
        print("conformant")
    """)
    assert out.strip().endswith("conformant")
