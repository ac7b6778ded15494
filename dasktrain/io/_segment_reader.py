"""Reading one segment, on a worker: its binary COPY (or its retrieve cursor endpoint) into a pandas DataFrame."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa

from ..errors import DataError
from . import _disk, _pgbinary, _retrieve
from ._columns import ARRAY, BYTES, TENSOR, TEXT, ColumnSpec
from ._database import open_connection, redact_text, transaction
from ._retry import reason, retrying
from ._snapshot import ExportedSnapshot, use_snapshot
from ._tensor_column import tensor_series

logger = logging.getLogger("dasktrain")


class SegmentReader:
    """Reads one segment of a table: a picklable callable sent to the workers.

    It carries the exported snapshot's id; in the client process it also keeps the snapshot
    itself alive, so every segment of the frame (re-read after a worker loss too) sees the same
    data while the frame exists.
    """

    def __init__(
        self, dsn: str, specs: Sequence[ColumnSpec], table: str, snapshot: ExportedSnapshot | None = None, held=None
    ):
        self.dsn, self.specs, self.table = dsn, list(specs), table
        self.snapshot_id = snapshot.id if snapshot is not None else None
        self._snapshot = snapshot  # client side only: not pickled
        self._held = held  # client side only: a lock on the coordinator held while the frame lives

    def __reduce__(self):
        return SegmentReader._on_worker, (self.dsn, self.specs, self.table, self.snapshot_id)

    @staticmethod
    def _on_worker(dsn, specs, table, snapshot_id) -> SegmentReader:
        reader = SegmentReader(dsn, specs, table)
        reader.snapshot_id = snapshot_id
        return reader

    def __dask_tokenize__(self):
        return (type(self).__name__, self.table, self.snapshot_id, id(self))

    def __call__(self, part: tuple, read_id: str | None = None) -> pd.DataFrame:
        """Read segment ``part = (k, COPY statement, its own DSN or None, endpoint or None)``.

        ``read_id`` only makes task keys unique.
        """
        segment, query, dsn, endpoint = part
        label = f"segment {segment}"
        if endpoint is not None:
            columns = self._retrieved(endpoint, dsn, label)
            if columns is not None:
                return frame_of(columns, self.specs)
            dsn = None
        return read_segment(query, dsn or self.dsn, self.specs, snapshot=self.snapshot_id, label=label)

    def to_disk(self, part: tuple, features: Sequence[str]):
        """Read segment ``part`` with its ``features`` columns streamed to this worker's disk."""
        segment, query, dsn, endpoint = part
        label = f"segment {segment}"
        if endpoint is not None:
            sink = _disk.ColumnsToDisk(self.specs, features, _disk.segment_file(_disk.cache_directory()), label)
            if self._retrieved(endpoint, dsn, label, sink.add) is not None:
                return sink.finish()
            sink.abort()
            dsn = None
        return read_segment_to_disk(
            query, dsn or self.dsn, self.specs, features, snapshot=self.snapshot_id, label=label
        )

    def _retrieved(self, endpoint: _retrieve.Endpoint, dsn: str, label: str, each=None):
        """The segment's columns from its parallel retrieve cursor endpoint; None if it cannot serve them.

        An endpoint serves its rows once: a segment read again (its worker was lost), or after the
        cursor is gone (the frame outlived its grace period), is read through the coordinator.
        """
        try:
            state = _retrieve.endpoint_state(self.dsn, endpoint)
            if state == "READY":
                return _retrieve.retrieve_segment(endpoint.name, dsn, self.specs, each=each)
            why = f"its state is {state}" if state else "the cursor is closed"
        except psycopg2.Error as exc:
            why = redact_text(reason(exc), self.dsn)
        logger.warning(
            "%s: its parallel retrieve cursor endpoint cannot serve it (%s); reading it through the coordinator, "
            "in a snapshot of its own",
            label,
            why,
        )
        return None


def read_segment(
    query: str, dsn: str, specs: Sequence[ColumnSpec], *, snapshot: str | None = None, label: str = "a segment"
) -> pd.DataFrame:
    """Run one segment's binary COPY and decode it into a pandas DataFrame (runs on a worker).

    A broken connection (a server restart, a terminated backend) is retried with backoff; the
    error that remains is a :class:`~dasktrain.errors.ConnectionLostError` with the server's reason.
    """

    def attempt() -> io.BytesIO:
        buffer = io.BytesIO()
        _copy(query, dsn, buffer, snapshot, label)
        return buffer

    buffer = retrying(f"Reading {label}", attempt)
    return frame_of(_pgbinary.decode(buffer.getbuffer(), specs), specs)


def _copy(query: str, dsn: str, sink, snapshot: str | None, label: str) -> None:
    """Run one COPY ... TO STDOUT into ``sink`` (anything with ``write``), in the read's snapshot if it has one."""
    conn = open_connection(dsn)
    try:
        if snapshot is not None and not use_snapshot(conn, snapshot):
            logger.warning("%s: the read's shared snapshot is gone; reading it with a snapshot of its own", label)
        with transaction(conn) as cur:
            cur.copy_expert(query, sink)
    finally:
        conn.close()


def read_segment_to_disk(
    query: str,
    dsn: str,
    specs: Sequence[ColumnSpec],
    features: Sequence[str],
    *,
    snapshot: str | None = None,
    label: str = "a segment",
    directory: str | None = None,
) -> tuple[_disk.DiskArray, dict[str, np.ndarray]]:
    """Stream one segment's binary COPY to disk: the ``features`` columns into a file, the rest in memory.

    At most :data:`~dasktrain.io._disk.CHUNK_BYTES` of the segment are in memory at once.
    """
    directory = _disk.cache_directory(directory)

    def attempt():
        sink = _disk.CopyToDisk(specs, features, _disk.segment_file(directory), label)
        try:
            _copy(query, dsn, sink, snapshot, label)
            return sink.finish()
        except BaseException:
            sink.abort()
            raise

    features_on_disk, kept = retrying(f"Reading {label}", attempt)
    for spec in specs:
        if (
            spec.kind == ARRAY
            and spec.name in features
            and len(features_on_disk)
            and features_on_disk.shape[1:] != spec.shape
        ):
            raise DataError(
                f"Column {spec.name!r} holds arrays of shape {features_on_disk.shape[1:]} in one segment but "
                f"{spec.shape} in another: ragged arrays cannot form one tensor."
            )
    return features_on_disk, kept


def frame_of(columns: dict[str, np.ndarray], specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    data = {}
    for spec in specs:
        values = columns[spec.name]
        if spec.kind in (ARRAY, TENSOR):
            if values.shape[1:] != spec.shape and len(values):
                raise DataError(
                    f"Column {spec.name!r} holds arrays of shape {values.shape[1:]} in one segment but "
                    f"{spec.shape} in another: ragged arrays cannot form one tensor."
                )
            data[spec.name] = tensor_series(values.reshape(len(values), *spec.shape), spec.name)
        elif spec.kind == BYTES:
            data[spec.name] = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values, pa.binary())))
        elif spec.kind == TEXT:
            data[spec.name] = pd.Series(values, dtype=object)
        else:
            data[spec.name] = values
    return pd.DataFrame(data)
