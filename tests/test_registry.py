"""The registry with a dummy third-party plugin package, registered the way pip would:
a *.dist-info folder with entry_points.txt on sys.path."""

import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write
from hmtc_bench.cli import app
from hmtc_bench.methods import get_method, inspect_method, list_methods, method_names
from hmtc_bench.plugins import UnknownNameError

PLUGIN = textwrap.dedent('''
    import numpy as np
    from hmtc_bench.methods.base import HMTCMethod

    class LabelPrior(HMTCMethod):
        """Scores every document with the training frequency of each label."""
        TAGS = {"family": "flat"}

        def __init__(self, smoothing=1.0, random_state=0):
            self.smoothing = smoothing
            self.random_state = random_state

        def _fit(self, texts, Y, hierarchy, dev):
            counts = np.asarray(Y.sum(axis=0)).ravel()
            self.prior_ = (counts + self.smoothing) / (Y.shape[0] + 2 * self.smoothing)

        def _predict_proba(self, texts):
            return np.tile(self.prior_, (len(texts), 1))
''')

ENTRY_POINTS = """\
[hmtc_bench.methods]
dummy-prior = dummy_hmtc_plugin:LabelPrior
broken-plugin = dummy_hmtc_plugin.missing:Nothing
not-a-method = dummy_hmtc_plugin:np
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    write(tmp_path / "dummy_hmtc_plugin" / "__init__.py", PLUGIN)
    info = tmp_path / "dummy_hmtc_plugin-0.1.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: dummy-hmtc-plugin\nVersion: 0.1\n")
    write(info / "entry_points.txt", ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("dummy_hmtc_plugin", None)


def test_builtin_registered_through_entry_points():
    assert "flat-svm" in method_names()
    info = inspect_method("flat-svm")
    assert info.available and info.family == "flat" and info.distribution == "hmtc-bench"


def test_third_party_plugin_is_listed_and_runs(plugin, synthetic):
    names = method_names()
    assert {"dummy-prior", "broken-plugin", "not-a-method"} <= set(names)
    cls = get_method("dummy-prior")
    model = cls().fit(synthetic.train.texts, synthetic.train.Y, synthetic.hierarchy)
    proba = model.predict_proba(synthetic.test.texts[:3])
    assert proba.shape == (3, len(synthetic.hierarchy))
    assert np.allclose(proba[0], proba[1])


def test_broken_plugins_reported_not_fatal(plugin):
    infos = {m.name: m for m in list_methods()}
    assert infos["dummy-prior"].available
    assert not infos["broken-plugin"].available
    assert "ModuleNotFoundError" in infos["broken-plugin"].reason
    assert "not an HMTCMethod" in infos["not-a-method"].reason
    with pytest.raises(RuntimeError, match="broken-plugin.*unavailable"):
        get_method("broken-plugin")
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    assert "broken-plugin" in result.output and "unavailable" in result.output


def test_cli_runs_plugin(plugin, tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(app, ["run", "--method", "dummy-prior", "--dataset", "synthetic",
                                      "--tracking-uri", uri, "--param", "smoothing=2"])
    assert result.exit_code == 0, result.output
    assert "micro_f1" in result.output


def test_unknown_method_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean flat-svm"):
        get_method("flat-svn")
