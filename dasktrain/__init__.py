"""dasktrain: train Keras models with Dask on data in Greenplum and PostgreSQL.

Examples
--------
>>> import dasktrain
>>> db = dasktrain.connect()  # doctest: +SKIP
>>> ddf = dasktrain.read_table(db, "fashion_mnist_train")  # doctest: +SKIP
"""

from . import _quiet, errors  # noqa: F401  (_quiet first: it quiets TensorFlow start-up before anything imports it)
from ._architectures import delete_architecture, list_architectures, load_architecture
from ._arrays import to_arrays
from ._cluster import cluster
from ._database import Database, connect, redact_dsn
from ._dialect import Dialect
from ._early_stopping import EarlyStopping
from ._evaluate import evaluate
from ._fit import fit
from ._model_store import delete_model, list_models, load_model, model_summary, save_model
from ._placement import gpu_configuration
from ._predict import predict, predict_table
from ._read import read_table
from ._result import TrainingResult
from ._segments import Segment, segments
from ._version import __version__
from .strategies import EASGD, Averaging, Centralized, Ensemble, SlowMo, Strategy

__all__ = [
    "EASGD",
    "Averaging",
    "Centralized",
    "Database",
    "Dialect",
    "EarlyStopping",
    "Ensemble",
    "Segment",
    "SlowMo",
    "Strategy",
    "TrainingResult",
    "__version__",
    "cluster",
    "connect",
    "delete_architecture",
    "delete_model",
    "errors",
    "evaluate",
    "fit",
    "gpu_configuration",
    "list_architectures",
    "list_models",
    "load_architecture",
    "load_model",
    "model_summary",
    "predict",
    "predict_table",
    "read_table",
    "redact_dsn",
    "save_model",
    "segments",
    "to_arrays",
]
