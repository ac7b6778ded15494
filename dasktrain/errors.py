"""Exceptions raised by dasktrain.

Every error dasktrain raises on purpose derives from :class:`DasktrainError`, so
``except dasktrain.errors.DasktrainError`` catches them all. Messages name the
table, column or value at fault and say how to fix it.

::

    DasktrainError
    ├── DatabaseConnectionError   the server cannot be reached (password never shown)
    ├── SchemaError               a table or column is missing, or exists when it must not
    │   ├── InvalidNameError      a table or column name that is not a plain SQL identifier
    │   └── TableExistsError      the table to create is already there
    └── DataError                 the data itself is unusable: empty, ragged, NaN, mismatched
"""

from __future__ import annotations

__all__ = [
    "DasktrainError",
    "DatabaseConnectionError",
    "SchemaError",
    "InvalidNameError",
    "TableExistsError",
    "DataError",
]


class DasktrainError(Exception):
    """Base class of every error raised by dasktrain."""


class DatabaseConnectionError(DasktrainError, ConnectionError):
    """The database server could not be reached with the given DSN."""


class SchemaError(DasktrainError, LookupError):
    """A table or column does not exist, or has a type dasktrain cannot use."""


class InvalidNameError(SchemaError, ValueError):
    """A table or column name is not a plain SQL identifier."""


class TableExistsError(SchemaError):
    """The table to be created already exists."""


class DataError(DasktrainError, ValueError):
    """The data cannot be used as given: empty, ragged, non-numeric, or mismatched lengths."""
