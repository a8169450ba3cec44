"""The classical methods: TF-IDF features and banks of binary scorers (scikit-learn,
LightGBM), no torch.

* ``features``: the TF-IDF vectorizer, the ``TfidfMethod`` base and the scorer banks every
  method here fits;
* ``estimators``: the base-estimator table (``ESTIMATORS`` / ``get_estimator``: defaults and
  what each parameter accepts), also importable from ``features``;
* ``flat``: ``flat-svm``, ``flat-logreg``, ``flat-lightgbm`` (one scorer per label);
* ``local``: ``local-node``, ``local-parent``, ``local-level`` (scorers attached to the
  hierarchy, chained down it).
"""
