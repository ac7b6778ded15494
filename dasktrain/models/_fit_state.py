"""What a fit carries between rounds besides the model: each replica's state, as data.

Defined below both the training code (which keeps and moves it) and the model tables (which
save it with checkpoints), so neither imports the other. Stored as ``.npz`` bytes, read back with
``allow_pickle=False``: nothing is ever unpickled from the database.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

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
        return cls(_numbered(arrays, "weights"), _numbered(arrays, "optimizer") or None, int(arrays["visits"]))


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as ``.npz`` bytes (dtypes and shapes kept exactly).

    >>> arrays_from_bytes(arrays_to_bytes({"a": np.arange(3)}))["a"].tolist()
    [0, 1, 2]
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def arrays_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`arrays_to_bytes`; object arrays (pickles) are refused."""
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"A stored fit state cannot be read as plain arrays: {exc}.") from None


def _numbered(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix + "_"))
    return [arrays[f"{prefix}_{i}"] for i in range(count)]
