"""dasktrain: train Keras models with Dask on data in Greenplum and PostgreSQL.

Examples
--------
>>> import dasktrain
>>> db = dasktrain.connect()  # doctest: +SKIP
>>> ddf = dasktrain.read_table(db, "fashion_mnist_train")  # doctest: +SKIP
"""

from . import errors
from ._arrays import to_arrays
from ._database import Database, connect, redact_dsn
from ._dialect import Dialect
from ._read import read_table
from ._segments import Segment, segments

__version__ = "0.1.0"

__all__ = [
    "Database",
    "Dialect",
    "Segment",
    "connect",
    "errors",
    "read_table",
    "redact_dsn",
    "segments",
    "to_arrays",
]
