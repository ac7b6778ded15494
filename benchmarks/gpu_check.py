"""GPU check: the whole path on one GPU, with k = 1, 2, 4, 8 workers sharing it, in one go.

Phases (each timed; a failure is recorded and the rest still run):
write the tables, a plain single-process Keras epoch on the GPU (the reference), then for each k a
cluster of k workers per GPU running ``fit`` (seconds per iteration, GPU utilisation, each
worker's peak memory against its limit, memory left allocated after the fit), and for k = 1 and
4 ``evaluate`` and ``predict_table`` (rows/s). Results go to ``OUT/gpu_check.json`` after every
phase, so a run cut short still reports what it did. Results: docs/gpu.md.

Run on a GPU machine (Keras on PyTorch)::

    KERAS_BACKEND=torch python benchmarks/gpu_check.py --data-dir DIR --out OUT

Rehearse on a CPU (k CPU workers stand in for k workers per GPU; small sizes)::

    python benchmarks/gpu_check.py --rows 3000 --ks 1,2 --iterations 3 --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

COMPILE = "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"


class Report:
    """Phase timings, results and errors, written to JSON after every phase."""

    def __init__(self, out: Path):
        self.path = out / "gpu_check.json"
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict = {"machine": machine(), "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
                           "phases": {}, "errors": {}, "fit": {}, "scoring": {}}  # fmt: skip

    @contextlib.contextmanager
    def phase(self, name: str):
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            yield
        except Exception as error:  # recorded, and the next phase runs
            self.data["errors"][name] = "".join(traceback.format_exception(error))[-4000:]
            print(f"   FAILED: {type(error).__name__}: {error}", flush=True)
        finally:
            self.data["phases"][name] = round(time.perf_counter() - start, 2)
            self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str))


class Utilisation:
    """GPU utilisation and memory sampled by ``nvidia-smi`` every 200 ms while a phase runs."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.process = None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                     "-i", "0", "-lms", "200"]  # fmt: skip
            self.process = subprocess.Popen(query, stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                used, memory = (float(v) for v in line.split(","))
                self.samples.append((used, memory))

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            self.process.wait()

    def summary(self) -> dict:
        if not self.samples:
            return {"utilisation_percent": None, "memory_used_mib_max": None}
        busy = [u for u, _ in self.samples]
        return {"utilisation_percent": round(statistics.mean(busy), 1),
                "memory_used_mib_max": max(m for _, m in self.samples)}  # fmt: skip


def plain_epoch(x, y, batch_size: int, epochs: int = 2) -> float:
    """Seconds of one warm epoch of the same model in this process (Keras ``fit``, no Dask)."""
    import keras

    from dasktrain._demo import seed_cnn

    model = seed_cnn(x.shape[1:] + (1,), 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    inputs = (x.astype("float32") / 255.0)[..., None]
    model.fit(inputs, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[Clock()], shuffle=True)
    print(f"   epochs: {', '.join(f'{t:.2f} s' for t in times)}")
    return min(times[1:] or times)


def fit_on(client, args, k: int, report: Report, plain_rows_per_s: float | None) -> None:
    import dasktrain
    from dasktrain._demo import seed_cnn
    from dasktrain.runtime import _gpu_memory

    model = seed_cnn((28, 28, 1), 10)
    with Utilisation() as gpu:
        result = dasktrain.fit(
            "gpu_check_train", model, x="x", y="y", compile=COMPILE, fit=f"batch_size={args.batch_size}",
            iterations=args.iterations, normalizing_const=255.0, client=client, progress=False,
        )  # fmt: skip
    elapsed = [h["elapsed"] for h in result.history]
    per_iteration = statistics.median(b - a for a, b in zip(elapsed, elapsed[1:], strict=False))  # warm rounds
    config = dasktrain.gpu_configuration(client)
    memory = client.run(_gpu_memory.allocated_mib)
    limits = dict(zip(config["worker"], config["memory_limit_mib"], strict=True))
    workers = {w: {**m, "limit_mib": limits.get(w)} for w, m in memory.items()}
    over = [w for w, m in workers.items() if m.get("peak_mib") and m["limit_mib"] and m["peak_mib"] > m["limit_mib"]]
    plain = report.data.get("plain_epoch_seconds")
    entry = {
        "workers": len(config),
        "seconds_per_iteration": round(per_iteration, 3),
        "first_iteration_seconds": round(elapsed[0], 2),
        "rows_per_second": round(result.num_rows / per_iteration),
        "vs_plain_epoch_time": round(per_iteration / plain, 3) if plain else None,
        "throughput_vs_plain": round(result.num_rows / per_iteration / plain_rows_per_s, 3) if plain else None,
        "accuracy_last_round": result.history[-1]["training"].get("accuracy"),
        **gpu.summary(),
        "workers_memory": workers,
        "workers_over_limit": over,
        "devices": result.devices,
    }  # fmt: skip
    report.data["fit"][str(k)] = entry
    print(f"   k={k}: {per_iteration:.2f} s/iteration, {entry['rows_per_second']} rows/s, "
          f"x{entry['throughput_vs_plain']} plain, GPU {entry['utilisation_percent']}%", flush=True)  # fmt: skip


def score_on(client, args, k: int, report: Report, test_rows: int) -> None:
    import dasktrain
    from dasktrain._demo import seed_cnn

    model = dasktrain.fit("gpu_check_train", seed_cnn((28, 28, 1), 10), x="x", y="y", compile=COMPILE, iterations=1,
                          normalizing_const=255.0, client=client, progress=False)  # fmt: skip
    dasktrain.save_model(None, "gpu_check_models", model, name=f"k{k}")
    start = time.perf_counter()
    scores = dasktrain.evaluate(None, "gpu_check_models", "gpu_check_test", name=f"k{k}", client=client)
    evaluated = time.perf_counter() - start
    start = time.perf_counter()
    rows = dasktrain.predict_table(None, "gpu_check_models", "gpu_check_test", "gpu_check_scores", name=f"k{k}",
                                   replace=True, client=client, progress=False)  # fmt: skip
    predicted = time.perf_counter() - start
    report.data["scoring"][str(k)] = {
        "evaluate_rows_per_second": round(test_rows / evaluated),
        "evaluate_accuracy": scores.get("accuracy"),
        "predict_rows_per_second": round(rows / predicted),
        "predict_rows": rows,
    }
    print(f"   k={k}: evaluate {test_rows / evaluated:,.0f} rows/s, predict_table {rows / predicted:,.0f} rows/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="Fashion-MNIST IDX files (default: Debian's package)")
    parser.add_argument("--out", default="gpu_check_out", help="folder for gpu_check.json")
    parser.add_argument("--rows", type=int, default=60000, help="training rows (default: all 60,000)")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--ks", default="1,2,4,8", help="workers per GPU to try (default: 1,2,4,8)")
    parser.add_argument("--score-ks", default="1,4", help="of those, where evaluate and predict_table run")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    report = Report(Path(args.out))
    ks = [int(k) for k in args.ks.split(",")]

    import dasktrain
    import loaders
    from dasktrain._demo import demo_data
    from dasktrain.runtime._gpu import query_gpus, visible_gpus

    gpus = visible_gpus()
    report.data.update(gpus=query_gpus(), rows=args.rows, segments=args.segments, batch_size=args.batch_size,
                       iterations=args.iterations, rehearsal=not gpus)  # fmt: skip
    print(f"GPUs: {report.data['gpus'] or 'none: a CPU rehearsal (k CPU workers stand for k per GPU)'}")
    with report.phase("write"):
        _, (x, y), (x_test, y_test), _ = demo_data(directory=args.data_dir)
        x, y = x[: args.rows], y[: args.rows]
        test_rows = min(len(x_test), max(args.rows // 6, 1000))
        db = dasktrain.connect()
        loaders.write_arrays(db, "gpu_check_train", x, y, segments=args.segments, if_exists="replace", progress=False)
        loaders.write_arrays(db, "gpu_check_test", x_test[:test_rows], y_test[:test_rows], segments=args.segments,
                             if_exists="replace", progress=False)  # fmt: skip
    plain_rows_per_s = None
    with report.phase("plain epoch"):
        seconds = plain_epoch(x, y, args.batch_size)
        report.data["plain_epoch_seconds"] = round(seconds, 3)
        plain_rows_per_s = len(x) / seconds
        with contextlib.suppress(Exception):
            import torch

            torch.cuda.empty_cache()  # leave the GPU to the workers
    from distributed import Client

    for k in ks:
        with report.phase(f"fit k={k}"):
            shape = {"workers_per_gpu": k, "gpus": 1} if gpus else {"n_workers": k}
            with dasktrain.cluster(**shape) as cluster, Client(cluster) as client:
                report.data["phases"][f"cluster k={k} started"] = True
                fit_on(client, args, k, report, plain_rows_per_s)
                if k in [int(s) for s in args.score_ks.split(",")]:
                    score_on(client, args, k, report, test_rows)
    curve = {k: e for k, e in report.data["fit"].items() if e.get("throughput_vs_plain")}
    fitting = {k: e for k, e in curve.items() if not e["workers_over_limit"]}
    if fitting:
        report.data["default_workers_per_gpu"] = int(max(fitting, key=lambda k: fitting[k]["throughput_vs_plain"]))
    report.save()
    print("\n| workers per GPU | s/iteration | vs plain epoch | throughput vs plain | GPU util % | peak MiB / limit |")
    print("|---|---|---|---|---|---|")
    for k, e in report.data["fit"].items():
        peaks = [m.get("peak_mib") for m in e["workers_memory"].values() if m.get("peak_mib") is not None]
        limit = next((m["limit_mib"] for m in e["workers_memory"].values() if m.get("limit_mib")), None)
        memory = f"{max(peaks):.0f} / {limit}" if peaks else "n/a"
        print(f"| {k} | {e['seconds_per_iteration']} | {e['vs_plain_epoch_time']} | {e['throughput_vs_plain']} | "
              f"{e['utilisation_percent']} | {memory} |")  # fmt: skip
    print(f"errors: {list(report.data['errors']) or 'none'}; default k: {report.data.get('default_workers_per_gpu')}")
    return 1 if report.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
