"""Scoring throughput: MADlib-style row-at-a-time vs a one-process batch loop vs predict_table.

    python benchmarks/score_throughput.py [--rows 60000] [--sample 300] [--repeats 3]

60,000 Fashion-MNIST training images (or generated 28×28 images) in 4 segments, the seed's
one-layer CNN; writes MADlib's output rows (id, class_name, class_value, prob, rank), top class:

  (a) row at a time, as MADlib's predict does it: fetch a row, ``model.predict`` it, INSERT the
      result; measured on ``--sample`` rows and extrapolated per row; (a') the same loop calling
      the model directly (``model(row)``), the cheapest per-row Keras call;
  (b) one process, batched: fetch all rows, predict in batches of 1024, ``executemany`` the INSERTs;
  (c) ``predict_table`` on a LocalCluster of 2 worker processes (median of ``--repeats``).

Goals (issue 4): (c) >= 5x (a) and not slower than (b); aim 20x (a).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import fashion_or_generated, machine, print_table  # noqa: E402
from distributed import Client  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402
from dasktrain._demo import seed_cnn  # noqa: E402

SOURCE, OUTPUT, ARCH = "bench_score_source", "bench_score_output", "bench_score_arch"
CLASSES = [str(c) for c in range(10)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--sample", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    db = dasktrain.connect()
    x, y, source = fashion_or_generated(args.rows)
    loaders.write_arrays(db, SOURCE, x, y, segments=4, if_exists="replace")
    model = seed_cnn((28, 28, 1), 10)
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {ARCH}, {OUTPUT}")
    model_id = dasktrain.load_architecture(db, ARCH, model, weights=model.get_weights())

    def create_output(cur):
        cur.execute(f"DROP TABLE IF EXISTS {OUTPUT}")
        cur.execute(
            f"CREATE TABLE {OUTPUT} (id bigint, class_name text, class_value text, prob double precision, rank int)"
        )

    # (a) row at a time; (a') the same with a direct model call, cheaper than model.predict per row
    conn = db.connection()

    def row_at_a_time(predict_one) -> float:
        with conn, conn.cursor() as cur:
            create_output(cur)
        start = time.perf_counter()
        with conn, conn.cursor() as cur:
            for i in range(args.sample):
                cur.execute(f"SELECT x FROM {SOURCE} WHERE id = %s", (i,))
                row = np.frombuffer(cur.fetchone()[0], dtype=np.uint8).reshape(1, 28, 28, 1).astype(np.float32) / 255
                probs = predict_one(row)
                best = int(probs.argmax())
                cur.execute(f"INSERT INTO {OUTPUT} VALUES (%s, 'y', %s, %s, 1)", (i, CLASSES[best], float(probs[best])))
        return (time.perf_counter() - start) / args.sample

    per_row_predict = row_at_a_time(lambda row: model.predict(row, verbose=0)[0])
    per_row_call = row_at_a_time(lambda row: np.asarray(model(row, training=False))[0])

    # (b) one process, batched
    start = time.perf_counter()
    with conn, conn.cursor() as cur:
        create_output(cur)
        cur.execute(f"SELECT id, x FROM {SOURCE}")
        fetched = cur.fetchall()
        ids = np.array([r[0] for r in fetched])
        images = np.frombuffer(b"".join(r[1] for r in fetched), dtype=np.uint8).reshape(-1, 28, 28, 1)
        probs = model.predict(images.astype(np.float32) / 255, batch_size=1024, verbose=0)
        best = probs.argmax(axis=1)
        cur.executemany(
            f"INSERT INTO {OUTPUT} VALUES (%s, 'y', %s, %s, 1)",
            [(int(i), CLASSES[b], float(p[b])) for i, b, p in zip(ids, best, probs, strict=True)],
        )
    batch_seconds = time.perf_counter() - start
    conn.close()

    # (c) predict_table
    times = []
    with dasktrain.cluster(n_workers=2) as cluster, Client(cluster) as client:
        for _ in range(args.repeats + 1):  # the first run warms the workers up (TensorFlow, the model)
            start = time.perf_counter()
            written = dasktrain.predict_table(
                db, (ARCH, model_id), SOURCE, OUTPUT, class_values=CLASSES, normalizing_const=255.0,
                replace=True, client=client, progress=False,
            )  # fmt: skip
            times.append(time.perf_counter() - start)
    assert written == len(x)
    table_seconds = statistics.median(times[1:])

    n = len(x)
    results = {
        "(a) row at a time, model.predict per row": n * per_row_predict,
        "(a') row at a time, direct model call": n * per_row_call,
        "(b) one process, batch + executemany": batch_seconds,
        "(c) predict_table, 2 workers": table_seconds,
    }
    print(f"\nscoring throughput: {n:,} rows ({source}), seed CNN, top class; machine: {machine()}")
    print(f"(a) measured on {args.sample} rows and extrapolated; (c) median of {args.repeats} after a warm-up\n")
    print_table(n, results)
    a, a_call, b, c = results.values()
    print(f"\n(c) vs (a): {a / c:6.1f}x faster  (required >= 5x, aim 20x)")
    print(f"(c) vs (a'): {a_call / c:6.1f}x faster")
    print(f"(c) vs (b): {b / c:6.2f}x faster  (required >= 1x)")
    with db.cursor() as cur:
        cur.execute(f"DROP TABLE {SOURCE}, {SOURCE}_summary, {OUTPUT}, {ARCH}")


if __name__ == "__main__":
    main()
