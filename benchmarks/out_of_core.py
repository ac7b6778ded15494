"""Training a segment larger than the worker's memory, and what reading batches from disk costs.

    python benchmarks/out_of_core.py [--part speed|beyond|both] [--limit-gib 1.5] [--times 3] [--rows 60000]

1. **Speed.** The same fit (one worker, a table of ``rows`` 28×28 uint8 images that fits in
   memory, one epoch) with ``cache="memory"`` and ``cache="disk"``, timed in turns; the ratio
   says what reading each batch from the worker's disk costs.
2. **Beyond memory.** One worker with a Dask memory limit of ``limit-gib``, and one segment
   ``times`` × that limit (the rows copied in SQL from a base of Fashion-MNIST, else generated
   images). ``fit(cache="auto")`` must choose the disk by itself and train one full pass. The
   worker's resident memory is sampled every 20 ms: its peak is printed beside the limit and
   the segment's size.

Goal (issue 11): a segment 3× the worker's memory limit trains.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fashion_or_generated, interleaved_medians, machine  # noqa: E402
from distributed import Client  # noqa: E402
from memory import start_sampling, stop_sampling  # noqa: E402
from psycopg2 import sql  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402

TABLE, BIG = "bench_ooc", "bench_ooc_big"
COMPILE = "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"
ROW_BYTES = 28 * 28


def mlp():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])  # fmt: skip


def fit_args(db, cache: str) -> dict:
    return {"x": "x", "y": "y", "compile": COMPILE, "fit": {"batch_size": 512}, "normalizing_const": 255.0,
            "iterations": 1, "progress": False, "db": db, "cache": cache}  # fmt: skip


def speed(db, rows: int, repeats: int) -> dict[str, float]:
    x, y, source = fashion_or_generated(rows)
    loaders.write_arrays(db, TABLE, x, y, segments=1, if_exists="replace", progress=False)
    print(f"\n1. speed: {len(x):,} rows ({source}, {len(x) * ROW_BYTES / 2**20:.0f} MiB), 1 worker, one epoch\n")
    with dasktrain.cluster(n_workers=1) as cluster, Client(cluster):
        runs = {cache: (lambda c=cache: dasktrain.fit(TABLE, mlp(), **fit_args(db, c))) for cache in ("memory", "disk")}
        return interleaved_medians(runs, repeats)


def grow(db, times: float, limit: int) -> int:
    """A one-segment table of ``times`` × ``limit`` bytes of pixels, copied in SQL from a 60,000-row base."""
    x, y, _ = fashion_or_generated(60000)
    loaders.write_arrays(db, BIG, x, y, segments=1, if_exists="replace", progress=False)
    loaders.write_arrays(db, TABLE, x[:2048], y[:2048], segments=1, if_exists="replace", progress=False)  # warm-up
    copies = int(times * limit / (len(x) * ROW_BYTES)) + 1
    with db.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} (id, x, y) SELECT b.id + k * %s, b.x, b.y FROM {t} b, generate_series(1, %s) k"
            ).format(t=sql.Identifier(BIG)),
            (len(x), copies - 1),
        )
        cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(BIG)))
    return len(x) * copies


def beyond_memory(db, limit_gib: float, times: float) -> None:
    limit = int(limit_gib * 2**30)
    start = time.perf_counter()
    rows = grow(db, times, limit)
    print(f"\n2. beyond memory: one segment of {rows:,} rows = {rows * ROW_BYTES / 2**30:.2f} GiB of pixels, "
          f"{rows * ROW_BYTES / limit:.2f}x the worker's memory limit of {limit_gib} GiB "
          f"(loaded in {time.perf_counter() - start:.0f} s)\n")  # fmt: skip
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("dasktrain").setLevel(logging.INFO)
    with dasktrain.cluster(n_workers=1, memory_limit=limit) as cluster, Client(cluster) as client:
        dasktrain.fit(TABLE, mlp(), **fit_args(db, "memory"))  # warm up: Keras started, the model built
        before = client.run(start_sampling)
        start = time.perf_counter()
        result = dasktrain.fit(BIG, mlp(), **fit_args(db, "auto"))
        seconds = time.perf_counter() - start
        peak = client.run(stop_sampling)
    (address,) = before
    assert result.num_rows == rows, (result.num_rows, rows)
    print("| segment GiB | worker limit GiB | segment / limit | RSS before GiB | peak RSS GiB | peak / limit "
          "| rows trained | fit s | loss |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {rows * ROW_BYTES / 2**30:.2f} | {limit_gib} | {rows * ROW_BYTES / limit:.2f}x | "
          f"{before[address] / 2**30:.2f} | {peak[address] / 2**30:.2f} | {peak[address] / limit:.2f} | "
          f"{result.history[-1]['rows']:,} | {seconds:.0f} | {result.metric('loss')[-1]:.3f} |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit-gib", type=float, default=1.5)
    p.add_argument("--times", type=float, default=3.0)
    p.add_argument("--part", choices=["speed", "beyond", "both"], default="both")
    p.add_argument("--dsn")
    args = p.parse_args()
    db = dasktrain.connect(args.dsn)
    print(f"machine: {machine()}")
    try:
        if args.part in ("speed", "both"):
            medians = speed(db, args.rows, args.repeats)
            print("\n| cache | median s | ratio to memory |\n|---|---|---|")
            for cache, seconds in medians.items():
                print(f"| {cache} | {seconds:.2f} | {seconds / medians['memory']:.2f}x |")
        if args.part in ("beyond", "both"):
            beyond_memory(db, args.limit_gib, args.times)
    finally:
        with db.cursor() as cur:
            for name in (TABLE, BIG):
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(f"{name}_summary")))


if __name__ == "__main__":
    main()
