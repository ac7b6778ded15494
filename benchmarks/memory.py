"""Worker memory while training: each worker's peak RSS beside the raw size of the segments it holds.

    python benchmarks/memory.py [--rows 300000] [--segments 4] [--workers 2]

Loads ``rows`` 28×28 uint8 images (59 MB of pixels per segment at the defaults), warms each worker
up (the model built, TensorFlow started, on a tiny table), then samples every worker's resident
memory every 20 ms while ``dasktrain.fit`` reads the table and trains one round. It prints, per
worker, the memory the fit added at its peak against the raw bytes of the segments it held.

Goal (issue 11): the peak added ≤ 3× the raw size of a worker's segments (plus the model).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import machine  # noqa: E402
from distributed import Client, get_worker  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402
from dasktrain._demo import COMPILE, seed_cnn  # noqa: E402

TABLE, WARM = "bench_memory", "bench_memory_warm"


def start_sampling(dask_worker=None) -> int:
    """On a worker: record the process's resident memory every 20 ms until stopped; return it now."""
    import psutil

    worker = dask_worker or get_worker()
    process = psutil.Process()
    state = {"peak": process.memory_info().rss, "stop": threading.Event()}

    def sample():
        while not state["stop"].is_set():
            state["peak"] = max(state["peak"], process.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    worker._memory_sampling = state
    return state["peak"]


def stop_sampling(dask_worker=None) -> int:
    """On a worker: stop sampling; return the peak resident memory seen."""
    state = (dask_worker or get_worker())._memory_sampling
    state["stop"].set()
    return state["peak"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--dsn")
    args = p.parse_args()

    db = dasktrain.connect(args.dsn)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.rows, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, args.rows).astype(np.int64)
    loaders.write_arrays(db, TABLE, x, y, segments=args.segments, if_exists="replace", progress=False)
    loaders.write_arrays(db, WARM, x[:512], y[:512], segments=args.workers, if_exists="replace", progress=False)
    sizes = [s.rows for s in dasktrain.segments(db, TABLE, exact=True)]
    fit = {"x": "x", "y": "y", "compile": COMPILE, "fit": {"batch_size": 128}, "normalizing_const": 255.0,
           "iterations": 1, "progress": False, "db": db}  # fmt: skip

    with dasktrain.cluster(n_workers=args.workers) as cluster, Client(cluster) as client:
        dasktrain.fit(WARM, seed_cnn((28, 28, 1), 10), **fit)  # TensorFlow started, the model built
        before = client.run(start_sampling)
        result = dasktrain.fit(TABLE, seed_cnn((28, 28, 1), 10), **fit)
        peaks = client.run(stop_sampling)
    assert result.num_rows == args.rows

    print(f"\nworker memory: {args.rows:,} rows of 28x28 uint8 in {args.segments} segments ({sizes}), "
          f"{args.workers} workers; machine: {machine()}\n")  # fmt: skip
    print("| worker | segments' raw MB | RSS before MB | peak RSS MB | added MB | added / raw |")
    print("|---|---|---|---|---|---|")
    per_worker = args.rows * 28 * 28 / args.workers
    worst = 0.0
    for address in sorted(before):
        added = peaks[address] - before[address]
        worst = max(worst, added / per_worker)
        print(f"| {address.rsplit(':', 1)[-1]} | {per_worker / 1e6:.1f} | {before[address] / 1e6:.0f} | "
              f"{peaks[address] / 1e6:.0f} | {added / 1e6:.0f} | {added / per_worker:.2f}x |")  # fmt: skip
    print(f"\nworst worker: the fit added {worst:.2f}x the raw size of its segments (goal <= 3x)")
    print("(raw size assumes even segments; each worker held the segments Dask and the balancing gave it)")
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE {TABLE} CASCADE; DROP TABLE {TABLE}_summary; DROP TABLE {WARM} CASCADE; "
                    f"DROP TABLE {WARM}_summary")  # fmt: skip


if __name__ == "__main__":
    main()
