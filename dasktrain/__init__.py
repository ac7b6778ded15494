"""dasktrain: train Keras models with Dask on data in Greenplum and PostgreSQL.

Examples
--------
>>> import dasktrain
>>> db = dasktrain.connect()  # doctest: +SKIP
>>> ddf = dasktrain.read_table(db, "fashion_mnist_train")  # doctest: +SKIP
"""

from .runtime import _quiet  # noqa: F401  (first: it quiets TensorFlow's start-up before anything imports it)

# isort: split
from . import errors
from ._version import __version__
from .io._arrays import to_arrays
from .io._database import Database, connect, redact_dsn
from .io._dialect import Dialect
from .io._read import read_table
from .io._segments import Segment, segments
from .models._architectures import delete_architecture, list_architectures, load_architecture
from .models._model_store import delete_model, list_models, load_model, model_summary, save_model
from .models._result import TrainingResult
from .models._selection_result import GroupResult, SelectionResult
from .models._selection_store import save_models
from .runtime._cluster import cluster
from .runtime._placement import gpu_configuration
from .score._evaluate import evaluate
from .score._predict import predict, predict_table
from .select._configs import ModelConfig, model_configs
from .select._distributions import choice, log_near_one, loguniform, uniform
from .select._fit_groups import fit_groups
from .select._fit_multiple import fit_multiple
from .select._hyperband import hyperband_schedule
from .select._hyperband_search import hyperband, successive_halving
from .select._selection_table import load_model_selection, save_model_selection
from .strategies import EASGD, Averaging, Centralized, Ensemble, SlowMo, Strategy
from .train._early_stopping import EarlyStopping
from .train._fit import fit

__all__ = [
    "EASGD",
    "Averaging",
    "Centralized",
    "Database",
    "Dialect",
    "EarlyStopping",
    "GroupResult",
    "Ensemble",
    "ModelConfig",
    "Segment",
    "SelectionResult",
    "SlowMo",
    "Strategy",
    "TrainingResult",
    "__version__",
    "choice",
    "cluster",
    "connect",
    "delete_architecture",
    "delete_model",
    "errors",
    "evaluate",
    "fit",
    "fit_groups",
    "fit_multiple",
    "gpu_configuration",
    "hyperband",
    "hyperband_schedule",
    "list_architectures",
    "list_models",
    "load_architecture",
    "load_model",
    "load_model_selection",
    "log_near_one",
    "loguniform",
    "model_configs",
    "model_summary",
    "predict",
    "predict_table",
    "read_table",
    "redact_dsn",
    "save_model",
    "save_model_selection",
    "save_models",
    "segments",
    "successive_halving",
    "to_arrays",
    "uniform",
]
