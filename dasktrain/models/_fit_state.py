"""What a fit carries between rounds besides the model: each replica's state, as data.

Defined below both the training code (which keeps and moves it) and the model tables (which
save it with checkpoints), so neither imports the other. Stored as ``.npz`` bytes, read back with
``allow_pickle=False``: nothing is ever unpickled from the database.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass

import numpy as np
import numpy.lib.format as npy

from ..errors import DataError


@dataclass
class ReplicaState:
    """What one replica carries from round to round on the worker that trains it.

    >>> state = ReplicaState(3, [np.zeros(2)], cursor=5)
    >>> ReplicaState.from_bytes(state.to_bytes(), 3, 5).optimizer[0].tolist()
    [0.0, 0.0]
    """

    iteration: int
    optimizer: list[np.ndarray]
    cursor: int = 0  # where the next ``sync_every`` round starts in the replica's rows
    weights: list[np.ndarray] | None = None  # the replica's own weights (EASGD, Ensemble)

    def to_bytes(self) -> bytes:
        arrays = {f"optimizer_{i}": np.asarray(v) for i, v in enumerate(self.optimizer)}
        arrays.update({f"weights_{i}": np.asarray(w) for i, w in enumerate(self.weights or [])})
        return arrays_to_bytes(arrays)

    @classmethod
    def from_bytes(cls, data: bytes, iteration: int, cursor: int) -> ReplicaState:
        arrays = arrays_from_bytes(data)
        optimizer = _numbered(arrays, "optimizer")
        weights = _numbered(arrays, "weights") or None
        return cls(iteration, optimizer, cursor, weights)


@dataclass
class ModelState:
    """What one model carries from segment to segment in :func:`dasktrain.fit_multiple`: its weights
    and its optimizer's state (Adam's moments and step count), so that a hop changes nothing.

    >>> state = ModelState([np.ones(2, np.float32)], [np.zeros(1)], visits=4)
    >>> ModelState.from_bytes(state.to_bytes()).weights[0].tolist(), state.visits
    ([1.0, 1.0], 4)
    """

    weights: list[np.ndarray]
    optimizer: list[np.ndarray] | None = None  # None: the optimizer's initial state
    visits: int = 0  # segment visits trained so far

    def to_bytes(self) -> bytes:
        arrays = {f"weights_{i}": np.asarray(w) for i, w in enumerate(self.weights)}
        arrays.update({f"optimizer_{i}": np.asarray(v) for i, v in enumerate(self.optimizer or [])})
        arrays["visits"] = np.asarray(self.visits)
        return arrays_to_bytes(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelState:
        arrays = arrays_from_bytes(data)
        visits = arrays.get("visits")
        if visits is None or visits.shape != () or visits.dtype.kind not in "iu":
            raise DataError("A stored model state has no whole number of visits: it was not written by dasktrain.")
        return cls(_numbered(arrays, "weights"), _numbered(arrays, "optimizer") or None, int(visits))


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as ``.npz`` bytes (dtypes and shapes kept exactly).

    >>> arrays_from_bytes(arrays_to_bytes({"a": np.arange(3)}))["a"].tolist()
    [0, 1, 2]
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def arrays_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`arrays_to_bytes`; anything else is a :class:`DataError`.

    Object arrays (pickles) are refused, and so is an archive that would unpack to more bytes than
    it holds: :func:`arrays_to_bytes` stores its arrays uncompressed, so a bigger one is not ours
    (a crafted row of 1.5 MB unpacked to 1.5 GB, issue 22).

    >>> arrays_from_bytes(b"not a zip archive")
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: A stored fit state cannot be read as plain arrays: File is not a zip file.
    """
    data = bytes(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            unpacked = sum(member.file_size for member in members)
            if unpacked > len(data):
                raise DataError(
                    f"A stored fit state of {len(data)} bytes would unpack to {unpacked} bytes: dasktrain stores "
                    f"states uncompressed, so this one was not written by dasktrain."
                )
            return {member.filename.removesuffix(".npy"): _read_array(archive, member) for member in members}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, MemoryError, TypeError, zipfile.BadZipFile) as exc:
        reason = str(exc).rstrip(".") or type(exc).__name__
        raise DataError(f"A stored fit state cannot be read as plain arrays: {reason}.") from None


def _read_array(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, its header checked against its size before anything is allocated."""
    with archive.open(member) as stream:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
        if dtype.hasobject:
            raise ValueError(f"{member.filename} holds Python objects, which are never unpickled")
        size = math.prod(shape) * dtype.itemsize
        if size > member.file_size:
            raise ValueError(f"{member.filename} declares {size} bytes of data but holds {member.file_size}")
        raw = stream.read(size)
        if len(raw) != size:
            raise EOFError(f"{member.filename} ends after {len(raw)} of {size} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _numbered(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix + "_"))
    missing = [f"{prefix}_{i}" for i in range(count) if f"{prefix}_{i}" not in arrays]
    if missing:
        raise DataError(f"A stored fit state has no array {missing[0]!r}: it was not written by dasktrain.")
    return [arrays[f"{prefix}_{i}"] for i in range(count)]
