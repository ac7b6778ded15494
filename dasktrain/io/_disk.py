"""Segments larger than a worker's memory: streamed from COPY into a file, read back a batch at a time.

The binary COPY arrives in chunks; each chunk's whole rows are decoded with the same structured
view as an in-memory read (:mod:`._pgbinary`), the feature column is appended to a file in the
worker's local directory and the labels (a few bytes a row) stay in memory. Training then reads
rows with ``pread`` into fresh buffers: no memory map, so the pages a segment occupies belong to
the operating system's cache and never count towards the worker's memory (Dask's nanny restarts
a worker whose resident size passes its limit, and mapped pages would count).
"""

from __future__ import annotations

import os
import socket
import struct
import uuid
import weakref
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from . import _pgbinary
from ._columns import ARRAY, SCALAR, TENSOR, ColumnSpec

#: Bytes of COPY output decoded at a time: the most a worker holds of a segment being written to disk.
CHUNK_BYTES = 16 * 2**20


class DiskArray:
    """An array whose rows live in a file, read with ``pread`` on indexing.

    Indexing with a slice or an array of row numbers returns an in-memory numpy array of those
    rows; nothing else of the file is held. Pickled, it names its file: a worker on the same host
    can read it. The array that wrote the file deletes it when it is garbage-collected; a copy
    opens the file on arrival, so it can go on reading after that.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> np.arange(12, dtype=np.uint8).tofile(path)
    >>> rows = DiskArray(path, np.uint8, (4, 3))
    >>> rows[1:3].tolist(), rows[np.array([3, 0])].tolist()
    ([[3, 4, 5], [6, 7, 8]], [[9, 10, 11], [0, 1, 2]])
    """

    def __init__(self, path: str, dtype, shape: tuple[int, ...], *, finite: bool = True, owner: bool = False):
        self.path, self.dtype, self.shape, self.finite = path, np.dtype(dtype), tuple(shape), finite
        self._fd: int | None = None
        if owner:
            weakref.finalize(self, _unlink, path)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.row_bytes * len(self)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DiskArray({self.path!r}, {self.dtype}, {self.shape})"

    def reshape(self, *shape) -> DiskArray:
        """The same rows seen with another row shape (``shape[0]`` must stay the row count)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else tuple(shape)
        if shape[0] != len(self) or int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize != self.row_bytes:
            raise ValueError(f"Cannot reshape {self.shape} to {shape}: rows must keep their size.")
        view = DiskArray(self.path, self.dtype, shape, finite=self.finite)
        view._fd, view._keep = self._descriptor(), self  # the view reads through its parent's descriptor
        return view

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
            self._read_into(out, start)
            return out
        index = np.asarray(rows)
        if index.ndim != 1 or index.dtype.kind not in "iu":
            raise TypeError(f"DiskArray rows are read by a slice or a 1-d array of row numbers, not {rows!r}")
        index = np.where(index < 0, index + len(self), index)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"Row numbers out of range for {len(self)} rows.")
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        if not len(index):
            return out
        flat, size, fd = memoryview(out.reshape(-1).view(np.uint8)), self.row_bytes, self._descriptor()
        for j, row in enumerate(index.tolist()):  # one pread per row: a shuffled batch has no runs to merge
            if os.preadv(fd, [flat[j * size : (j + 1) * size]], row * size) != size:
                self._read_into(out[j : j + 1], row)  # a short read: finish it, or say the file is cut short
        return out

    def _read_into(self, out: np.ndarray, first_row: int) -> None:
        view = memoryview(out.reshape(-1).view(np.uint8))
        offset, fd = first_row * self.row_bytes, self._descriptor()
        while len(view):
            got = os.preadv(fd, [view], offset)
            if got <= 0:
                raise DataError(f"{self.path} ended early: the segment's file on this worker was cut short.")
            view, offset = view[got:], offset + got

    def _descriptor(self) -> int:
        if self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise DataError(
                    f"A segment cached on another host's disk ({self.path}) cannot be read here: "
                    f"segments cached with cache='disk' stay on the host that read them."
                ) from None
            self._fd = fd
            weakref.finalize(self, os.close, fd)
        return self._fd

    def __reduce__(self):
        return _arrive, (self.path, self.dtype.str, self.shape, self.finite)


def _arrive(path: str, dtype: str, shape: tuple, finite: bool) -> DiskArray:
    array = DiskArray(path, dtype, shape, finite=finite)
    array._descriptor()  # open now: the sender may delete the file once this copy exists
    return array


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def cache_directory(base: str | None = None) -> str:
    """Where this process writes segment files: ``dasktrain-segments`` in the Dask worker's local directory."""
    if base is None:
        try:
            from distributed import get_worker

            base = get_worker().local_directory
        except (ImportError, ValueError):
            import tempfile

            base = tempfile.gettempdir()
    path = os.path.join(base, "dasktrain-segments")
    os.makedirs(path, exist_ok=True)
    return path


class ColumnsToDisk:
    """Decoded columns, chunk by chunk: the ``features`` to one file, every other column kept in memory.

    Several plain feature columns are stacked side by side, as :func:`~dasktrain.to_arrays` does.

    >>> import tempfile
    >>> from dasktrain.io._columns import ColumnSpec
    >>> specs = [ColumnSpec(n, "scalar", wire=np.dtype(">i4"), dtype=np.dtype("i4")) for n in ("x", "y")]
    >>> sink = ColumnsToDisk(specs, ["x"], os.path.join(tempfile.mkdtemp(), "x.bin"))
    >>> sink.add({"x": np.array([5, 6], np.int32), "y": np.array([0, 1], np.int32)})
    >>> X, kept = sink.finish()
    >>> X[0:2].tolist(), kept["y"].tolist()
    ([5, 6], [0, 1])
    """

    def __init__(self, specs: Sequence[ColumnSpec], features: Sequence[str], path: str, label: str = "a segment"):
        unknown = [name for name in features if name not in {s.name for s in specs}]
        if unknown or any(s.kind not in (SCALAR, TENSOR, ARRAY) for s in specs if s.name in features):
            raise DataError(f"cache='disk' needs numeric feature columns; {list(features)} are not all numeric.")
        self.specs, self.features, self.path, self.label = list(specs), list(features), path, label
        self.rows = 0
        self.finite = True
        self.dtype = self.row_shape = None
        self.kept: dict[str, list[np.ndarray]] = {s.name: [] for s in specs if s.name not in features}
        self.file = open(path, "wb")  # noqa: SIM115 (closed by finish() or abort())

    def add(self, columns: dict[str, np.ndarray]) -> None:
        """Append one chunk of decoded rows."""
        if len(self.features) == 1:
            X = columns[self.features[0]]
        else:
            X = np.stack([columns[name] for name in self.features], axis=1)
        if self.dtype is None:
            self.dtype, self.row_shape = X.dtype, X.shape[1:]
        elif X.shape[1:] != self.row_shape:
            raise self._irregular()
        if X.dtype.kind == "f" and self.finite:
            self.finite = bool(np.isfinite(X).all())
        self.file.write(memoryview(np.ascontiguousarray(X, dtype=self.dtype)).cast("B"))
        for name in self.kept:
            self.kept[name].append(columns[name])
        self.rows += len(X)

    def finish(self) -> tuple[DiskArray, dict[str, np.ndarray]]:
        """The features on disk (deleted with the array) and the other columns."""
        self.file.close()
        if self.dtype is None:  # no rows: the shapes come from the specs
            empties = [_pgbinary.empty_column(self._spec(name)) for name in self.features]
            X = empties[0] if len(empties) == 1 else np.stack(empties, axis=1)
            self.dtype, self.row_shape = X.dtype, X.shape[1:]
        features = DiskArray(self.path, self.dtype, (self.rows, *self.row_shape), finite=self.finite, owner=True)
        kept = {name: np.concatenate(parts) if parts else _pgbinary.empty_column(self._spec(name))
                for name, parts in self.kept.items()}  # fmt: skip
        return features, kept

    def abort(self) -> None:
        self.file.close()
        _unlink(self.path)

    def _spec(self, name: str) -> ColumnSpec:
        return next(s for s in self.specs if s.name == name)

    def _irregular(self) -> DataError:
        self.abort()
        return DataError(
            f"{self.label}: cache='disk' streams rows of one fixed width, but these rows differ (a NULL, "
            f"text, or arrays of different shapes). Clean the table, or train with cache='memory'."
        )


class CopyToDisk(ColumnsToDisk):
    """A file-like sink for ``cursor.copy_expert``: decodes the binary COPY's whole rows as they arrive.

    Only fixed-width rows can be streamed; a NULL or a value of another width is a
    :class:`~dasktrain.errors.DataError` that says to keep the segment in memory.
    """

    def __init__(self, specs: Sequence[ColumnSpec], features: Sequence[str], path: str, label: str = "a segment"):
        super().__init__(specs, features, path, label)
        self.pending = bytearray()
        self.layout = None
        self.header_done = False

    def write(self, data) -> int:
        self.pending += data
        if len(self.pending) >= CHUNK_BYTES:
            self._decode(final=False)
        return len(data)

    def finish(self) -> tuple[DiskArray, dict[str, np.ndarray]]:
        """The features on disk and the other columns, once the COPY has ended."""
        if bytes(self.pending[-2:]) != _pgbinary.TRAILER:
            self.abort()
            raise DataError("The server's COPY output ended early (no trailer): the read was cut off.")
        del self.pending[-2:]
        self._decode(final=True)
        return super().finish()

    def _decode(self, final: bool) -> None:
        if not self.header_done:
            if len(self.pending) < len(_pgbinary.HEADER):
                if final:
                    raise DataError("The server's COPY output ended early (no header): the read was cut off.")
                return
            if bytes(self.pending[: len(_pgbinary.SIGNATURE)]) != _pgbinary.SIGNATURE:
                raise DataError("The server's COPY output is not in PostgreSQL's binary format.")
            (extension,) = struct.unpack_from(">i", self.pending, len(_pgbinary.SIGNATURE) + 4)
            del self.pending[: len(_pgbinary.HEADER) + extension]
            self.header_done = True
        if self.layout is None and self.pending:
            try:
                self.layout, self.structural, self.stride = _pgbinary.first_row_layout(bytes(self.pending), self.specs)
            except _pgbinary.Irregular:
                raise self._irregular() from None  # a NULL or a variable-width value in the first row
            except struct.error:
                if final:
                    raise DataError("The server's COPY output ended inside a row: the read was cut off.") from None
                return  # the first row is not all here yet
        if self.layout is None:
            return
        whole = len(self.pending) // self.stride * self.stride
        if final and whole != len(self.pending):
            raise self._irregular()
        if whole:
            rows = np.frombuffer(bytes(self.pending[:whole]), dtype=np.dtype(self.layout | {"itemsize": self.stride}))
            del self.pending[:whole]
            self._store(rows)

    def _store(self, rows: np.ndarray) -> None:
        if self.rows == 0:
            self.first = rows[:1].copy()
        try:
            columns = _pgbinary.fixed_columns(rows, self.specs, self.structural, self.first)
        except _pgbinary.Irregular:
            raise self._irregular() from None
        self.add(columns)


def segment_file(directory: str) -> str:
    """A fresh file name for one segment's features, unique across the workers of a host."""
    return os.path.join(directory, f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}.bin")
