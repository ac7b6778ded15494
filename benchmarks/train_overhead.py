"""Training overhead: plain ``model.fit`` in one process vs ``dasktrain.fit`` with 1 segment on 1 worker.

    python benchmarks/train_overhead.py [--rows 60000] [--repeats 3]

Same data (Fashion-MNIST's training images when installed, else generated), same model (the
seed's one-layer CNN), batch 128, one epoch. The worker has as many threads as the plain run
has cores, so both use the same CPU. Measured side by side in one run, median of repeats taken in
turns after a warm-up (TensorFlow's start and the model's first build are not counted on either side).

Goal (issue 3): dasktrain.fit <= 1.25x the plain time; aim <= 1.05x.

With ``--rounds R --sync-every K`` it also measures the cost of one round: R rounds of K minibatches
(``sync_every=K``) against plain ``model.fit`` over the same R*K minibatches; the difference
divided by R is what each round adds (merge, weights in and out, optimizer state, scheduling).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dask.dataframe as dd  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import fashion_or_generated, interleaved_medians, machine  # noqa: E402
from distributed import Client  # noqa: E402

import dasktrain  # noqa: E402
from dasktrain._demo import COMPILE, seed_cnn  # noqa: E402
from dasktrain.io._tensor_column import tensor_series  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=0, help="also time this many short rounds (0: skip)")
    p.add_argument("--sync-every", type=int, default=4, help="minibatches per short round")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    x, y, source = fashion_or_generated(args.rows)
    features = (x.astype(np.float32) / 255.0)[..., np.newaxis]
    model = seed_cnn(features.shape[1:], 10)
    start = model.get_weights()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def plain_fit():
        model.set_weights(start)
        model.fit(features, y, batch_size=128, epochs=1, verbose=0)

    frame = pd.DataFrame({"x": tensor_series(x), "y": y.astype(np.int64)})
    ddf = dd.from_pandas(frame, npartitions=1)

    with dasktrain.cluster(n_workers=1, threads_per_worker=cores) as cluster, Client(cluster) as client:
        ddf = ddf.persist()

        def dask_fit():
            dasktrain.fit(
                ddf,
                model,
                x="x",
                y="y",
                compile=COMPILE,
                fit={"batch_size": 128},
                iterations=1,
                initial_weights=start,
                normalizing_const=255.0,
                client=client,
                progress=False,
            )

        results = interleaved_medians(
            {"plain keras model.fit, 1 process": plain_fit, "dasktrain.fit, 1 segment on 1 worker": dask_fit},
            args.repeats,
        )
        if args.rounds:
            per_round(model, start, features, y, ddf, client, args)
    plain, dask_time = results.values()
    print(f"\ntraining overhead: {len(x):,} rows ({source}), seed CNN, batch 128, 1 epoch")
    print(f"machine: {machine()}; worker threads = {cores}; median of {args.repeats} repeats after a warm-up\n")
    print(f"| {'method':<40} | {'seconds':>8} | {'ratio':>6} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 8}|")
    for name, seconds in results.items():
        print(f"| {name:<40} | {seconds:8.2f} | {seconds / plain:6.3f} |")
    print(f"\ndasktrain.fit / plain fit: {dask_time / plain:.3f}x  (required <= 1.25x, aim <= 1.05x)")


def per_round(model, start, features, y, ddf, client, args) -> None:
    """Seconds each round adds: R rounds of K minibatches against one fit over the same minibatches."""
    rows = args.rounds * args.sync_every * 128

    def plain():
        model.set_weights(start)
        model.fit(features[:rows], y[:rows], batch_size=128, epochs=1, verbose=0, shuffle=False)

    def rounds():
        dasktrain.fit(
            ddf, model, x="x", y="y", compile=COMPILE, fit={"batch_size": 128, "shuffle": False},
            iterations=args.rounds, sync_every=args.sync_every, initial_weights=start, normalizing_const=255.0,
            client=client, progress=False,
        )  # fmt: skip

    times = interleaved_medians({f"plain, {rows:,} rows": plain, f"{args.rounds} rounds": rounds}, args.repeats)
    plain_s, rounds_s = times.values()
    print(
        f"\n{args.rounds} rounds of {args.sync_every} minibatches: {rounds_s:.2f} s against {plain_s:.2f} s in one "
        f"fit: {1000 * (rounds_s - plain_s) / args.rounds:.0f} ms per round"
    )


if __name__ == "__main__":
    main()
