"""Tracking: the results store (MLflow), the only package of hmtc-bench that imports mlflow.

``Store`` writes run records (``hmtc_bench.record.RunRecord``) and reads them back; see
``hmtc_bench.tracking.store`` for what it guarantees and ``hmtc_bench.tracking.mapping`` for
how a record maps onto an MLflow run.
"""

from hmtc_bench.tracking.mapping import TRAINING_FIELDS
from hmtc_bench.tracking.store import DEFAULT_DB, Store, artifact_root, keep_locally, resolve_uri

__all__ = ["DEFAULT_DB", "TRAINING_FIELDS", "Store", "artifact_root", "keep_locally",
           "resolve_uri"]
