"""Helpers shared by the benchmark scripts: repeated timing with medians, and a results table."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Run ``run`` once to warm up, then ``repeats`` times; return the median wall time."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Warm each up once, then time them in turns (a, b, a, b, ...) so drift hits all alike; medians."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"  {name}: " + " ".join(f"{v:.2f}" for v in values) + " s")
    return {name: statistics.median(values) for name, values in times.items()}


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def fashion_or_generated(n: int = 60000) -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST's training images if Debian's package is installed, else random 28×28 uint8."""
    from loaders.idx import FASHION_MNIST_DIR, find_split, read_images_and_labels

    try:
        x, y = read_images_and_labels(*find_split(FASHION_MNIST_DIR, "train"))
        return x[:n], y[:n], "Fashion-MNIST train"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8), "generated"


def load_demo_split(db, prefix: str, segments: int):
    """The demo's data (Fashion-MNIST, else digits) written to ``<prefix>_train`` and ``<prefix>_test``.

    Returns ``(name, (x, y), (x_test, y_test), normalizing_const)`` as ``dasktrain._demo.demo_data`` does.
    """
    import loaders
    from dasktrain._demo import demo_data

    name, (x, y), (x_test, y_test), norm = demo_data()
    loaders.write_arrays(db, f"{prefix}_train", x, y, segments=segments, if_exists="replace")
    loaders.write_arrays(db, f"{prefix}_test", x_test, y_test, segments=segments, if_exists="replace")
    return name, (x, y), (x_test, y_test), norm


def print_table(rows: int, results: dict[str, float], megabytes: float | None = None) -> None:
    """A markdown table of methods with seconds, rows/s and, given the data size, MB/s."""
    mb = f" {'MB/s':>8} |" if megabytes else ""
    print(f"| {'method':<40} | {'seconds':>8} |{mb} {'rows/s':>10} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10 + '|' if megabytes else ''}{'-' * 12}|")
    for name, seconds in results.items():
        mb = f" {megabytes / seconds:8.1f} |" if megabytes else ""
        print(f"| {name:<40} | {seconds:8.3f} |{mb} {rows / seconds:10,.0f} |")


def plot_accuracy(series: dict[str, tuple], xlabel: str, path, hlines=(), ylim=None) -> None:
    """Test accuracy curves, ``{label: (xs, accuracies)}``; single-process runs in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    singles = 0
    for label, (xs, ys) in series.items():
        style = "-o"
        if label.startswith(("single", "one process")):
            style, singles = ("k-o", "k--o")[singles % 2], singles + 1
        ax.plot(xs, ys, style, label=label, markersize=3)
    for y in hlines:
        ax.axhline(y, color="grey", lw=0.5, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
