"""PostgreSQL's binary COPY format, decoded and encoded with numpy on whole buffers.

Rows of fixed width (the normal case for numeric and array data) are read with one
structured-dtype view of the buffer: no Python work per row. Rows whose width varies
(text, NULLs) fall back to a row walker that is exact but slower.

Format reference: https://www.postgresql.org/docs/current/sql-copy.html ("Binary Format").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from ._columns import ARRAY, BYTES, SCALAR, TENSOR, TEXT, ColumnSpec

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_ARRAY_HEADER = struct.Struct(">iii")  # ndim, has-null flag, element type oid
_FLOAT_KINDS = "f"


class Irregular(Exception):
    """Rows differ in width or structure: use the row walker."""


def _body(buffer) -> memoryview:
    view = memoryview(buffer).cast("B")
    if bytes(view[: len(SIGNATURE)]) != SIGNATURE:
        raise DataError("The server's COPY output is not in PostgreSQL's binary format.")
    (extension,) = struct.unpack_from(">i", view, len(SIGNATURE) + 4)
    start = len(SIGNATURE) + 8 + extension
    if bytes(view[-2:]) != TRAILER:
        raise DataError("The server's COPY output ended early (no trailer): the read was cut off.")
    return view[start:-2]


def decode(buffer, specs: Sequence[ColumnSpec]) -> dict[str, np.ndarray]:
    """Decode a whole binary COPY output into one numpy array per column.

    Scalars give shape ``(n,)``; arrays and tensors ``(n, *row_shape)``; text and raw
    bytea give object arrays of ``str`` / ``bytes``.

    Examples
    --------
    >>> from dasktrain.io._columns import ColumnSpec
    >>> spec = ColumnSpec("id", "scalar", wire=np.dtype(">i8"), dtype=np.dtype("i8"))
    >>> decode(encode([spec], {"id": np.arange(3)}), [spec])["id"]
    array([0, 1, 2])
    """
    body = _body(buffer)
    if len(body) == 0:
        return {spec.name: empty_column(spec) for spec in specs}
    try:
        return _decode_fixed(body, specs)
    except Irregular:
        return _decode_rows(body, specs)


def empty_column(spec: ColumnSpec) -> np.ndarray:
    """A zero-row array of the column's dtype and row shape (what an empty segment decodes to)."""
    if spec.kind in (TEXT, BYTES):
        return np.empty(0, dtype=object)
    return np.empty((0, *spec.shape), dtype=spec.dtype)


# -- fixed-width rows: one structured view ------------------------------------------------------


def _decode_fixed(body: memoryview, specs: Sequence[ColumnSpec]) -> dict[str, np.ndarray]:
    layout, structural, stride = first_row_layout(body, specs)
    if len(body) % stride:
        raise Irregular
    rows = np.frombuffer(body, dtype=np.dtype(layout | {"itemsize": stride}))
    return fixed_columns(rows, specs, structural, rows[:1])


def fixed_columns(rows: np.ndarray, specs: Sequence[ColumnSpec], structural, first: np.ndarray) -> dict:
    """The columns of fixed-width ``rows`` (a structured view); :class:`Irregular` if any row's
    structure (field count, widths, array dimensions) differs from ``first``'s."""
    for field in structural:
        if not np.array_equal(rows[field], np.broadcast_to(first[field], rows[field].shape)):
            raise Irregular
    return {spec.name: native(rows[spec.name]["v"] if spec.kind == ARRAY else rows[spec.name], spec) for spec in specs}


def native(values: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    """A contiguous, native-byte-order copy in the user's dtype."""
    return np.ascontiguousarray(values, dtype=spec.dtype)


def first_row_layout(body: memoryview, specs: Sequence[ColumnSpec]):
    """Describe the first row as a structured dtype; list the fields that must match in every row."""
    names, formats, offsets, structural = [], [], [], []

    def add(name, fmt, offset, is_structure=False):
        names.append(name)
        formats.append(fmt)
        offsets.append(offset)
        if is_structure:
            structural.append(name)

    (count,) = struct.unpack_from(">h", body, 0)
    if count != len(specs):
        raise DataError(f"Expected {len(specs)} columns in the COPY output, received {count}.")
    add("_count", ">i2", 0, True)
    pos = 2
    for i, spec in enumerate(specs):
        (length,) = struct.unpack_from(">i", body, pos)
        if length < 0 or spec.kind in (TEXT, BYTES):
            raise Irregular  # NULL, or a variable-width value
        add(f"_len{i}", ">i4", pos, True)
        pos += 4
        if spec.kind == SCALAR:
            if length != spec.wire.itemsize:
                raise DataError(f"Column {spec.name!r}: unexpected value width {length} bytes.")
            add(spec.name, spec.wire, pos)
        elif spec.kind == TENSOR:
            expected = spec.wire.itemsize * int(np.prod(spec.shape, dtype=np.int64))
            if length != expected:
                raise DataError(
                    f"Column {spec.name!r} holds {length} bytes per row, but its metadata says "
                    f"{spec.wire} of shape {spec.shape} ({expected} bytes). The table's summary "
                    f"does not match its data."
                )
            add(spec.name, (spec.wire, spec.shape), pos)
        else:  # ARRAY
            shape, header = _array_shape(body, pos, spec)
            add(f"_hdr{i}", f"V{header}", pos, True)
            element = np.dtype([("len", ">i4"), ("v", spec.wire)])
            add(spec.name, (element, shape), pos + header)
        pos += length
    return {"names": names, "formats": formats, "offsets": offsets}, structural, pos


def _array_shape(body, pos: int, spec: ColumnSpec) -> tuple[tuple[int, ...], int]:
    """Shape and header size of a binary array value starting at ``pos``."""
    ndim, has_null, _ = _ARRAY_HEADER.unpack_from(body, pos)
    if has_null:
        raise DataError(f"Column {spec.name!r} has arrays with NULL elements; replace them first.")
    dims = struct.unpack_from(f">{2 * ndim}i", body, pos + 12)
    return tuple(dims[0::2]), 12 + 8 * ndim


# -- irregular rows: exact, row by row -----------------------------------------------------------


def _decode_rows(body: memoryview, specs: Sequence[ColumnSpec]) -> dict[str, np.ndarray]:
    """Walk rows one by one: for NULLs and variable-width columns (text, raw bytea)."""
    columns: list[list] = [[] for _ in specs]
    pos, end = 0, len(body)
    unpack_int = struct.Struct(">i").unpack_from
    while pos < end:
        pos += 2  # field count, checked on the first row
        for spec, values in zip(specs, columns, strict=True):
            (length,) = unpack_int(body, pos)
            pos += 4
            if length < 0:
                values.append(None)
                continue
            values.append(_value(body[pos : pos + length], spec))
            pos += length
    return {spec.name: column(values, spec) for spec, values in zip(specs, columns, strict=True)}


def _value(raw: memoryview, spec: ColumnSpec):
    if spec.kind == TEXT:
        return str(raw, "utf-8")
    if spec.kind == BYTES:
        return bytes(raw)
    if spec.kind == SCALAR:
        return np.frombuffer(raw, dtype=spec.wire)[0]
    if spec.kind == TENSOR:
        return np.frombuffer(raw, dtype=spec.wire)
    shape, header = _array_shape(raw, 0, spec)
    element = np.dtype([("len", ">i4"), ("v", spec.wire)])
    return np.frombuffer(raw[header:], dtype=element)["v"].reshape(shape)


def column(values: list, spec: ColumnSpec) -> np.ndarray:
    """One column's decoded values (None for NULL) as one array: NULL floats become NaN, others are refused."""
    if spec.kind in (TEXT, BYTES):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        if spec.kind == SCALAR and spec.dtype.kind in _FLOAT_KINDS:
            nan = np.array(np.nan, dtype=spec.wire)[()]
            values = [nan if v is None else v for v in values]
        else:
            raise DataError(
                f"Column {spec.name!r} has NULL values ({len(missing)} in this segment). "
                f"Filter them out with where=, or fill them in the table first."
            )
    if spec.kind == SCALAR:
        return np.array(values, dtype=spec.wire).astype(spec.dtype)
    if spec.kind == TENSOR:
        expected = int(np.prod(spec.shape, dtype=np.int64))
        if any(v.size != expected for v in values):
            raise DataError(f"Column {spec.name!r} holds values whose size does not match shape {spec.shape}.")
        return np.stack(values).reshape(len(values), *spec.shape).astype(spec.dtype)
    shapes = {v.shape for v in values}
    if len(shapes) > 1:
        raise DataError(
            f"Column {spec.name!r} holds arrays of different shapes {sorted(shapes)[:3]}: ragged arrays "
            f"cannot form one tensor. Pad or filter them first."
        )
    return np.stack(values).astype(spec.dtype)


# -- encoding, for loaders -----------------------------------------------------------------------


def encode(specs: Sequence[ColumnSpec], data: dict[str, np.ndarray]) -> bytes:
    """Encode columns of equal length as one binary COPY stream (header, rows, trailer).

    Supports :data:`SCALAR` and :data:`TENSOR` columns (fixed width), so the whole stream is
    built by numpy at once.
    """
    return HEADER + encode_rows(specs, data) + TRAILER


def encode_rows(specs: Sequence[ColumnSpec], data: dict[str, np.ndarray | bytes]) -> bytes:
    """Encode the rows alone (no header or trailer), to stream a large load in chunks.

    A :data:`TEXT` column takes one ``bytes`` value (UTF-8) shared by every row: callers with
    several values encode each group of rows separately, which keeps every row fixed-width.
    """
    n = len(next(v for v in data.values() if not isinstance(v, bytes)))
    fields = [("_count", ">i2")]
    widths = []
    for spec in specs:
        if spec.kind == TEXT and isinstance(data[spec.name], bytes):
            width = len(data[spec.name])
            fields += [(f"_len_{spec.name}", ">i4"), (spec.name, f"V{width}")]
        elif spec.kind == SCALAR:
            width = spec.wire.itemsize
            fields += [(f"_len_{spec.name}", ">i4"), (spec.name, spec.wire)]
        elif spec.kind == TENSOR:
            width = spec.wire.itemsize * int(np.prod(spec.shape, dtype=np.int64))
            fields += [(f"_len_{spec.name}", ">i4"), (spec.name, f"V{width}")]
        else:
            raise TypeError(f"encode() writes fixed-width columns only, not {spec.kind!r} ({spec.name!r}).")
        widths.append(width)
    rows = np.empty(n, dtype=np.dtype(fields, align=False))
    rows["_count"] = len(specs)
    for spec, width in zip(specs, widths, strict=True):
        rows[f"_len_{spec.name}"] = width
        values = data[spec.name]
        if spec.kind == SCALAR:
            rows[spec.name] = values
        elif spec.kind == TEXT:
            rows[spec.name] = np.void(values) if width else np.void(b"")
        else:
            raw = np.ascontiguousarray(values, dtype=spec.wire).reshape(n, -1).view(np.uint8)
            rows[spec.name] = raw.view(f"V{width}").reshape(n)
    return rows.tobytes()
