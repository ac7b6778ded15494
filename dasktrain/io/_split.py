"""More reads than segments: a table's segments cut into pieces, for idle workers.

Training wants at least one read per worker. A table with fewer segments than workers (a hash-
partitioned table of 2 leaves on 4 workers, a plain table read as one block range, a table of a
4-segment Greenplum on 8 GPUs) is cut again, so that every row is still read exactly once:

- PostgreSQL: each segment into block ranges of its relation (``ctid`` TID range scans, half-open,
  the last one open-ended).
- Greenplum: each segment into shares by a hash of ``ctid`` (``(hashtext(ctid::text) & 2147483647)
  % m = j``). A row's ``ctid`` is fixed under one snapshot, so each row falls in exactly one share;
  each share scans its whole segment (``m`` shares cost ``m`` scans), on the segment's own server
  in utility mode or through the coordinator, as the plan's reads do.

The new reads keep the plan's reader (and with it its exported snapshot, or its share lock in
utility mode) and what it holds, so they see the table as the plan's reads would.

Views, foreign, replicated and external tables, and parallel retrieve cursor endpoints (one per
segment, fixed when the cursor is declared) are read whole.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING

from psycopg2 import sql

from ._catalog import PLAIN, regclass_text
from ._segments import Segment
from ._snapshot import ExportedSnapshot

if TYPE_CHECKING:
    from .._names import TableName
    from ._read import SegmentReads

logger = logging.getLogger("dasktrain")


def at_least(reads: SegmentReads, n: int) -> SegmentReads:
    """:meth:`SegmentReads.at_least <dasktrain.io._read.SegmentReads.at_least>`: ``reads`` in ``n`` or more reads."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"Expected a positive number of reads. Received: n={n!r}")
    if len(reads.parts) >= n:
        return reads
    why = _whole(reads)
    if why is None and _greenplum(reads):
        k = math.ceil(n / len(reads.segments))
        pieces = [(i, piece) for i, seg in enumerate(reads.segments) for piece in seg.shares(k)]
        with reads.db.cursor() as cur:
            return _assemble(reads, pieces, cur.connection)
    if why is None:
        k = math.ceil(n / len(reads.segments))
        with reads.db.cursor() as cur:
            tid_range_scans = reads.db.dialect.supports_tid_range_scan
            relations = dict.fromkeys(seg.relation for seg in reads.segments)
            pages = {relation: _heap_pages(cur, relation, tid_range_scans) for relation in relations}
            pieces = [
                (i, piece)
                for i, seg in enumerate(reads.segments)
                for piece in (seg.split(pages[seg.relation], k) if pages[seg.relation] is not None else [seg])
            ]
            if len(pieces) > len(reads.parts):
                split = _assemble(reads, pieces, cur.connection)
                if len(split.parts) < n:
                    _log(reads, len(split.parts), n, "its segments have too few disk blocks to cut")
                return split
        why = "its segments are views, foreign tables or too small to cut"
    _log(reads, len(reads.parts), n, why)
    return reads


def _whole(reads: SegmentReads) -> str | None:
    """Why ``reads`` cannot be cut at all, or None."""
    if reads.db is None or reads.segment_query is None:
        return "the plan was made without its database"
    if any(endpoint is not None for *_, endpoint in reads.parts):
        return "a parallel retrieve cursor has one endpoint per segment"
    if reads.db.dialect.distributed and not _greenplum(reads):
        return "it is replicated, external or a view, read whole through the coordinator"
    return None


def _greenplum(reads: SegmentReads) -> bool:
    """Whether ``reads`` are of Greenplum segments (``gp_segment_id``), which are cut into hash shares."""
    return all(seg.gp_segment_id is not None for seg in reads.segments)


def _heap_pages(cur, relation: TableName, tid_range_scans: bool) -> int | None:
    """How many disk blocks of ``relation`` hold rows; None when its rows have no ``ctid`` to cut by (a view)."""
    cur.execute(
        "SELECT c.relkind, pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (regclass_text(cur, relation),),
    )
    row = cur.fetchone()
    if row is None or row[0] != PLAIN:
        return None
    return _pages_in_use(cur, relation, int(row[1])) if tid_range_scans else int(row[1])


def _pages_in_use(cur, relation: TableName, pages: int) -> int:
    """One past the last of ``pages`` blocks that holds a row, found by bisection with TID range scans.

    From PostgreSQL 16, ``COPY`` and ``CREATE TABLE AS`` extend a table by many blocks at once: a
    freshly loaded table can end in many empty blocks (a third of a small one), which would make its
    last ranges empty until a ``VACUUM`` truncates them.
    Each probe reads from its block to the first row, so only the empty blocks are read, a few times.
    """
    probe = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE ctid >= %s::tid)").format(relation.sql)
    low, high = 0, pages  # rows lie before `high`, and (unless `low` is 0) at block `low - 1` or after
    while low < high:
        middle = (low + high) // 2
        cur.execute(probe, (f"({middle},0)",))
        low, high = (middle + 1, high) if cur.fetchone()[0] else (low, middle)
    return low


def _assemble(reads: SegmentReads, pieces: list[tuple[int, Segment]], conn) -> SegmentReads:
    """A new plan of ``reads``'s table: one read per piece, ``(index of its segment, piece)``, numbered anew."""
    segments = [dataclasses.replace(piece, id=k) for k, (_, piece) in enumerate(pieces)]
    dsns = [reads.parts[i][2] for i, _ in pieces]  # a utility-mode piece reads on its segment's own server
    parts = [
        (k, reads.segment_query(seg).as_string(conn), dsn, None)
        for k, (seg, dsn) in enumerate(zip(segments, dsns, strict=True))
    ]
    placements = reads.placements
    if placements is not None:  # a piece lives on its segment's host
        placements = type(placements)(placements.client, [placements.workers[i] for i, _ in pieces])
    reader = reads.reader
    one_read = len(reads.parts) == 1 and placements is None and not reads.db.dialect.distributed
    if reads.snapshot and reader.snapshot_id is None and one_read:
        # One read needs no shared snapshot, so the plan has none; its pieces do, or a row moved by a
        # concurrent UPDATE from one block range to another would be read twice or missed.
        reader = type(reader)(reader.dsn, reader.specs, reader.table, ExportedSnapshot.export(reads.db), reads.held)
    return type(reads)(
        reader, parts, reads.meta, placements, reads.held, segments, db=reads.db, segment_query=reads.segment_query,
        snapshot=reads.snapshot,
    )  # fmt: skip


def _log(reads: SegmentReads, count: int, n: int, why: str) -> None:
    logger.info("%s: %d read(s), fewer than the %d training workers, as %s", reads.reader.table, count, n, why)
