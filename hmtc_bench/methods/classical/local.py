"""Local methods: classifiers attached to the hierarchy, per node, per parent node, per level.

All three take the base estimator by name (``estimator``: ``svm``, ``logreg``,
``lightgbm``; overrides in ``estimator_params``; the table is
``hmtc_bench.methods.classical.features.ESTIMATORS``), share the TF-IDF features of the flat
methods, handle multi-label, multi-path documents, DAGs and leaves at different depths, and
fit their independent classifiers in parallel (``n_jobs``).

Scores and ``predict_proba``
----------------------------
Each local classifier gives an *own score* s(c) in [0, 1] for a label c: the logistic
function of its decision value (0.5 = the estimator's own decision boundary, whatever the
estimator). ``predict_proba`` chains the own scores down the hierarchy, parents first:

* ``chain="min"`` (default): p(c) = min(s(c), p(parent) for every parent of c).
  Decoding p at a threshold t accepts exactly the labels reached by descending from the
  root into every child whose own score passes t: top-down prediction, multi-path.
* ``chain="product"``: p(c) = s(c) * min over parents of p(parent), the chain rule when the
  own score is read as P(c | parents).

Mandatory children (``mandatory_child``): a document that reaches a node where training
documents never stop (every training document with the node also has one of its
children; the root always, as every document has a label) goes on to the node's
best-scoring child whatever its score: that child's own score is set to 1 before chaining,
so it inherits its parent's probability. With ``"learned"`` (default) this applies to the
nodes seen so in training: single-path data then gets full paths, as HiClass predicts
them, while in data such as RCV1-V2, where documents stop at some inner nodes, those nodes
keep the plain threshold; ``"always"`` applies it to every inner node, ``"never"`` to none.

Either way p(c) <= p(parent), so both decoding policies (``threshold`` and ``top-down``)
give label sets closed under ancestors at any threshold: the methods are consistent by
construction. Row i depends only on text i (no normalisation over the batch), and every
label gets a probability, whatever its depth.

Edge cases
----------
A classifier whose training rows hold no positive (a label never seen, or seen only with
other parents) scores a constant ~0; one whose rows hold no negative (a single child that
always follows its parent) scores a constant ~1; neither crashes. A DAG label with two
parents is only predicted when both parents are.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hmtc_bench.methods.classical.features import ESTIMATORS, Task, TfidfMethod
from hmtc_bench.methods.params import choice, mapping

CHAINS = ("min", "product")
MANDATORY_CHILD = ("learned", "always", "never")
NEGATIVE_POLICIES = ("siblings", "parent", "all")


class _LocalMethod(TfidfMethod):
    """Shared fit / predict of the local methods; subclasses define ``_tasks``."""

    TAGS = {"family": "local", "requires": ("sklearn",), "consistent_by_construction": True,
            "supports_dag": True}
    # the TF-IDF's in TfidfMethod.PARAM_SPECS; estimator_params are checked by the estimator's
    # specs (classical.estimators) in _check_params
    PARAM_SPECS = {"estimator": choice(*ESTIMATORS), "estimator_params": mapping(none=True),
                   "chain": choice(*CHAINS), "mandatory_child": choice(*MANDATORY_CHILD)}

    def __init__(self, estimator: str = "svm", estimator_params: dict | None = None,
                 chain: str = "min", mandatory_child: str = "learned", ngram_max: int = 2,
                 min_df: int = 1, max_features: int | None = 200_000,
                 sublinear_tf: bool = True, char_ngrams: bool = False, n_jobs: int = 1,
                 random_state: int = 0):
        self.estimator = estimator
        self.estimator_params = estimator_params
        self.chain = chain
        self.mandatory_child = mandatory_child
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.char_ngrams = char_ngrams
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return {"max_features": 5000}

    # ------------------------------------------------------------------ fit
    def _estimator_name(self) -> str:
        return self.estimator

    def _estimator_params(self) -> dict | None:
        return self.estimator_params

    def _check_params(self) -> None:
        super()._check_params()     # the estimator's name and parameters
        if self.chain not in CHAINS:
            raise ValueError(f"{type(self).__name__}: unknown chain {self.chain!r}; "
                             f"choose one of {CHAINS}")
        if self.mandatory_child not in MANDATORY_CHILD:
            raise ValueError(f"{type(self).__name__}: unknown mandatory_child "
                             f"{self.mandatory_child!r}; choose one of {MANDATORY_CHILD}")

    def _tasks(self, Y: sp.csc_matrix, hierarchy) -> tuple[list[Task], list[int]]:
        """The binary problems and, for each, the column of the label it scores."""
        raise NotImplementedError

    def _fit_features(self, X, Y, hierarchy) -> None:
        tasks, columns = self._tasks(Y, hierarchy)
        self.task_labels_ = np.asarray(columns, dtype=np.int64)
        self.bank_ = self._fit_bank(X, tasks)
        self._parents_ = _padded_parents(hierarchy)
        self.mandatory_nodes_ = _mandatory_nodes(Y, hierarchy, self.mandatory_child)
        self._mandatory_ = [np.array([hierarchy.index[c] for c in hierarchy.children(node)])
                            for node in self.mandatory_nodes_]

    def _load_state(self, reader) -> None:
        super()._load_state(reader)     # the bank, task_labels_ and mandatory_nodes_
        hierarchy = self.hierarchy_
        self._parents_ = _padded_parents(hierarchy)
        self._mandatory_ = [np.array([hierarchy.index[c] for c in hierarchy.children(node)])
                            for node in self.mandatory_nodes_]

    # ------------------------------------------------------------------ predict
    def own_scores(self, texts) -> np.ndarray:
        """Own scores s (n, L) of every label, before chaining (see the module docstring)."""
        return self._own_scores(self.transform(list(texts)))

    def _own_scores(self, X) -> np.ndarray:
        return _scatter_min(self.bank_.predict(X), self.task_labels_, self.n_labels_)

    def _proba_from_features(self, X) -> np.ndarray:
        own = self._own_scores(X)
        rows = np.arange(own.shape[0])
        for children in self._mandatory_:      # the best child of a mandatory node: s = 1
            best = children[np.argmax(own[:, children], axis=1)]
            own[rows, best] = 1.0
        return chain_scores(own, self.hierarchy_, self.chain, self._parents_)


class LocalNode(_LocalMethod):
    """A binary classifier per non-root node (HiClass's local classifier per node).

    Parameters
    ----------
    estimator : {"svm", "logreg", "lightgbm"}
    estimator_params : dict, optional
        Overrides of the estimator's defaults (``classical.features.ESTIMATORS``).
    negatives : {"siblings", "parent", "all"}
        Which documents train the node's classifier; positives are always the documents
        with the node (which, label sets being closed, includes those with a descendant):

        * ``siblings``: negatives are the documents with a sibling of the node (another
          child of one of its parents) but not the node itself (HiClass's default);
        * ``parent``: negatives are the documents with a parent of the node but not the node,
          that is the siblings' documents and those whose path stops at the parent;
        * ``all``: negatives are all documents without the node: every non-descendant
          (HiClass's ``less_inclusive``).
    chain : {"min", "product"}
        How own scores combine down the hierarchy (module docstring).
    mandatory_child : {"learned", "always", "never"}
        Which inner nodes always pass a document on to their best child (module docstring).
    ngram_max, min_df, max_features, sublinear_tf, char_ngrams
        TF-IDF features (``classical.features.make_vectorizer``).
    n_jobs : int
        Node classifiers fitted in parallel.
    random_state : int

    ``predict_proba`` with ``chain="min"``: p(c) = min(s(c), p(parents)), where s(c) is the
    node classifier's own score, so thresholding p descends from the root into every child
    whose score passes the threshold.
    """

    PARAM_SPECS = {"negatives": choice(*NEGATIVE_POLICIES)}

    def __init__(self, estimator: str = "svm", estimator_params: dict | None = None,
                 negatives: str = "siblings", chain: str = "min",
                 mandatory_child: str = "learned", ngram_max: int = 2, min_df: int = 1,
                 max_features: int | None = 200_000, sublinear_tf: bool = True,
                 char_ngrams: bool = False, n_jobs: int = 1, random_state: int = 0):
        super().__init__(estimator=estimator, estimator_params=estimator_params, chain=chain,
                         mandatory_child=mandatory_child, ngram_max=ngram_max, min_df=min_df,
                         max_features=max_features,
                         sublinear_tf=sublinear_tf, char_ngrams=char_ngrams, n_jobs=n_jobs,
                         random_state=random_state)
        self.negatives = negatives

    def _check_params(self) -> None:
        super()._check_params()
        if self.negatives not in NEGATIVE_POLICIES:
            raise ValueError(f"LocalNode: unknown negatives policy {self.negatives!r}; "
                             f"choose one of {NEGATIVE_POLICIES}")

    def _tasks(self, Y, hierarchy):
        index = hierarchy.index
        tasks, columns = [], []
        shared: dict = {}          # one row array per group, shared by its tasks
        for j, label in enumerate(hierarchy.labels):
            parents = [index[p] for p in hierarchy.parents(label) if p != hierarchy.root]
            if self.negatives == "all" or (self.negatives == "parent" and not parents):
                group, columns_in = "all", None
            elif self.negatives == "parent":
                group, columns_in = ("parents", tuple(parents)), parents
            else:  # siblings: the documents of any child of any parent of the label
                columns_in = sorted({index[c] for p in hierarchy.parents(label)
                                     for c in hierarchy.children(p)})
                group = ("family", tuple(columns_in))
            if group not in shared:
                shared[group] = None if columns_in is None else _rows_with_any(Y, columns_in)
            rows = shared[group]
            y = _column(Y, j) if rows is None else _column(Y, j)[rows]
            tasks.append(Task(rows, y, group))
            columns.append(j)
        return tasks, columns


class LocalParent(_LocalMethod):
    """A multi-label classifier per internal node (and the root) over its children, trained
    on the documents that reach the node (HiClass's local classifier per parent node, made
    multi-label): one-vs-rest over the children, so a document may go down several of them,
    or none when its path stops at the node.

    Parameters: as ``LocalNode`` without ``negatives``.

    ``predict_proba`` with ``chain="min"``: p(c) = min(s_p(c), p(p)) over every parent p of c,
    where s_p(c) is the score of c by the classifier of parent p (a DAG label has one
    classifier per parent).
    """

    def _tasks(self, Y, hierarchy):
        index = hierarchy.index
        tasks, columns = [], []
        for parent in (hierarchy.root, *hierarchy.labels):
            children = hierarchy.children(parent)
            if not children:
                continue
            rows = None if parent == hierarchy.root else _rows_with_any(Y, [index[parent]])
            for child in children:
                j = index[child]
                y = _column(Y, j) if rows is None else _column(Y, j)[rows]
                tasks.append(Task(rows, y, ("parent", parent)))
                columns.append(j)
        return tasks, columns


class LocalLevel(_LocalMethod):
    """A multi-label classifier per level (HiClass's local classifier per level, made
    multi-label): one-vs-rest over the labels of level k, trained on the documents that
    carry a parent of one of them (all documents for level 1; documents whose path ends
    above level k cannot be positive and are left out), then decoded consistently by
    chaining.

    Parameters: as ``LocalNode`` without ``negatives``.

    ``predict_proba`` with ``chain="min"``: p(c) = min(s(c), p(parents)), s(c) the score of c
    by its level's classifier.
    """

    def _tasks(self, Y, hierarchy):
        index = hierarchy.index
        tasks, columns = [], []
        for level in range(1, hierarchy.depth + 1):
            parents = sorted({index[p] for j in hierarchy.level_columns(level)
                              for p in hierarchy.parents(hierarchy.labels[j])
                              if p != hierarchy.root})
            rows = None if level == 1 else _rows_with_any(Y, parents)
            for j in hierarchy.level_columns(level):
                y = _column(Y, j) if rows is None else _column(Y, j)[rows]
                tasks.append(Task(rows, y, ("level", level)))
                columns.append(int(j))
        return tasks, columns


# ---------------------------------------------------------------------- helpers
def _column(Y: sp.csc_matrix, j: int) -> np.ndarray:
    y = np.zeros(Y.shape[0], dtype=np.int8)
    y[Y.indices[Y.indptr[j]:Y.indptr[j + 1]]] = 1
    return y


def _rows_with_any(Y: sp.csc_matrix, columns) -> np.ndarray:
    """Sorted indices of the documents carrying at least one of ``columns``."""
    columns = list(columns)
    if not columns:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([Y.indices[Y.indptr[j]:Y.indptr[j + 1]]
                                     for j in columns])).astype(np.int64)


def _scatter_min(scores: np.ndarray, columns: np.ndarray, n_labels: int) -> np.ndarray:
    """(n, L) own scores from (n, K) task scores: the minimum over the tasks of a label."""
    order = np.argsort(columns, kind="stable")
    labels, starts = np.unique(columns[order], return_index=True)
    own = np.zeros((scores.shape[0], n_labels))
    own[:, labels] = np.minimum.reduceat(scores[:, order], starts, axis=1)
    return own


def _mandatory_nodes(Y: sp.csc_matrix, hierarchy, rule: str) -> list[str]:
    """Inner nodes (the root included) whose documents must go on to a child: every one
    for ``always``, none for ``never``; for ``learned``, those with training documents, all
    of which carry one of the node's children."""
    inner = [node for node in (hierarchy.root, *hierarchy.labels) if hierarchy.children(node)]
    if rule == "never":
        return []
    if rule == "always":
        return inner
    index = hierarchy.index
    labelled = np.flatnonzero(np.diff(Y.tocsr().indptr) > 0)
    out = []
    for node in inner:
        reach = labelled if node == hierarchy.root else _rows_with_any(Y, [index[node]])
        below = _rows_with_any(Y, [index[c] for c in hierarchy.children(node)])
        if len(reach) and len(np.setdiff1d(reach, below, assume_unique=True)) == 0:
            out.append(node)
    return out


def _padded_parents(hierarchy) -> np.ndarray:
    """(L, P) column of each label's non-root parents, padded by repeating the first; -1 for
    top-level labels."""
    lists = [[hierarchy.index[p] for p in hierarchy.parents(lab) if p != hierarchy.root]
             for lab in hierarchy.labels]
    width = max(1, max(len(ps) for ps in lists))
    out = np.full((len(lists), width), -1, dtype=np.int64)
    for j, ps in enumerate(lists):
        if ps:
            out[j] = ps + [ps[0]] * (width - len(ps))
    return out


def chain_scores(own: np.ndarray, hierarchy, chain: str = "min",
                 parents: np.ndarray | None = None) -> np.ndarray:
    """Chain own scores (n, L) down the hierarchy (parents on higher levels are settled
    first): ``min``: p(c) = min(s(c), p(parents)); ``product``: p(c) = s(c) * min p(parents)."""
    if chain not in CHAINS:
        raise ValueError(f"unknown chain {chain!r}; choose one of {CHAINS}")
    parents = _padded_parents(hierarchy) if parents is None else parents
    proba = np.array(own, dtype=np.float64, copy=True)
    for level in range(2, hierarchy.depth + 1):
        cols = hierarchy.level_columns(level)
        gate = proba[:, parents[cols]].min(axis=2)          # (n, |cols|)
        if chain == "min":
            proba[:, cols] = np.minimum(proba[:, cols], gate)
        else:
            proba[:, cols] = proba[:, cols] * gate
    return proba
