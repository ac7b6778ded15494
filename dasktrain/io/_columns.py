"""How each column travels: its SQL type on the wire and the numpy values it decodes to.

A :class:`ColumnSpec` is built once on the client from the catalog (and, for our own
tables, the ``<table>_summary`` metadata) and shipped to the workers with the query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psycopg2 import sql

from ..errors import SchemaError

SCALAR = "scalar"  # int2/int4/int8/float4/float8/bool (and numeric, cast to float8)
ARRAY = "array"  # MADlib-style numeric arrays: smallint[], integer[], bigint[], real[], double precision[]
TENSOR = "tensor"  # bytea holding raw values, with dtype and shape in <table>_summary
BYTES = "bytes"  # bytea without metadata
TEXT = "text"  # text, varchar and every other type, sent as text

# PostgreSQL type name -> numpy dtype of its binary wire format (big-endian).
_NUMERIC_TYPES = {
    "int2": np.dtype(">i2"),
    "int4": np.dtype(">i4"),
    "int8": np.dtype(">i8"),
    "float4": np.dtype(">f4"),
    "float8": np.dtype(">f8"),
    "bool": np.dtype("?"),
}
_CAST_TO_FLOAT8 = {"numeric", "money"}
_TEXT_TYPES = {"text", "varchar", "bpchar", "name"}

# numpy dtype -> (SQL type, wire dtype) used when a loader stores one value per row.
_SQL_TYPE_FOR = {
    "b": ("boolean", np.dtype("?")),
    "i1": ("smallint", np.dtype(">i2")),
    "u1": ("smallint", np.dtype(">i2")),
    "i2": ("smallint", np.dtype(">i2")),
    "u2": ("integer", np.dtype(">i4")),
    "i4": ("integer", np.dtype(">i4")),
    "u4": ("bigint", np.dtype(">i8")),
    "i8": ("bigint", np.dtype(">i8")),
    "u8": ("bigint", np.dtype(">i8")),
    "f2": ("real", np.dtype(">f4")),
    "f4": ("real", np.dtype(">f4")),
    "f8": ("double precision", np.dtype(">f8")),
}


@dataclass(frozen=True)
class ColumnSpec:
    """One column to read: ``kind`` says how its bytes decode.

    ``wire`` is the numpy dtype of one value (or array element) on the wire; ``dtype`` the
    dtype handed to the user; ``shape`` the per-row shape of a tensor column.
    """

    name: str
    kind: str
    wire: np.dtype | None = None
    dtype: np.dtype | None = None
    shape: tuple[int, ...] = ()
    cast: str | None = None  # SQL type to cast to in the SELECT, if any

    def select_sql(self) -> sql.Composable:
        """The column's expression in the SELECT list."""
        column = sql.Identifier(self.name)
        if self.cast is None:
            return column
        return sql.SQL("{}::{} AS {}").format(column, sql.SQL(self.cast), column)


def spec_from_catalog(name: str, type_name: str, element_type: str | None, metadata: dict | None) -> ColumnSpec:
    """Choose how to read a column from its catalog type and optional stored metadata.

    >>> spec_from_catalog("y", "int4", None, None).kind
    'scalar'
    """
    if metadata is not None:
        dtype = np.dtype(metadata["dtype"])
        shape = tuple(int(d) for d in metadata.get("shape", ()))
        if type_name == "bytea":
            return ColumnSpec(name, TENSOR, wire=dtype, dtype=dtype.newbyteorder("="), shape=shape)
        if type_name in _NUMERIC_TYPES and not shape:
            return ColumnSpec(name, SCALAR, wire=_NUMERIC_TYPES[type_name], dtype=dtype)
    if type_name in _NUMERIC_TYPES:
        wire = _NUMERIC_TYPES[type_name]
        return ColumnSpec(name, SCALAR, wire=wire, dtype=wire.newbyteorder("="))
    if type_name in _CAST_TO_FLOAT8:
        return ColumnSpec(name, SCALAR, wire=np.dtype(">f8"), dtype=np.dtype("f8"), cast="double precision")
    if element_type is not None:
        if element_type in _NUMERIC_TYPES and element_type != "bool":
            wire = _NUMERIC_TYPES[element_type]
            return ColumnSpec(name, ARRAY, wire=wire, dtype=wire.newbyteorder("="))
        if element_type in _CAST_TO_FLOAT8:
            return ColumnSpec(name, ARRAY, wire=np.dtype(">f8"), dtype=np.dtype("f8"), cast="double precision[]")
        raise SchemaError(
            f"Column {name!r} is an array of {element_type}, which dasktrain cannot read as numbers. "
            f"Supported arrays: smallint[], integer[], bigint[], real[], double precision[], numeric[]."
        )
    if type_name == "bytea":
        return ColumnSpec(name, BYTES)
    if type_name in _TEXT_TYPES:
        return ColumnSpec(name, TEXT)
    return ColumnSpec(name, TEXT, cast="text")


def sql_type_for(dtype: np.dtype) -> tuple[str, np.dtype]:
    """The SQL column type and wire dtype that store one ``dtype`` value per row exactly.

    >>> sql_type_for(np.dtype("uint8"))[0]
    'smallint'
    """
    key = "b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"
    try:
        return _SQL_TYPE_FOR[key]
    except KeyError:
        raise TypeError(f"No SQL column type stores dtype {dtype} exactly.") from None
