"""Accuracy of the distributed strategies against single-process Keras at equal epochs.

    python benchmarks/accuracy.py [--epochs 8] [--segments 4] [--out docs]

Fashion-MNIST 60k/10k (Debian's dataset-fashion-mnist; scikit-learn's digits when it is not
installed), the seed's one-layer CNN, Adam, batch 128. Runs, in one go:

- single-process Keras, ``epochs`` epochs;
- ``Averaging``, ``Ensemble``, ``EASGD`` for the seed's grid (alpha 0.001/0.01 x beta 0.5/0.7/0.9)
  and alpha=1, beta=1, each for ``epochs`` iterations of one pass over every segment;
- ``Averaging`` with ``sync_every=32`` minibatches, for the same number of epochs.

Test accuracy is recorded after every epoch. ``--learning-rate`` sets Adam's for every setting
(single-process Keras too); ``--only-averaging`` runs just single-process Keras and Averaging.
Prints a table and writes ``accuracy.png`` and ``accuracy.json`` (``accuracy_lr<rate>.*`` for
another rate or a partial run) to ``--out``. Goal (issue 3): some setting within 0.5 percentage points of
single-process accuracy at equal epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import load_demo_split, machine, plot_accuracy  # noqa: E402
from distributed import Client  # noqa: E402

import dasktrain  # noqa: E402
from dasktrain._demo import seed_cnn  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sync-every", type=int, default=32)
    p.add_argument("--out", default="docs")
    p.add_argument(
        "--learning-rate", type=float, default=0.001, help="Adam's learning rate for every setting (default 0.001)"
    )
    p.add_argument("--only-averaging", action="store_true", help="run single-process Keras and Averaging only")
    args = p.parse_args()

    db = dasktrain.connect()
    name, (x, y), (x_test, y_test), norm = load_demo_split(db, "bench_acc", args.segments)
    model = seed_cnn(x.shape[1:] + (1,), 10)
    start = model.get_weights()
    curves: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}

    clock = time.perf_counter()
    import keras

    compile_params = {
        "optimizer": f"Adam(learning_rate={args.learning_rate})",
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    }
    optimizer = keras.optimizers.Adam(learning_rate=args.learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        (x.astype(np.float32) / norm)[..., None],
        y,
        batch_size=128,
        epochs=args.epochs,
        verbose=0,
        validation_data=((x_test.astype(np.float32) / norm)[..., None], y_test),
    )
    curves["single-process Keras"] = history.history["val_accuracy"]
    seconds["single-process Keras"] = time.perf_counter() - clock
    print(f"single-process Keras: {curves['single-process Keras'][-1]:.4f}", flush=True)

    settings = {"Averaging": dict(strategy=dasktrain.Averaging()), "Ensemble": dict(strategy=dasktrain.Ensemble())}
    for alpha in (0.001, 0.01):
        for beta in (0.5, 0.7, 0.9):
            settings[f"EASGD(alpha={alpha}, beta={beta})"] = dict(strategy=dasktrain.EASGD(alpha, beta))
    settings["EASGD(alpha=1, beta=1)"] = dict(strategy=dasktrain.EASGD(1, 1))
    rows_per_segment = len(x) / args.segments
    rounds_per_epoch = math.ceil(rows_per_segment / (128 * args.sync_every))
    settings[f"Averaging, sync_every={args.sync_every}"] = dict(
        strategy=dasktrain.Averaging(), sync_every=args.sync_every, rounds_per_epoch=rounds_per_epoch
    )
    if args.only_averaging:
        settings = {"Averaging": settings["Averaging"]}

    with dasktrain.cluster(n_workers=args.workers) as cluster, Client(cluster) as client:
        for label, options in settings.items():
            per_epoch = options.pop("rounds_per_epoch", 1)
            clock = time.perf_counter()
            result = dasktrain.fit(
                "bench_acc_train",
                model,
                x="x",
                y="y",
                db=db,
                client=client,
                compile=compile_params,
                fit={"batch_size": 128},
                iterations=args.epochs * per_epoch,
                initial_weights=start,
                validation="bench_acc_test",
                metrics_every=per_epoch,
                normalizing_const=norm,
                progress=False,
                **options,
            )
            seconds[label] = time.perf_counter() - clock
            curves[label] = result.metric("accuracy", "validation")
            print(f"{label}: {curves[label][-1]:.4f}", flush=True)

    baseline = curves["single-process Keras"][-1]
    print(f"\nTest accuracy per epoch, {name} ({len(x):,} train / {len(x_test):,} test), seed CNN, Adam, batch 128,")
    print(f"Adam learning rate {args.learning_rate}; {args.segments} segments, {args.workers} worker processes")
    print(f"machine: {machine()}\n")
    print("| setting | " + " | ".join(f"ep {i}" for i in range(1, args.epochs + 1)) + " | vs single (pp) | seconds |")
    print("|---|" + "---|" * args.epochs + "---|---|")
    for label, curve in curves.items():
        cells = " | ".join(f"{a:.4f}" for a in curve)
        print(f"| {label} | {cells} | {100 * (curve[-1] - baseline):+.2f} | {seconds[label]:.0f} |")
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    suffix = "" if args.learning_rate == 0.001 and not args.only_averaging else f"_lr{args.learning_rate:g}"
    record = {"curves": curves, "seconds": seconds, "data": name, "learning_rate": args.learning_rate}
    (out / f"accuracy{suffix}.json").write_text(json.dumps(record, indent=1))
    plot_accuracy({k: (range(1, len(c) + 1), c) for k, c in curves.items()}, "epoch", out / f"accuracy{suffix}.png")
    for table in ("bench_acc_train", "bench_acc_test"):
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE {table}, {table}_summary")


if __name__ == "__main__":
    main()
