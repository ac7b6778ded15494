"""Read throughput: dasktrain.read_table against the wire limit and pandas.read_sql.

    python benchmarks/read_throughput.py [--rows 60000] [--repeats 5] [--dsn DSN]

Loads 60,000 28×28 uint8 images (Fashion-MNIST when installed) into 4 segments, then measures,
side by side in one run, the median of several repeats of:

  (a) raw ``COPY (SELECT id, x, y ...) TO STDOUT (FORMAT binary)`` into memory, one connection;
  (b) ``pandas.read_sql`` of the same columns, plus decoding ``x`` into one ndarray;
  (c) ``read_table(...).persist()`` on a LocalCluster of 2 worker processes, waited for;
  (d) ``read_table(...).compute()``: the same, brought into the client as one pandas frame.

Goals (issue 2): (c) >= 3x faster than (b) and >= 0.5x the throughput of (a).
Goal (issue 11): (d) >= 3x faster than (b).
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import fashion_or_generated, machine, median_seconds, print_table  # noqa: E402
from distributed import Client, LocalCluster, wait  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402

TABLE = "bench_read_throughput"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dsn")
    args = p.parse_args()

    db = dasktrain.connect(args.dsn)
    x, y, source = fashion_or_generated(args.rows)
    loaders.write_arrays(db, TABLE, x, y, segments=4, if_exists="replace")
    select = f"SELECT id, x, y FROM {TABLE}"

    def raw_copy():
        buffer = io.BytesIO()
        with db.cursor() as cur:
            cur.copy_expert(f"COPY ({select}) TO STDOUT (FORMAT binary)", buffer)
        return buffer.getbuffer().nbytes

    def pandas_read_sql():
        conn = db.connection()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy; plain DBAPI is fine
                frame = pd.read_sql(select, conn)
        finally:
            conn.close()
        images = np.stack([np.frombuffer(b, dtype=np.uint8) for b in frame["x"]]).reshape(-1, 28, 28)
        return images, frame["y"].to_numpy()

    wire_bytes = raw_copy()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:

            def dask_read_table():
                ddf = dasktrain.read_table(db, TABLE).persist()
                wait(ddf)
                return ddf

            def dask_into_client():
                return dasktrain.read_table(db, TABLE).compute()

            assert len(dask_read_table()) == len(x)
            assert len(dask_into_client()) == len(x)
            results = {
                "(a) raw binary COPY, 1 connection": median_seconds(raw_copy, args.repeats),
                "(b) pandas.read_sql + decode": median_seconds(pandas_read_sql, args.repeats),
                "(c) read_table().persist(), 2 workers": median_seconds(dask_read_table, args.repeats),
                "(d) read_table().compute(), 2 workers": median_seconds(dask_into_client, args.repeats),
            }
            client.cancel(list(client.futures))

    a, b, c, d = results.values()
    megabytes = wire_bytes / 1e6
    print(f"\nread throughput: {len(x):,} rows of 28x28 uint8 ({source}), {megabytes:.1f} MB on the wire, 4 segments")
    print(f"machine: {machine()}; median of {args.repeats} repeats\n")
    print_table(len(x), results, megabytes)
    print()
    print(f"(c) speed-up over (b):        {b / c:5.2f}x  (required >= 3x, aim 10x)")
    print(f"(c) throughput relative to (a): {a / c:5.2f}x  (required >= 0.5x, aim 0.7x)")
    print(f"(d) speed-up over (b):        {b / d:5.2f}x  (required >= 3x)")
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE {TABLE}, {TABLE}_summary")


if __name__ == "__main__":
    main()
