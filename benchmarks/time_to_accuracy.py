"""Time to accuracy: one process against dasktrain, in epochs and in seconds, as the table's segments grow.

    python benchmarks/time_to_accuracy.py [--epochs 8] [--segments 4,16,32,64] [--workers 2]
        [--strategies slowmo] [--learning-rates 0.001] [--replicas R] [--out docs]

Fashion-MNIST 60k/10k (Debian's dataset-fashion-mnist; scikit-learn's digits when it is not
installed), the seed's one-layer CNN, Adam, batch 128, the same starting weights everywhere.

- One process, once: plain ``model.fit`` for ``epochs`` epochs at each learning rate of
  ``--learning-rates``; the test accuracy after every epoch.
- dasktrain, for each segment count of ``--segments`` (the tables are written again with that
  many segments): every strategy of ``--strategies`` (names, with parameters as in
  ``"slowmo(outer_lr=1.0, momentum=0.5)"``), ``epochs`` iterations at Keras's default rate (the
  first of ``--learning-rates``), with ``replicas=--replicas`` (default: one per worker); the
  merged model's test accuracy after every iteration.

Seconds count from the start of training and include the test evaluations on both sides. Prints
epochs and seconds to 0.87/0.88/0.89/0.90, the accuracy after the last epoch, and a table against
segments: accuracy after ``epochs``, the gap to one process, fit seconds over one process's, and
seconds per iteration over those at the first segment count. Writes ``time_to_accuracy.json``,
``time_to_accuracy_epochs.png``, ``time_to_accuracy_seconds.png`` and
``time_to_accuracy_segments.png`` to ``--out``. Goals (issue 19): at every segment count, the
default within 0.5 points of one process after 8 epochs, and at 64 segments at most 1.25x its
seconds. Runs unchanged on a GPU machine with ``KERAS_BACKEND=torch``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import load_demo_split, machine, plot_accuracy  # noqa: E402
from distributed import Client  # noqa: E402

import dasktrain  # noqa: E402
from dasktrain._demo import seed_cnn  # noqa: E402
from dasktrain._params import optimizer_config  # noqa: E402
from dasktrain.strategies import strategy_named  # noqa: E402

TARGETS = (0.87, 0.88, 0.89, 0.90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--segments", default="4", help="segment counts separated by ',', e.g. 4,16,32,64")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--strategies", default="slowmo", help="strategies separated by ';'")
    p.add_argument("--learning-rates", default="0.001", help="Adam rates; the first is Keras's default")
    p.add_argument("--replicas", default=None, help="fit(replicas=): a number or 'segments' (default: one per worker)")
    p.add_argument("--out", default="docs")
    args = p.parse_args()
    rates = [float(r) for r in args.learning_rates.split(",")]
    counts = [int(c) for c in args.segments.split(",")]
    replicas = int(args.replicas) if args.replicas and args.replicas.isdigit() else args.replicas

    db = dasktrain.connect()
    name, (x, y), (x_test, y_test), norm = load_demo_split(db, "bench_tta", counts[0])
    model = seed_cnn(x.shape[1:] + (1,), 10)
    start = model.get_weights()
    runs: dict[str, dict] = {}

    features, features_test = (x.astype(np.float32) / norm)[..., None], (x_test.astype(np.float32) / norm)[..., None]
    for rate in rates:
        runs[f"one process, Adam {rate:g}"] = one_process(model, start, features, y, features_test, y_test, rate, args)
    baseline = runs[f"one process, Adam {rates[0]:g}"]

    sweep: list[dict] = []
    with dasktrain.cluster(n_workers=args.workers) as cluster, Client(cluster) as client:
        warm_up(client, db, model, start, norm)
        for segments in counts:
            if segments != counts[0]:
                load_demo_split(db, "bench_tta", segments)
            for spec in [s.strip() for s in args.strategies.split(";") if s.strip()]:
                strategy = parse_strategy(spec)
                label = f"dasktrain {segments} segments, {strategy!r}, Adam {rates[0]:g}"
                run = runs[label] = distributed(client, db, model, start, norm, strategy, rates[0], args, replicas)
                sweep.append({"segments": segments, "strategy": repr(strategy), **run})

    report(runs, args, name, x, x_test)
    report_segments(sweep, baseline, args)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    record = {"data": name, "segments": counts, "workers": args.workers, "replicas": args.replicas,
              "machine": machine(), "runs": runs, "sweep": sweep}  # fmt: skip
    (out / "time_to_accuracy.json").write_text(json.dumps(record, indent=1))
    plot(runs, "epochs", out / "time_to_accuracy_epochs.png")
    plot(runs, "seconds", out / "time_to_accuracy_seconds.png")
    plot_segments(sweep, baseline, out / "time_to_accuracy_segments.png")


def parse_strategy(spec: str):
    """``"slowmo(outer_lr=1.0)"`` -> ``SlowMo(outer_lr=1.0, ...)``."""
    parsed = optimizer_config(spec)
    if isinstance(parsed, dict):
        return strategy_named(parsed["class_name"], **parsed["config"])
    return strategy_named(spec)


def one_process(model, start, x, y, x_test, y_test, rate: float, args) -> dict:
    import keras

    model.set_weights(start)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    accuracy, seconds = [], []
    clock = time.perf_counter()
    for _ in range(args.epochs):
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        accuracy.append(float(model.evaluate(x_test, y_test, batch_size=1024, verbose=0, return_dict=True)["accuracy"]))
        seconds.append(time.perf_counter() - clock)
    print(f"one process, Adam {rate:g}: {accuracy[-1]:.4f} in {seconds[-1]:.0f} s", flush=True)
    return {"accuracy": accuracy, "seconds": seconds}


def _compile(rate: float) -> dict:
    return {
        "optimizer": f"Adam(learning_rate={rate})",
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    }


def warm_up(client, db, model, start, norm) -> None:
    """One short fit: workers import TensorFlow and build the model before anything is timed."""
    dasktrain.fit(
        "bench_tta_test", model, x="x", y="y", db=db, client=client, compile=_compile(0.001), iterations=1,
        fit={"batch_size": 128}, initial_weights=start, normalizing_const=norm, progress=False,
    )  # fmt: skip


def distributed(client, db, model, start, norm, strategy, rate: float, args, replicas=None) -> dict:
    result = dasktrain.fit(
        "bench_tta_train", model, x="x", y="y", db=db, client=client, compile=_compile(rate),
        fit={"batch_size": 128}, iterations=args.epochs, initial_weights=start, strategy=strategy,
        validation="bench_tta_test", normalizing_const=norm, progress=False, replicas=replicas,
    )  # fmt: skip
    accuracy = result.metric("accuracy", "validation")
    seconds = [h["elapsed"] for h in result.history]
    print(f"{result.num_segments} segments, {result.num_replicas} replicas, {strategy!r}, Adam {rate:g}: "
          f"{accuracy[-1]:.4f} in {seconds[-1]:.0f} s", flush=True)  # fmt: skip
    return {"accuracy": accuracy, "seconds": seconds, "replicas": result.num_replicas}


def first_reaching(curve: list[float], seconds: list[float], target: float) -> tuple[str, str]:
    for epoch, (accuracy, elapsed) in enumerate(zip(curve, seconds, strict=True), start=1):
        if accuracy >= target:
            return str(epoch), f"{elapsed:.0f}"
    return "never", "—"


def report(runs: dict, args, name: str, x, x_test) -> None:
    print(f"\n{name} ({len(x):,} train / {len(x_test):,} test), seed CNN, Adam, batch 128, {args.epochs} epochs;")
    print(f"dasktrain: {args.segments} segments on {args.workers} worker processes; machine: {machine()}\n")
    header = " | ".join(f"to {t:.2f}: epochs / s" for t in TARGETS)
    print(f"| run | {header} | accuracy after {args.epochs} |")
    print("|---|" + "---|" * len(TARGETS) + "---|")
    for label, run in runs.items():
        cells = " | ".join(" / ".join(first_reaching(run["accuracy"], run["seconds"], t)) for t in TARGETS)
        print(f"| {label} | {cells} | {run['accuracy'][-1]:.4f} |")


def report_segments(sweep: list[dict], baseline: dict, args) -> None:
    """Accuracy after the last epoch and seconds against segments, each beside one process's in the same run."""
    print(f"\nagainst segments ({args.workers} workers; one process: {baseline['accuracy'][-1]:.4f} "
          f"in {baseline['seconds'][-1]:.0f} s):\n")  # fmt: skip
    print(f"| segments | replicas | strategy | accuracy after {args.epochs} | gap (points) | fit seconds | "
          f"/ one process | s per iteration / at {sweep[0]['segments']} segments |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    first = {}
    for run in sweep:
        per_iteration = run["seconds"][-1] / len(run["seconds"])
        first.setdefault(run["strategy"], per_iteration)
        gap = 100 * (run["accuracy"][-1] - baseline["accuracy"][-1])
        print(f"| {run['segments']} | {run['replicas']} | {run['strategy']} | {run['accuracy'][-1]:.4f} | {gap:+.2f} "
              f"| {run['seconds'][-1]:.0f} | {run['seconds'][-1] / baseline['seconds'][-1]:.2f}x "
              f"| {per_iteration / first[run['strategy']]:.2f}x |")  # fmt: skip


def plot_segments(sweep: list[dict], baseline: dict, path: Path) -> None:
    """Accuracy after the last epoch, and fit seconds over one process's, against segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for strategy in dict.fromkeys(run["strategy"] for run in sweep):
        runs = [run for run in sweep if run["strategy"] == strategy]
        segments = [run["segments"] for run in runs]
        name = strategy.split("(")[0]
        left.plot(segments, [run["accuracy"][-1] for run in runs], "-o", label=name)
        right.plot(segments, [run["seconds"][-1] / baseline["seconds"][-1] for run in runs], "-o", label=name)
    left.axhline(baseline["accuracy"][-1], color="k", ls="--", label="one process")
    left.axhline(baseline["accuracy"][-1] - 0.005, color="grey", ls=":", label="one process - 0.5 points")
    right.axhline(1.0, color="k", ls="--", label="one process")
    right.axhline(1.25, color="grey", ls=":", label="1.25x")
    for ax, ylabel in ((left, "test accuracy after the last epoch"), (right, "fit seconds / one process's")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("segments of the table")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot(runs: dict, axis: str, path: Path) -> None:
    series = {
        label: (range(1, len(run["accuracy"]) + 1) if axis == "epochs" else run["seconds"], run["accuracy"])
        for label, run in runs.items()
    }
    xlabel = "epoch (dasktrain: iteration)" if axis == "epochs" else "seconds since the start of training"
    plot_accuracy(series, xlabel, path, hlines=TARGETS, ylim=(0.8, 0.92))


if __name__ == "__main__":
    main()
