"""The method contract (scikit-learn estimator conventions).

* ``__init__`` only stores hyper-parameters (published defaults) and ``random_state``;
* ``fit(texts, Y, hierarchy, dev=None)`` returns self; learned state ends in ``_``;
  ``dev`` is an optional ``(texts, Y)`` pair for early stopping, never the test set;
* ``predict_proba(texts)`` returns an (n, L) array in the hierarchy's label order, and row i
  depends only on text i;
* ``predict(texts)`` decodes with a named policy (see ``hmtc_bench.evaluation.decoding``);
* ``save(path)`` writes the fitted method to a folder and ``load(path)`` (a class method;
  also ``hmtc_bench.methods.saving.load_model``) reads it back, predicting the same
  (``hmtc_bench.methods.saving``: no pickle, checksums, a format version); a method writes
  its learned state in ``_save_state(writer)`` and reads it in ``_load_state(reader)``;
* class-level tags (``TAGS``) and ``get_test_params()`` giving a configuration that fits the
  synthetic data in seconds;
* ``PARAM_SPECS`` (class attribute, next to the defaults): what each hyper-parameter
  accepts, name -> ``hmtc_bench.methods.params.Param``, e.g. ``{"C": number(gt=0),
  "chain": choice("min", "product"), "max_features": integer(ge=1, none=True)}``; merged
  along the base classes; an undeclared parameter is checked against its default's type.
  ``set_params`` (so ``MethodInfo.build``, ``make_method`` and the command line, before any
  data is loaded) checks and converts every value it is given (``"1e-3"`` -> 0.001 for a
  number) and raises ``ParameterError`` naming the method, the parameter, the value and
  what is allowed; checks across parameters go in ``_check_params()`` (raise
  ``ValueError``), which ``set_params`` runs after setting. ``__init__`` stores as given;
* ``SEARCH_SPACE`` (class attribute): what ``hmtc-bench tune`` may try for each parameter
  (``hmtc_bench.methods.search_space``), merged along the base classes like the specs;
* a method that trains in epochs calls ``report_epoch(epoch, dev_score)`` after each one, so
  that a tuner watching (``reporting_epochs``) can stop a hopeless trial (by raising from
  its callback).

A method never sees test labels and never computes or writes metrics. Method modules keep
their heavy imports (scikit-learn, torch) inside methods so that listing stays fast.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect

import numpy as np

from hmtc_bench.methods.params import InvalidParameterError, check_params, specs_of

FAMILIES = ("flat", "local", "global")
_EPOCH_WATCHER = contextvars.ContextVar("epoch_watcher", default=None)


@contextlib.contextmanager
def reporting_epochs(callback):
    """Within the block, ``report_epoch(epoch, score)`` calls ``callback(epoch, score)``."""
    token = _EPOCH_WATCHER.set(callback)
    try:
        yield
    finally:
        _EPOCH_WATCHER.reset(token)


def report_epoch(epoch: int, score: float | None) -> None:
    """Tell a watching tuner (``reporting_epochs``) an epoch's dev score; it may raise to
    stop the fit."""
    callback = _EPOCH_WATCHER.get()
    if callback is not None and score is not None:
        callback(epoch, score)

DEFAULT_TAGS = {
    "family": "flat",               # flat / local / global
    "requires": (),                 # importable modules needed, e.g. ("torch", "transformers")
    "consistent_by_construction": False,
    "supports_dag": True,
    "uses_dev": False,              # fit() uses dev for early stopping (else: a final model
                                    # is fitted on train + dev, see ``hmtc-bench train``)
}


class NotFittedError(RuntimeError):
    """predict or predict_proba called before fit."""


class HMTCMethod:
    """Base class of every method. Subclasses define ``__init__`` with keyword
    hyper-parameters stored under the same names, ``_fit`` and ``_predict_proba``."""

    TAGS: dict = {}
    # Parameters added after runs were recorded, with the value that keeps the earlier
    # behaviour: at that value a run's identity leaves the parameter out, so the runs recorded
    # before it existed stay the same configuration (see ``hmtc_bench.record``).
    ADDED_PARAMS: dict = {}
    # What each hyper-parameter accepts (name -> ``params.Param``; see the module docstring).
    PARAM_SPECS: dict = {}
    # What ``hmtc-bench tune`` may try (name -> ``search_space.Dimension``; see that module).
    SEARCH_SPACE: dict = {}

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name, p in signature.parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    @classmethod
    def search_space(cls) -> dict:
        """The declared search space (``search_space.space_of``)."""
        from hmtc_bench.methods.search_space import space_of
        return space_of(cls)

    @classmethod
    def param_specs(cls) -> dict:
        """Every hyper-parameter with what it accepts (``params.specs_of``)."""
        return specs_of(cls)

    def set_params(self, **params) -> "HMTCMethod":
        """Check, convert and set ``params``, then run ``_check_params``; a refused name or
        value raises ``ParameterError`` (an ``InvalidParameterError``) and changes nothing."""
        owner = type(self).__name__
        valid = self._param_names()
        for key in params:
            if key not in valid:
                raise InvalidParameterError(owner, f" has no parameter {key!r}; "
                                                   f"valid: {', '.join(valid)}")
        checked = check_params(owner, params, self.param_specs())
        before = {key: getattr(self, key) for key in checked}
        for key, value in checked.items():
            setattr(self, key, value)
        try:
            self._check_params()
        except ValueError as err:
            for key, value in before.items():
                setattr(self, key, value)
            if isinstance(err, InvalidParameterError):
                raise
            raise InvalidParameterError(owner, f": {str(err).removeprefix(owner + ': ')}") \
                from None
        return self

    def _check_params(self) -> None:
        """Checks across parameters (one value alone is checked by ``PARAM_SPECS``): raise a
        ``ValueError`` saying what is wrong. Run by ``set_params``; nothing here."""

    def omitted_params(self) -> list[str]:
        """The added parameters (``ADDED_PARAMS``) now at their earlier-behaviour value."""
        params = self.get_params()
        return sorted(k for k, v in self.ADDED_PARAMS.items() if k in params and params[k] == v)

    def clone(self) -> "HMTCMethod":
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        parameters = inspect.signature(type(self).__init__).parameters
        defaults = {n: p.default for n, p in parameters.items()}
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def resources(self) -> dict:
        """What one fit asks of a cluster (``hmtc_bench.executors``): ``cpus`` (cores) and
        ``gpu`` (whether it runs on a GPU when the cluster has one). One core here."""
        return {"cpus": 1, "gpu": False}

    @classmethod
    def tags(cls) -> dict:
        return {**DEFAULT_TAGS, **cls.TAGS}

    @classmethod
    def get_test_params(cls) -> dict:
        """Small parameters that fit the synthetic data in seconds."""
        return {}

    # ------------------------------------------------------------------ API
    def fit(self, texts, Y, hierarchy, dev=None) -> "HMTCMethod":
        import scipy.sparse as sp
        texts = _check_texts(texts)
        Y = sp.csr_matrix(Y)
        if Y.shape != (len(texts), len(hierarchy)):
            raise ValueError(f"Y has shape {Y.shape}; expected ({len(texts)}, {len(hierarchy)})")
        if dev is not None:
            dev = (_check_texts(dev[0]), sp.csr_matrix(dev[1]))
        if not hierarchy.is_tree and not self.tags()["supports_dag"]:
            raise ValueError(f"{type(self).__name__} does not support DAG hierarchies")
        self.hierarchy_ = hierarchy
        self.n_labels_ = len(hierarchy)
        self._fit(texts, Y, hierarchy, dev)
        return self

    def predict_proba(self, texts) -> np.ndarray:
        if not hasattr(self, "hierarchy_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.n_labels_))
        proba = np.asarray(self._predict_proba(texts), dtype=np.float64)
        return np.clip(proba, 0.0, 1.0)

    def predict(self, texts, policy: str = "threshold", threshold: float = 0.5):
        from hmtc_bench.evaluation.decoding import decode
        return decode(self.predict_proba(texts), self.hierarchy_, policy, threshold)

    # ------------------------------------------------------------------ saving
    def save(self, path, info: dict | None = None, overwrite: bool = False):
        """Save the fitted method to the folder ``path`` (``hmtc_bench.methods.saving``);
        ``info`` (JSON-able) says how it was fitted. Returns the folder."""
        from hmtc_bench.methods.saving import save_method
        return save_method(self, path, info, overwrite)

    @classmethod
    def load(cls, path) -> "HMTCMethod":
        """The fitted method saved in folder ``path``, checked before it is read; a model
        of another class than ``cls`` (or its subclasses) is refused."""
        from hmtc_bench.methods.saving import load_model
        return load_model(path, expected=cls)

    def _save_state(self, writer) -> None:
        """Write the learned state (everything ``predict_proba`` needs beyond the
        parameters and the hierarchy) with ``writer`` (a ``saving.ModelWriter``). Here:
        every learned attribute that is an array or a JSON value
        (``saving.save_attributes``); a method with other state writes it itself and
        passes the rest on."""
        from hmtc_bench.methods.saving import save_attributes
        save_attributes(writer, self)

    def _load_state(self, reader) -> None:
        """Set the learned state written by ``_save_state`` from ``reader`` (a
        ``saving.ModelReader``); ``hierarchy_`` and ``n_labels_`` are already set."""
        from hmtc_bench.methods.saving import load_attributes
        load_attributes(reader, self)

    # ------------------------------------------------------------------ to implement
    def _fit(self, texts: list[str], Y, hierarchy, dev) -> None:
        raise NotImplementedError

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
    return texts
