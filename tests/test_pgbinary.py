"""The binary COPY codec, without a database: encode, decode, and the irregular-row walker."""

import struct

import numpy as np
import pytest

from dasktrain.errors import DataError
from dasktrain.io import _pgbinary
from dasktrain.io._columns import ARRAY, BYTES, SCALAR, TENSOR, TEXT, ColumnSpec, sql_type_for

DTYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "float16", "float32", "float64", "bool"]


def _tensor(name, values):
    wire = values.dtype.newbyteorder("<") if values.dtype.byteorder == ">" else values.dtype
    return ColumnSpec(name, TENSOR, wire=wire, dtype=values.dtype, shape=values.shape[1:])


def _int64(name):
    return ColumnSpec(name, SCALAR, wire=np.dtype(">i8"), dtype=np.dtype("i8"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_round_trip_is_bytes_equal(dtype):
    rng = np.random.default_rng(0)
    x = (rng.random((7, 3, 2)) * 100).astype(dtype)
    specs = [_int64("id"), _tensor("x", x)]
    out = _pgbinary.decode(_pgbinary.encode(specs, {"id": np.arange(7), "x": x}), specs)
    assert out["x"].dtype == x.dtype
    assert out["x"].tobytes() == x.tobytes()
    assert out["id"].tolist() == list(range(7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_labels_round_trip_in_their_sql_type(dtype):
    y = (np.arange(5) % 2 if dtype == "bool" else np.arange(5) * 3).astype(dtype)
    _, wire = sql_type_for(y.dtype)
    spec = ColumnSpec("y", SCALAR, wire=wire, dtype=y.dtype)
    out = _pgbinary.decode(_pgbinary.encode([spec], {"y": y}), [spec])["y"]
    assert out.dtype == y.dtype and out.tobytes() == y.tobytes()


def _row(*fields):
    out = struct.pack(">h", len(fields))
    for field in fields:
        out += struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field
    return out


def _stream(*rows):
    return _pgbinary.HEADER + b"".join(rows) + _pgbinary.TRAILER


def _real_array(values):
    header = struct.pack(">iiiii", 1, 0, 700, len(values), 1)
    return header + b"".join(struct.pack(">if", 4, v) for v in values)


def test_sql_arrays_decode_with_their_shape():
    spec = ColumnSpec("a", ARRAY, wire=np.dtype(">f4"), dtype=np.dtype("f4"))
    out = _pgbinary.decode(_stream(_row(_real_array([1, 2, 3])), _row(_real_array([4, 5, 6]))), [spec])["a"]
    assert out.dtype == np.float32
    assert out.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_ragged_sql_arrays_are_refused_with_the_column_name():
    spec = ColumnSpec("feat", ARRAY, wire=np.dtype(">f4"), dtype=np.dtype("f4"))
    with pytest.raises(DataError, match="'feat'.*ragged"):
        _pgbinary.decode(_stream(_row(_real_array([1, 2, 3])), _row(_real_array([4, 5]))), [spec])


def test_null_floats_become_nan_and_null_integers_are_refused():
    f8 = ColumnSpec("f", SCALAR, wire=np.dtype(">f8"), dtype=np.dtype("f8"))
    out = _pgbinary.decode(_stream(_row(struct.pack(">d", 1.5)), _row(None)), [f8])["f"]
    assert out[0] == 1.5 and np.isnan(out[1])
    i4 = ColumnSpec("label", SCALAR, wire=np.dtype(">i4"), dtype=np.dtype("i4"))
    with pytest.raises(DataError, match="'label' has NULL"):
        _pgbinary.decode(_stream(_row(struct.pack(">i", 3)), _row(None)), [i4])


def test_variable_width_text_and_bytes_decode_row_by_row():
    specs = [ColumnSpec("s", TEXT), ColumnSpec("b", BYTES)]
    out = _pgbinary.decode(_stream(_row(b"ab", b"\x00\x01"), _row("\u00e9t\u00e9".encode(), b"")), specs)
    assert out["s"].tolist() == ["ab", "\u00e9t\u00e9"]
    assert out["b"].tolist() == [b"\x00\x01", b""]


def test_an_empty_result_keeps_the_row_shape():
    x = np.zeros((0, 4, 2), dtype="uint8")
    spec = ColumnSpec("x", TENSOR, wire=np.dtype("u1"), dtype=np.dtype("u1"), shape=(4, 2))
    assert _pgbinary.decode(_stream(), [spec])["x"].shape == x.shape


def test_a_truncated_stream_is_an_error():
    spec = _int64("id")
    data = _pgbinary.encode([spec], {"id": np.arange(3)})
    with pytest.raises(DataError, match="ended early"):
        _pgbinary.decode(data[:-5], [spec])


def test_tensor_width_not_matching_metadata_is_an_error():
    written = ColumnSpec("x", TENSOR, wire=np.dtype("u1"), dtype=np.dtype("u1"), shape=(4,))
    data = _pgbinary.encode([written], {"x": np.zeros((2, 4), dtype="u1")})
    claimed = ColumnSpec("x", TENSOR, wire=np.dtype("<f4"), dtype=np.dtype("f4"), shape=(4,))
    with pytest.raises(DataError, match="summary does not match"):
        _pgbinary.decode(data, [claimed])
