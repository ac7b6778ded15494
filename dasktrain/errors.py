"""Exceptions raised by dasktrain.

Every error dasktrain raises on purpose derives from :class:`DasktrainError`, so
``except dasktrain.errors.DasktrainError`` catches them all. Messages name the
table, column, segment or value at fault and say how to fix it.

::

    DasktrainError
    ├── DatabaseConnectionError   the server cannot be reached (password never shown)
    │   └── ConnectionLostError   the connection broke mid-work and retries did not help
    ├── SchemaError               a table or column is missing, or exists when it must not
    │   ├── InvalidNameError      a table or column name that is not a plain SQL identifier
    │   └── TableExistsError      the table to create is already there
    ├── DataError                 the data itself is unusable: empty, ragged, NaN, mismatched
    │   └── TrainingDivergedError the loss became NaN or infinite during fit
    └── ClusterError              the Dask cluster cannot do the work
        ├── NoWorkersError        no worker joined (or all left) within the time allowed
        ├── SegmentFailedError    one segment's task failed more times than allowed
        └── GPUError              GPUs asked for and missing, or a worker could not take its share
"""

from __future__ import annotations

__all__ = [
    "DasktrainError",
    "DatabaseConnectionError",
    "ConnectionLostError",
    "SchemaError",
    "InvalidNameError",
    "TableExistsError",
    "DataError",
    "TrainingDivergedError",
    "ClusterError",
    "NoWorkersError",
    "SegmentFailedError",
    "GPUError",
]


class DasktrainError(Exception):
    """Base class of every error raised by dasktrain."""


class DatabaseConnectionError(DasktrainError, ConnectionError):
    """The database server could not be reached with the given DSN."""


class ConnectionLostError(DatabaseConnectionError):
    """The connection to the database broke during the work (a restart, a terminated backend).

    Transient failures are retried with bounded backoff first; this is raised when they persist.
    """


class SchemaError(DasktrainError, LookupError):
    """A table or column does not exist, or has a type dasktrain cannot use."""


class InvalidNameError(SchemaError, ValueError):
    """A table or column name is not a plain SQL identifier."""


class TableExistsError(SchemaError):
    """The table to be created already exists."""


class DataError(DasktrainError, ValueError):
    """The data cannot be used as given: empty, ragged, non-numeric, or mismatched lengths."""


class TrainingDivergedError(DataError):
    """A segment's loss (or the merged model) became NaN or infinite; the message names where."""


class ClusterError(DasktrainError, RuntimeError):
    """The Dask cluster could not run the work."""


class NoWorkersError(ClusterError):
    """No Dask worker was available within the time allowed (``dasktrain.worker-timeout``)."""


class SegmentFailedError(ClusterError):
    """One segment's task failed (its worker died) more times than allowed."""


class GPUError(ClusterError):
    """GPUs were asked for that the cluster does not have, or a worker could not take its share of one."""
