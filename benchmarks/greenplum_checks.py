"""The Greenplum read paths, checked on a live cluster: exact values, rows and roles, writers, faults, speed.

    python benchmarks/greenplum_checks.py --dsn postgresql://gpadmin@127.0.0.1:7100/dasktrain \
        --analyst analyst

Needs a Greenplum with utility connections allowed and the parallel retrieve cursor (Greenplum 6
with ``CREATE EXTENSION gp_parallel_retrieve_cursor``, or 7), a role with nothing but LOGIN (it is
granted SELECT on the tables made here), and Fashion-MNIST (Debian's package) or generated images.
It creates ``gp_reals``, ``gp_digits``, ``gp_images`` and ``sel``, and prints one line per check
(docs/greenplum.md holds a run's results). Every check runs on a local cluster of worker processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import psycopg2  # noqa: E402
from _common import fashion_or_generated  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from psycopg2 import sql  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402
from dasktrain.io._read import plan_reads  # noqa: E402

COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def run_sql(dsn: str, query, args=None):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(query, args)
        rows = cur.fetchall() if cur.description else None
    conn.close()
    return rows


def local_cluster(workers: int) -> LocalCluster:
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


def load(db, dsn: str, rows: int) -> None:
    values = np.random.default_rng(1).random((3000, 64), dtype=np.float32)
    run_sql(dsn, "DROP TABLE IF EXISTS gp_reals; CREATE TABLE gp_reals (id bigint, v real[]) DISTRIBUTED BY (id)")
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO gp_reals VALUES (%s, %s)", [(i, v.tolist()) for i, v in enumerate(values)])
    conn.close()
    x, y = loaders.read_digits()
    loaders.write_arrays(db, "gp_digits", x, y, segments=3, if_exists="replace")
    images, labels, _ = fashion_or_generated(rows)
    loaders.write_arrays(db, "gp_images", images, labels, segments=3, if_exists="replace")
    counts = dict(run_sql(dsn, "SELECT gp_segment_id, count(*) FROM gp_reals GROUP BY 1"))
    print("rows per segment of gp_reals:", counts)


def exact_reads(db, dsn: str, analyst: str | None) -> None:
    reference = dasktrain.read_table(db, "gp_reals", direct=False).compute().sort_values("id")
    for direct in ("utility", "retrieve", "auto"):
        frame = dasktrain.read_table(db, "gp_reals", direct=direct)
        got = frame.compute().sort_values("id")
        same = np.array_equal(np.stack(got["v"].to_numpy()), np.stack(reference["v"].to_numpy()))
        parts = [len(frame.partitions[k].compute()) for k in range(frame.npartitions)]
        print(f"direct={direct!r}: bitwise equal to the coordinator's binary COPY: {same}; rows per partition {parts}")
    for direct in ("utility", False):
        reads = plan_reads(db, "gp_reals", columns=["id"], direct=direct).at_least(7)
        ids = [reads.frame().partitions[k].compute()["id"].tolist() for k in range(len(reads.parts))]
        once = sorted(i for part in ids for i in part) == list(range(3000))
        sizes = [len(p) for p in ids]
        print(f"at_least(7), direct={direct!r}: {len(ids)} reads of {sizes} rows; every row once: {once}")
        if reads.held is not None:
            reads.held.close()
    run_sql(dsn, "DROP TABLE IF EXISTS sel; CREATE TABLE sel AS SELECT id AS sel_id, id % 7 AS other FROM gp_reals "
                 "WHERE id % 2 = 0 DISTRIBUTED BY (other)")  # fmt: skip
    where = "id IN (SELECT sel_id FROM sel)"
    expected = run_sql(dsn, f"SELECT count(*) FROM gp_reals WHERE {where}")[0][0]
    for direct in ("auto", False, "retrieve"):
        rows = len(dasktrain.read_table(db, "gp_reals", ["id"], where=where, direct=direct).compute())
        print(f"where= with a subquery, direct={direct!r}: {rows} rows (SQL: {expected})")
    try:
        dasktrain.read_table(db, "gp_reals", ["id"], where=where, direct="utility")
    except dasktrain.errors.DasktrainError as exc:
        print(f"where= with a subquery, direct='utility': {type(exc).__name__}: {str(exc)[:90]}...")
    if analyst:
        run_sql(dsn, sql.SQL("GRANT SELECT ON gp_reals TO {}").format(sql.Identifier(analyst)))
        analyst_dsn = psycopg2.extensions.make_dsn(dsn, user=analyst)
        rows = len(dasktrain.read_table(analyst_dsn, "gp_reals", ["id"]).compute())
        print(f"{analyst} (SELECT only), the defaults: {rows} rows")
        try:
            dasktrain.read_table(analyst_dsn, "gp_reals", ["id"], direct="utility")
        except dasktrain.errors.DasktrainError as exc:
            print(f"{analyst}, direct='utility': {type(exc).__name__}: {str(exc)[:110]}...")


def share_locks(dsn: str, table: str) -> int:
    query = "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND mode = 'ShareLock' AND granted"
    return run_sql(dsn, query, (table,))[0][0]


def fits(db, dsn: str) -> None:
    with local_cluster(4) as cluster, Client(cluster) as client:
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
        result = dasktrain.fit("gp_digits", model, x="x", y="y", compile=COMPILE, iterations=2, normalizing_const=16.0,
                               db=db, client=client, progress=False)  # fmt: skip
        print(f"3 segments, 4 workers: {result.num_replicas} replicas, {result.num_segments} reads, "
              f"rows per iteration {[h['rows'] for h in result.history]}")  # fmt: skip
    with local_cluster(2) as cluster, Client(cluster) as client:
        start = time.monotonic()
        dasktrain.read_table(db, "gp_images", direct="utility", client=client).compute()
        read = time.monotonic() - start
        out = {}

        def train():
            cnn = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                                    keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])  # fmt: skip
            begun = time.monotonic()
            dasktrain.fit("gp_images", cnn, x="x", y="y", compile=COMPILE, iterations=5, normalizing_const=255.0,
                          db=db, client=client, progress=False)  # fmt: skip
            out["seconds"] = time.monotonic() - begun

        thread = threading.Thread(target=train)
        thread.start()
        while share_locks(dsn, "gp_images") == 0 and thread.is_alive():
            time.sleep(0.05)
        locked = time.monotonic()
        run_sql(dsn, "UPDATE gp_images SET y = y WHERE id = 0")
        waited = time.monotonic() - locked
        thread.join()
        print(
            f"an UPDATE sent when a 5-iteration fit took its lock waited {waited:.1f} s of the fit's "
            f"{out['seconds']:.1f} s (a bare read: {read:.1f} s); locks left: {share_locks(dsn, 'gp_images')}"
        )


def killed_retrieve(db, dsn: str, rows: int) -> None:
    with local_cluster(2) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        frame = dasktrain.read_table(db, "gp_images", columns=["id"], direct="retrieve", client=client).persist()
        time.sleep(1.5)
        os.kill(pids[min(pids)], signal.SIGKILL)
        ids = frame["id"].compute()
        print(f"a worker killed mid-RETRIEVE: {len(ids)} rows, {ids.nunique()} distinct (of {rows})")
        del frame
    for wait in (10, 20, 30):
        time.sleep(10)
        try:
            run_sql(dsn, "SELECT 1")
            print(f"{wait} s later the coordinator accepts sessions")
        except psycopg2.Error as exc:
            print(f"{wait} s later the coordinator refuses sessions: {exc}".strip())


def speed(db) -> None:
    with local_cluster(2) as cluster, Client(cluster) as client:
        for table in ("gp_images", "gp_reals"):
            for _ in range(2):
                cells = []
                for direct in ("utility", "retrieve", False):
                    start = time.monotonic()
                    rows = len(dasktrain.read_table(db, table, direct=direct, client=client).compute())
                    cells.append(f"{direct!s}: {time.monotonic() - start:.2f} s")
                print(f"{table} ({rows} rows): " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a Greenplum database a superuser or owner may write to")
    parser.add_argument("--analyst", help="a role with LOGIN only, to check reads with SELECT alone")
    parser.add_argument("--rows", type=int, default=30000, help="images in gp_images")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    db = dasktrain.connect(args.dsn)
    print("server:", run_sql(args.dsn, "SELECT version()")[0][0][:90])
    load(db, args.dsn, args.rows)
    exact_reads(db, args.dsn, args.analyst)
    fits(db, args.dsn)
    killed_retrieve(db, args.dsn, args.rows)
    speed(db)


if __name__ == "__main__":
    main()
