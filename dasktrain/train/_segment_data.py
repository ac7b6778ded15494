"""A segment's rows on the worker that trains it, kept at their stored size and scaled one batch at a time.

A segment of 60,000 28×28 uint8 images is 47 MB as stored and 188 MB as float32. The worker keeps
the stored array (a view of the partition it read, no copy), and each batch is divided by
``normalizing_const`` into float32 just before Keras trains on it: the float32 copy is one batch,
never the segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..io._disk import DiskArray


@dataclass
class SegmentData:
    """One segment's features (stored dtype, shaped for the model) and labels.

    >>> data = SegmentData(np.array([[0, 255]], np.uint8), np.array([1]), scale=255.0)
    >>> data.features(slice(None))
    array([[0., 1.]], dtype=float32)
    """

    X: np.ndarray
    y: np.ndarray
    scale: float = 1.0  # features are divided by it, a batch at a time
    fold: np.ndarray | None = None  # each row's cross-validation fold (fit_multiple(folds=k))

    @property
    def rows(self) -> int:
        return len(self.X)

    def features(self, rows) -> np.ndarray:
        """Rows ``rows`` (a slice or indices) of the features, as float32 divided by :attr:`scale`."""
        if self.scale == 1:
            return np.asarray(self.X[rows], dtype=np.float32)
        return np.divide(self.X[rows], np.float32(self.scale), dtype=np.float32)

    def take(self, rows: np.ndarray) -> SegmentData:
        """The rows at ``rows``, still at their stored size."""
        return SegmentData(self.X[rows], self.y[rows], self.scale, None if self.fold is None else self.fold[rows])

    @classmethod
    def concat(cls, parts: Sequence[SegmentData]) -> SegmentData:
        """Several segments as one stream of rows, without copying their features (a replica's data).

        >>> a = SegmentData(np.array([[1], [2]]), np.array([0, 1]))
        >>> both = SegmentData.concat([a, SegmentData(np.array([[3]]), np.array([2]))])
        >>> both.features(np.array([2, 0])).tolist(), both.y.tolist()
        ([[3.0], [1.0]], [0, 1, 2])
        """
        if len(parts) == 1:
            return parts[0]
        folds = None if any(p.fold is None for p in parts) else np.concatenate([p.fold for p in parts])
        return cls(ConcatRows([p.X for p in parts]), np.concatenate([p.y for p in parts]), parts[0].scale, folds)


class ConcatRows:
    """The rows of several arrays (in memory or :class:`DiskArray`) seen as one, read by slice or row numbers.

    A batch of shuffled row numbers is read from each array in one indexing: no array is copied whole.

    >>> rows = ConcatRows([np.zeros((2, 3)), np.ones((1, 3))])
    >>> rows.shape, rows[np.array([2, 1])].sum(axis=1).tolist()
    ((3, 3), [3.0, 0.0])
    """

    def __init__(self, arrays: Sequence):
        self.arrays = list(arrays)
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])
        self.dtype = np.dtype(self.arrays[0].dtype)
        self.shape = (int(self.offsets[-1]), *self.arrays[0].shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def reshape(self, *shape) -> ConcatRows:
        """The same rows seen with another row shape (``shape[0]`` stays the row count)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else tuple(shape)
        return ConcatRows([a.reshape(len(a), *shape[1:]) for a in self.arrays])

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows)
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        part = np.searchsorted(self.offsets, rows, side="right") - 1
        for p in np.unique(part):
            where = np.flatnonzero(part == p)
            out[where] = self.arrays[p][rows[where] - self.offsets[p]]
        return out


def prepare_segment(
    partition,
    x,
    y,
    input_shape: tuple,
    normalizing_const: float,
    output_shape=(),
    classes=None,
    folds: tuple | None = None,
) -> SegmentData:
    """Turn one partition into a segment shaped for the model (adds a channel axis if needed), at stored size.

    ``classes`` (text or boolean labels) numbers each label by its place among them;
    ``folds=(id_column, k)`` also gives each row its cross-validation fold, from its id.
    """
    from ..io._arrays import stored_arrays

    X, labels = stored_arrays(partition, x=x, y=y, classes=classes)
    data = _shaped(X, labels, input_shape, normalizing_const, output_shape)
    if folds is not None:
        data.fold = fold_of(partition[folds[0]].to_numpy(), folds[1])
    return data


def fold_of(ids: np.ndarray, k: int) -> np.ndarray:
    """Each id's fold among ``k``: a fixed hash of the id (MurmurHash3's 64-bit finalizer), so a row
    keeps its fold across runs, segments and re-reads, and no row moves.

    >>> fold_of(np.array([1, 2, 3, 1]), 5).tolist()
    [4, 2, 2, 4]
    """
    h = np.asarray(ids).astype(np.int64).view(np.uint64)
    h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    h = (h ^ (h >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    h = h ^ (h >> np.uint64(33))
    return (h % np.uint64(k)).astype(np.uint8)


def cache_segment(
    reader, part, x, y, input_shape: tuple, normalizing_const: float, output_shape=(), classes=None
) -> SegmentData:
    """Read one segment with its features streamed to this worker's disk (``cache="disk"``), labels in memory.

    The features stay in a file in the worker's local directory, read a batch at a time: a segment
    larger than the worker's memory trains. The file is deleted when the segment is released.
    """
    from ..io._arrays import class_indices, training_labels

    X, kept = reader.to_disk(part, [x] if isinstance(x, str) else list(x))
    labels = class_indices(kept[y], classes, y) if classes is not None else training_labels(kept[y], y)
    return _shaped(X, labels, input_shape, normalizing_const, output_shape)


def _shaped(X, labels, input_shape, normalizing_const, output_shape) -> SegmentData:
    """A segment shaped for the model. A scalar float target becomes a column for a one-output model,
    as Keras's ``Dense(1)`` regression heads expect."""
    from ..io._arrays import fit_input_shape

    if labels.ndim == 1 and labels.dtype.kind == "f" and tuple(output_shape) == (1,):
        labels = labels.reshape(-1, 1)
    return SegmentData(fit_input_shape(X, input_shape), labels, float(normalizing_const))


def segment_finite(data: SegmentData) -> bool:
    """Whether every feature is finite (integers always are: no pass over them; files were checked as written)."""
    if data.X.dtype.kind in "biu":
        return True
    return data.X.finite if isinstance(data.X, DiskArray) else bool(np.isfinite(data.X).all())
