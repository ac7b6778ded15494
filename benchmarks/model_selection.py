"""Model selection: model hopper parallelism against task parallelism and one configuration after another;
Hyperband and successive halving against the grid.

    python benchmarks/model_selection.py [--rows 12000] [--test-rows 2000] [--segments 4] [--workers 2]
        [--iterations 3] [--repeats 2] [--R 9] [--eta 3] [--part speed|search|both]

Fashion-MNIST (Debian's dataset-fashion-mnist; random images when it is not installed) in
``--segments`` segments on a local cluster of ``--workers`` one-thread worker processes. Eight
configurations: 2 architectures (an MLP with 64 units; the seed's one-layer CNN) × Adam at 2
learning rates × 2 batch sizes.

``--part speed``: the same ``--iterations`` passes of every configuration over the data, three ways:

- hopper: :func:`dasktrain.fit_multiple` (the segments grouped into one part per worker stay;
  models and their optimizer state hop, one visit per part);
- task parallelism: each configuration one Dask task that gathers every segment onto its worker
  and trains alone with ``model.fit`` (Cerebro's "task parallelism" baseline);
- one after another: :func:`dasktrain.fit` for each configuration in turn (its default strategy).

After a warm-up (every worker builds each configuration's model once), the methods run in
turns ``--repeats`` times; prints the medians of wall time and its ratio to the hopper's, the
bytes of training data moved between worker processes (from the workers' own transfer logs), the
best test accuracy (every final model evaluated on the same test rows), and the workers' busy
fraction (Dask's task stream: compute time over the span times the workers). Goal (issue 12):
hopper >= 1.5x faster than one after another, and no training rows moved once the parts are home
(bringing a part's segments to its worker, once per search, is counted as training data moved).

``--part search``: the grid (every configuration ``--R`` iterations, with the hopper) against
:func:`dasktrain.hyperband` (R, eta) and :func:`dasktrain.successive_halving` over the same
space (random draws from the same lists), seed 0: the best test accuracy and the training passes
(iterations summed over configurations). Goal: within 1 point of the grid's best in <= 40 % of its passes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import fashion_or_generated, machine  # noqa: E402
from distributed import Client, get_task_stream  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402
from dasktrain._demo import seed_cnn  # noqa: E402

TRAIN, TEST = "bench_select_train", "bench_select_test"
NORM = 255.0


def architectures():
    import keras

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                            keras.layers.Dense(10, activation="softmax")], name="mlp64")  # fmt: skip
    return [mlp, seed_cnn((28, 28, 1), 10)]


SPACE = {"optimizer": "adam", "learning_rate": [0.001, 0.003], "loss": "sparse_categorical_crossentropy",
         "metrics": ["accuracy"]}  # fmt: skip
FIT = {"batch_size": [64, 256]}


def test_accuracy(architecture: str, weights, x_test, y_test) -> float:
    import keras

    model = keras.models.model_from_json(architecture)
    model.set_weights(weights)
    X = x_test.reshape(len(x_test), *model.inputs[0].shape[1:]).astype("float32") / NORM
    return float(np.mean(np.asarray(model(X, training=False)).argmax(axis=1) == y_test))


def train_alone(architecture: str, compile_text: str, batch_size: int, epochs: int, *partitions):
    """Task parallelism: one configuration trained alone on every segment, gathered onto this worker."""
    import pandas as pd

    from dasktrain._model_spec import compiled_model
    from dasktrain._params import COMPILE_KEYS, parse_params

    model = compiled_model(architecture, parse_params(compile_text, what="compile", allowed=COMPILE_KEYS))
    X, y = dasktrain.to_arrays(pd.concat(partitions), x="x", y="y")
    X = X.reshape(len(X), *model.inputs[0].shape[1:]).astype("float32") / NORM
    model.fit(X, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return model.get_weights()


def count_segment_bytes(dask_worker=None) -> None:
    """Let Dask size a prepared segment by its arrays (run on every worker): by default it sizes the
    dataclass at a few bytes, and moving a part's segments to its worker would show as 0 MiB moved."""
    from dask.sizeof import sizeof

    from dasktrain.train._segment_data import SegmentData

    @sizeof.register(SegmentData)
    def _sizeof_segment(data) -> int:
        return int(getattr(data.X, "nbytes", 0)) + int(data.y.nbytes) + 1024


def clear_transfers(dask_worker) -> None:
    dask_worker.transfer_incoming_log.clear()


def transfers(dask_worker) -> list[dict]:
    return [dict(entry["keys"]) for entry in dask_worker.transfer_incoming_log]


def measured(client, run):
    """Run ``run()``; return its result, seconds, bytes moved between workers (data, other), busy fraction."""
    client.run(clear_transfers)
    with get_task_stream(client) as stream:
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
    data = other = 0
    for entries in client.run(transfers).values():
        for keys in entries:
            for key, nbytes in keys.items():
                # rows: partitions read from the table, segments prepared for training, segments moved (same-)
                if str(key).startswith(("('", "prepare_segment-", "cache_segment-", "same-")):
                    data += nbytes
                else:  # model states, weights, metrics
                    other += nbytes
    busy = 0.0
    for task in stream.data:
        for part in task.get("startstops", ()):
            if part["action"] == "compute":
                busy += part["stop"] - part["start"]
    workers = len(client.scheduler_info()["workers"])
    return result, seconds, data, other, busy / (seconds * workers)


def speed(client, db, configs, args, x_test, y_test) -> None:
    print(f"\n## {len(configs)} configurations x {args.iterations} passes, {args.rows} rows in {args.segments} "
          f"segments, {args.workers} workers\n")  # fmt: skip
    rows = {}

    def hopper():
        search = dasktrain.fit_multiple(TRAIN, configs, x="x", y="y", iterations=args.iterations, db=db,
                                        client=client, normalizing_const=NORM, progress=False)  # fmt: skip
        return {k: (r.architecture, r.weights) for k, r in search.results.items()}

    def tasks():
        parts = client.compute(dasktrain.read_table(db, TRAIN, columns=["x", "y"]).to_delayed())
        futures = {c.mst_key: client.submit(train_alone, c.model, c.compile_params, c.fit["batch_size"],
                                            args.iterations, *parts, pure=False) for c in configs}  # fmt: skip
        return {k: (configs[k - 1].model, f.result()) for k, f in futures.items()}

    def one_after_another():
        out = {}
        for c in configs:
            result = dasktrain.fit(TRAIN, c.model, x="x", y="y", compile=c.compile_params, fit=c.fit_params,
                                   iterations=args.iterations, db=db, client=client, normalizing_const=NORM,
                                   progress=False)  # fmt: skip
            out[c.mst_key] = (result.architecture, result.weights)
        return out

    # Warm-up: every worker builds and traces each configuration's model once, as on a cluster that
    # has trained before; fit and fit_multiple then reuse them (the task baseline builds its own).
    dasktrain.fit_multiple(TRAIN, configs, x="x", y="y", iterations=1, db=db, client=client, progress=False)
    runs = (("model hopper (fit_multiple)", hopper), ("task parallelism", tasks),
            ("one after another (fit)", one_after_another))  # fmt: skip
    for repeat in range(args.repeats):  # in turns, so that drift hits every method alike
        for name, run in runs if repeat % 2 == 0 else runs[::-1]:
            models, seconds, data, other, busy = measured(client, run)
            accuracy = max(test_accuracy(a, w, x_test, y_test) for a, w in models.values())
            rows.setdefault(name, []).append((seconds, data, other, accuracy, busy))
            print(f"  {name}: {seconds:.1f} s", flush=True)
    rows = {name: tuple(float(np.median(v)) for v in zip(*runs_, strict=True)) for name, runs_ in rows.items()}
    base = rows["model hopper (fit_multiple)"][0]
    print("\n| method | seconds | x hopper's time | training data moved | models/metrics moved | best test accuracy "
          "| workers busy |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (seconds, data, other, accuracy, busy) in rows.items():
        print(f"| {name} | {seconds:.1f} | {seconds / base:.2f} | {data / 2**20:.1f} MiB | {other / 2**20:.1f} MiB | "
              f"{accuracy:.4f} | {busy:.2f} |")  # fmt: skip


def search(client, db, configs, args, x_test, y_test) -> None:
    print(f"\n## Grid ({len(configs)} configurations x {args.R} iterations) against Hyperband (R={args.R}, "
          f"eta={args.eta}) and successive halving\n")  # fmt: skip
    common = {"x": "x", "y": "y", "validation": TEST, "db": db, "client": client, "normalizing_const": NORM,
              "progress": False}  # fmt: skip
    rows = {}
    start = time.perf_counter()
    grid = dasktrain.fit_multiple(TRAIN, configs, iterations=args.R, **common)
    rows["grid"] = (grid, time.perf_counter() - start)
    space = {"compile": SPACE, "fit": FIT, "R": args.R, "eta": args.eta, "seed": 0, "schedule": args.schedule}
    start = time.perf_counter()
    rows["hyperband"] = (dasktrain.hyperband(TRAIN, architectures(), **space, **common), time.perf_counter() - start)
    start = time.perf_counter()
    halving = dasktrain.successive_halving(TRAIN, architectures(), **space, **common)
    rows["successive halving"] = (halving, time.perf_counter() - start)
    best_grid = _best_accuracy(grid, x_test, y_test)
    print("| search | configurations | passes | x grid's passes | best test accuracy | points below the grid "
          "| seconds |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (result, seconds) in rows.items():
        accuracy = _best_accuracy(result, x_test, y_test)
        print(f"| {name} | {len(result.results)} | {result.passes} | {result.passes / grid.passes:.2f} | "
              f"{accuracy:.4f} | {100 * (best_grid - accuracy):.2f} | {seconds:.0f} |")  # fmt: skip


def _best_accuracy(result, x_test, y_test) -> float:
    """The test accuracy of the configuration the search chose (its best by validation loss)."""
    return test_accuracy(result.best.architecture, result.best.weights, x_test, y_test)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=12000)
    p.add_argument("--test-rows", type=int, default=2000)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--R", type=int, default=9)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--schedule", choices=("madlib", "li"), default="madlib",
                   help="Hyperband's bracket sizes (docs/benchmarks.md measured 'li')")  # fmt: skip
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each method (medians)")
    p.add_argument("--part", choices=("speed", "search", "both"), default="both")
    args = p.parse_args()
    print(f"# Model selection, {machine()}")
    x, y, source = fashion_or_generated(args.rows + args.test_rows)
    print(f"data: {source}, {args.rows} training rows, {args.test_rows} test rows")
    db = dasktrain.connect()
    loaders.write_arrays(db, TRAIN, x[: args.rows], y[: args.rows], segments=args.segments, if_exists="replace")
    loaders.write_arrays(db, TEST, x[args.rows :], y[args.rows :], segments=args.segments, if_exists="replace")
    x_test, y_test = x[args.rows :], y[args.rows :]
    configs = dasktrain.model_configs(architectures(), compile=SPACE, fit=FIT)
    with dasktrain.cluster(n_workers=args.workers) as cluster, Client(cluster) as client:
        client.run(count_segment_bytes)
        if args.part in ("speed", "both"):
            speed(client, db, configs, args, x_test, y_test)
        if args.part in ("search", "both"):
            search(client, db, configs, args, x_test, y_test)


if __name__ == "__main__":
    main()
