"""Faults and what they do: rows out, duplicates, and time against the same work uninterrupted.

    python benchmarks/faults.py [--rows 20000] [--iterations 6] [--repeats 2]

Each fault is injected for real, on a local cluster of 2 worker processes (1 thread each) and the
embedded PostgreSQL, and each faulted run is timed in turns with the same work uninterrupted
(medians of ``--repeats``):

- ``fit``: one of the two workers is killed by PID (SIGKILL) during iteration ``iterations // 2``;
- ``predict_table`` and ``evaluate``: a worker SIGKILLs itself just after finishing its first
  segment (``predict_table``'s segment is committed by then);
- a read whose backends are terminated (``pg_terminate_backend``) while they wait on a lock;
- a checkpoint during which the server is restarted (``pg_ctl restart -m fast``, a second
  embedded server);
- ``dasktrain predict`` killed with SIGKILL mid-job, then run again on the same output.

Fashion-MNIST's first ``--rows`` training images in 4 segments (generated images when Debian's
package is not installed), the seed's CNN, batch 128. Aim (issue 7): every fault ends with the same
rows as without it, and a fit that loses one worker of two finishes within 1.5x an uninterrupted fit.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import fashion_or_generated, machine  # noqa: E402
from distributed import Client  # noqa: E402

import dasktrain  # noqa: E402
import loaders  # noqa: E402
from dasktrain._demo import COMPILE, seed_cnn  # noqa: E402
from dasktrain.testing import KillWorkerOn, backends_waiting, kill_worker_running, wait_until  # noqa: E402

TRAIN, TEST, MODELS, SCORES = "bench_faults_train", "bench_faults_test", "bench_faults_models", "bench_faults_scores"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    db = dasktrain.connect()
    x, y, source = fashion_or_generated(args.rows + 5000)
    loaders.write_arrays(db, TRAIN, x[: args.rows], y[: args.rows], segments=4, if_exists="replace")
    loaders.write_arrays(db, TEST, x[args.rows :], y[args.rows :], segments=4, if_exists="replace")
    print(f"{machine()}; {args.rows:,} {source} images in 4 segments, 5,000 to score; 2 workers\n")
    rows = []
    with dasktrain.cluster(n_workers=2) as cluster, Client(cluster) as client:
        rows.append(fit_killed(db, client, args))
        rows.append(scoring_killed(db, client, args.repeats))
        rows.append(evaluate_killed(db, client, args.repeats))
        rows.append(read_terminated(db, client, args.rows))
        rows.append(client_killed(db, client))
    rows.append(checkpoint_restart(x[:5000], y[:5000], args))
    print("| fault | rows out (expected) | duplicates | time vs uninterrupted | notes |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _interleaved(plain, faulted, repeats: int) -> tuple[float, float, list]:
    """Time ``plain()`` and ``faulted()`` in turns after a warm-up; medians, and every faulted result."""
    plain()  # workers import TensorFlow and build the model once: not part of either time
    times = {"plain": [], "faulted": []}
    outcomes = []
    for _ in range(repeats):
        for name, run in (("plain", plain), ("faulted", faulted)):
            start = time.perf_counter()
            outcome = run()
            times[name].append(time.perf_counter() - start)
            if name == "faulted":
                outcomes.append(outcome)
    for name, values in times.items():
        print(f"  {name}: " + " ".join(f"{v:.1f}" for v in values) + " s")
    return statistics.median(times["plain"]), statistics.median(times["faulted"]), outcomes


def fit_killed(db, client, args) -> list[str]:
    print("fit, one worker of two killed mid-fit")
    model = seed_cnn((28, 28, 1), 10)
    start = model.get_weights()
    kill_at = max(1, args.iterations // 2)

    def train():
        return dasktrain.fit(
            TRAIN, model, x="x", y="y", db=db, client=client, compile=COMPILE, fit={"batch_size": 128},
            iterations=args.iterations, initial_weights=start, normalizing_const=255.0, validation=TEST,
            progress=False,
        )  # fmt: skip

    plain_results = []

    def plain():
        plain_results.append(train())

    def faulted():
        killer = threading.Thread(target=kill_worker_running, args=(client, f"train-replica-{kill_at}-"))
        killer.start()
        result = train()
        killer.join()
        return result

    plain_s, faulted_s, results = _interleaved(plain, faulted, args.repeats)
    merged = {h["rows"] for r in results for h in r.history}
    retries = sum(h["retries"] for r in results for h in r.history)
    accuracy = [r.metric("accuracy", "validation")[-1] for r in results]
    baseline = [r.metric("accuracy", "validation")[-1] for r in plain_results]
    return [
        f"`fit`: 1 of 2 workers killed (SIGKILL) in iteration {kill_at} of {args.iterations}",
        f"{'/'.join(map(str, sorted(merged)))} rows merged each round ({args.rows})",
        "0",
        _ratio(plain_s, faulted_s),
        f"{retries} round retries in {len(results)} runs; test accuracy {_mean(accuracy):.4f} vs "
        f"{_mean(baseline):.4f} uninterrupted",
    ]


def _ratio(plain_s: float, faulted_s: float) -> str:
    return f"{faulted_s / plain_s:.2f}x ({plain_s:.1f} s -> {faulted_s:.1f} s)"


def _mean(values) -> float:
    return float(np.mean(values))


def _counts(db, table) -> tuple[int, int]:
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*), count(*) - count(DISTINCT (id, rank)) FROM {table}")
        return cur.fetchone()


def _once_killer(client, prefix: str):
    marker = tempfile.mktemp(prefix="dasktrain-kill-")
    client.register_plugin(KillWorkerOn(prefix, state="memory", once_file=marker))
    return marker


def scoring_killed(db, client, repeats: int) -> list[str]:
    print("predict_table, a worker killed after committing its first segment")
    trained = dasktrain.fit(
        TRAIN, seed_cnn((28, 28, 1), 10), x="x", y="y", db=db, client=client, compile=COMPILE, iterations=1,
        fit={"batch_size": 128}, normalizing_const=255.0, progress=False,
    )  # fmt: skip
    dasktrain.save_model(db, MODELS, trained, name="cnn")
    written = []

    def score():
        return dasktrain.predict_table(
            db, MODELS, TEST, SCORES, name="cnn", replace=True, client=client, progress=False
        )

    def faulted():
        marker = _once_killer(client, "_score_and_write")
        written.append(score())
        client.unregister_worker_plugin(KillWorkerOn.name)
        return os.path.exists(marker), _counts(db, SCORES)

    plain_s, faulted_s, outcomes = _interleaved(score, faulted, repeats)
    return [
        "`predict_table`: a worker killed after committing its first segment",
        f"{', '.join(str(c[0]) for _, c in outcomes)} (5000); returned {', '.join(map(str, written))}",
        ", ".join(str(c[1]) for _, c in outcomes),
        _ratio(plain_s, faulted_s),
        f"a worker died in {sum(k for k, _ in outcomes)} of {len(outcomes)} runs",
    ]


def evaluate_killed(db, client, repeats: int) -> list[str]:
    print("evaluate, a worker killed after its first segment")
    expected = dasktrain.evaluate(db, MODELS, TEST, name="cnn", client=client)

    def faulted():
        _once_killer(client, "_evaluate_partition")
        result = dasktrain.evaluate(db, MODELS, TEST, name="cnn", client=client)
        client.unregister_worker_plugin(KillWorkerOn.name)
        return result

    plain_s, faulted_s, results = _interleaved(
        lambda: dasktrain.evaluate(db, MODELS, TEST, name="cnn", client=client), faulted, repeats
    )
    same = all(r["rows"] == expected["rows"] and abs(r["loss"] - expected["loss"]) < 1e-6 for r in results)
    return [
        "`evaluate`: a worker killed after its first segment",
        f"{', '.join(str(r['rows']) for r in results)} ({expected['rows']})",
        "0",
        _ratio(plain_s, faulted_s),
        "same loss and accuracy as uninterrupted" if same else "DIFFERENT loss or accuracy",
    ]


def read_terminated(db, client, expected: int) -> list[str]:
    print("read_table, both segment backends terminated while they wait on a lock")
    ddf = dasktrain.read_table(db, TRAIN)
    locker = db.connection()
    with locker.cursor() as cur:
        cur.execute(f"LOCK TABLE {TRAIN} IN ACCESS EXCLUSIVE MODE")
    future = client.compute(ddf)
    waiting = wait_until(lambda: len(p := backends_waiting(db, "COPY")) >= 2 and p)
    with db.cursor() as cur:
        for pid in waiting:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    locker.rollback()
    locker.close()
    frame = future.result()
    return [
        f"`read_table`: {len(waiting)} segment backends terminated (`pg_terminate_backend`)",
        f"{len(frame)} ({expected})",
        str(len(frame) - frame["id"].nunique()),
        "—",
        "each read retried once, on the read's shared snapshot",
    ]


def client_killed(db, client) -> list[str]:
    print("dasktrain predict killed with SIGKILL, then run again")
    command = [
        sys.executable, "-m", "dasktrain.cli", "predict", "--dsn", db.dsn, "--scheduler", client.scheduler.address,
        "--model-table", MODELS, "--name", "cnn", "--source", TEST, "--output", SCORES, "--replace",
        "--batch-size", "1", "--quiet",
    ]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = wait_until(lambda: _staging(db), timeout=300)
    job.send_signal(signal.SIGKILL)
    job.wait()
    written = dasktrain.predict_table(db, MODELS, TEST, SCORES, name="cnn", replace=True, client=client, progress=False)
    count, duplicates = _counts(db, SCORES)
    return [
        "`dasktrain predict` killed (SIGKILL) mid-job, then run again",
        f"{count} (5000); returned {written}",
        str(duplicates),
        "—",
        f"{len(left)} staging tables left by the killed job; {len(_staging(db))} after the next run",
    ]


def _staging(db) -> list[str]:
    with db.cursor() as cur:
        cur.execute(r"SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'dasktrain\_staging\_%'")
        return [r[0] for r in cur.fetchall()]


def checkpoint_restart(x, y, args) -> list[str]:
    print("fit with a checkpoint every iteration; the server restarted during the second")
    from pgserver._commands import pg_ctl

    from dasktrain.io._embedded import _servers, embedded_dsn

    folder = Path(tempfile.mkdtemp(prefix="dasktrain-bench-pg-")) / "pg"
    own = dasktrain.connect(embedded_dsn(folder, announce=False))
    server = _servers[folder.resolve()]
    loaders.write_arrays(own, "digits", x, y, segments=2)
    model = seed_cnn((28, 28, 1), 10)
    start = model.get_weights()
    times, outcomes = {"plain": [], "faulted": []}, []
    try:
        with dasktrain.cluster(n_workers=2) as cluster, Client(cluster) as client:
            for run in range(-1, args.repeats * 2):  # run -1 warms the workers up, untimed
                faulted = run >= 0 and run % 2 == 1
                table = f"ck{run + 1}"
                blip = threading.Thread(target=_restart_during_second_checkpoint, args=(own, table, server, pg_ctl))
                if faulted:
                    blip.start()
                began = time.perf_counter()
                dasktrain.fit(
                    "digits", model, x="x", y="y", db=own, client=client, compile=COMPILE, iterations=4,
                    initial_weights=start, normalizing_const=255.0, checkpoint=(own, table, "m"), progress=False,
                )  # fmt: skip
                if run >= 0:
                    times["faulted" if faulted else "plain"].append(time.perf_counter() - began)
                if faulted:
                    blip.join()
                    outcomes.append([m["version"] for m in dasktrain.list_models(own, table)])
    finally:
        pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=server.pgdata, user=server.system_user)
    return [
        "checkpoint: server restarted (`pg_ctl restart -m fast`) during the save",
        "4 iterations, checkpoints " + "; ".join(",".join(map(str, o)) for o in outcomes) + " kept (the last 2)",
        "0",
        _ratio(statistics.median(times["plain"]), statistics.median(times["faulted"])),
        "the save retried after the restart (5,000 rows, 2 segments)",
    ]


def _restart_during_second_checkpoint(db, table: str, server, pg_ctl) -> None:
    def saved() -> bool:
        try:
            return bool(dasktrain.list_models(db, table))
        except dasktrain.errors.DasktrainError:
            return False

    wait_until(saved, timeout=600)
    locker = db.connection()
    with locker.cursor() as cur:
        cur.execute(f"LOCK TABLE {table}_summary IN ACCESS EXCLUSIVE MODE")
    wait_until(lambda: backends_waiting(db, "LOCK TABLE"), timeout=600)
    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)


if __name__ == "__main__":
    main()
