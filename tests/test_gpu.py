"""GPU workers, tested on a machine without GPUs: the cluster's shape, the memory policy, placement.

What needs a GPU (the policy's effect inside each backend, the timings) is run by
``benchmarks/gpu_check.py`` on a GPU machine; see docs/gpu.md.
"""

import copy
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
from distributed import Client, LocalCluster
from helpers import COMPILE, mlp

import dasktrain
from dasktrain.cli import main
from dasktrain.errors import GPUError
from dasktrain.runtime import _gpu_memory
from dasktrain.runtime._cluster import gpu_cluster
from dasktrain.runtime._gpu import MemoryPolicy, resolve_gpus, visible_gpus, worker_devices
from dasktrain.runtime._guard import cluster_workers
from dasktrain.testing import table_exists

no_gpu_here = pytest.mark.skipif(bool(visible_gpus()), reason="this machine has GPUs")


# -- the policy's numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("k, share", [(1, 0.9), (2, 0.45), (3, 0.3), (4, 0.225), (8, 0.1125)])
def test_each_worker_takes_its_share_of_the_fraction(k, share):
    policy = MemoryPolicy(memory_fraction=0.9, workers_per_gpu=k)
    assert policy.per_worker == pytest.approx(share)
    env = policy.environment()
    assert float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(share)
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
    assert MemoryPolicy.from_environment(env) == policy


@pytest.mark.parametrize(
    "fraction, k, problem",
    [(0, 1, "memory_fraction"), (1.5, 1, "memory_fraction"), (0.9, 0, "workers_per_gpu"), (0.9, 1.5, "integer")],
)
def test_a_policy_that_cannot_be_is_refused(fraction, k, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        MemoryPolicy(fraction, k)


def test_each_worker_sees_its_own_gpu_first_and_k_workers_share_one():
    assert worker_devices(["0", "1"], 1) == ["0,1", "1,0"]
    assert worker_devices(["3"], 4) == ["3"] * 4
    assert worker_devices(["0", "1", "2"], 2) == ["0,1,2", "0,1,2", "1,2,0", "1,2,0", "2,0,1", "2,0,1"]


def test_gpus_asked_for_are_found_or_refused():
    assert resolve_gpus("auto", {"CUDA_VISIBLE_DEVICES": "0,1"}) == ["0", "1"]
    assert resolve_gpus(None, {"CUDA_VISIBLE_DEVICES": "0,1"}) == []
    assert resolve_gpus("auto", {"CUDA_VISIBLE_DEVICES": "-1"}) == []
    with pytest.raises(ValueError, match=r"gpus=3 asked for, but this machine shows only 2 \(0, 1\)"):
        resolve_gpus(3, {"CUDA_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(ValueError, match="gpus must be"):
        resolve_gpus("all", {"CUDA_VISIBLE_DEVICES": "0"})


# -- clusters ----------------------------------------------------------------------------------------


@no_gpu_here
def test_without_gpus_the_cluster_is_the_cpu_one(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with dasktrain.cluster(threads_per_worker=2) as auto, Client(auto) as client:
        assert isinstance(auto, LocalCluster) and type(auto).__name__ == "LocalCluster"
        workers = cluster_workers(client).values()
        assert len(workers) == max(1, os.cpu_count() // 2)
        assert all(not w["resources"] for w in workers)
        assert set(client.run(os.getenv, "CUDA_VISIBLE_DEVICES").values()) == {""}  # CPU workers see no GPU
        table = dasktrain.gpu_configuration(client)
        assert set(table["device"]) == {"cpu"} and set(table["workers_on_device"]) == {1}
        assert len(table) == len(workers)
        printed = str(table).splitlines()  # whole, however narrow pandas thinks the terminal is
        assert printed[0].split() == ["host", "worker", "device", "memory_mib", "memory_limit_mib", "backend",
                                      "workers_on_device"]  # fmt: skip
        assert len(printed) == 1 + len(workers) and "..." not in str(table)
    with pytest.raises(ValueError, match="gpus=1 asked for, but this machine shows none"):
        dasktrain.cluster(gpus=1)
    with pytest.raises(ValueError, match="give one of them"):
        dasktrain.cluster(n_workers=2, gpus=1)


def _environment():
    names = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_MEM_FRACTION", "DASKTRAIN_GPU_MEMORY_FRACTION")
    return {name: os.environ.get(name) for name in names}


def test_k_workers_share_each_gpu_with_its_share_in_their_environment():
    """The cluster's shape, on GPUs that are only names here (the policy is not applied)."""
    with gpu_cluster(["0", "1"], MemoryPolicy(0.8, 2), preload=False) as shared, Client(shared) as client:
        seen = client.run(_environment)
        assert sorted(s["CUDA_VISIBLE_DEVICES"] for s in seen.values()) == ["0,1", "0,1", "1,0", "1,0"]
        assert {s["XLA_PYTHON_CLIENT_MEM_FRACTION"] for s in seen.values()} == {"0.4"}
        assert {s["DASKTRAIN_GPU_MEMORY_FRACTION"] for s in seen.values()} == {"0.4"}
        resources = [w["resources"] for w in cluster_workers(client).values()]
        assert resources == [{"GPU": 1}] * 4
        # Started without the preload, the workers never took their share: GPU work is refused, saying so.
        with pytest.raises(GPUError, match="without --preload dasktrain.gpu_worker"):
            dasktrain.runtime._placement.resolve_use_gpus(client, None, "fit")


@no_gpu_here
def test_a_worker_that_cannot_take_its_share_stops_the_cluster_saying_why():
    with pytest.raises(GPUError, match=r"could not take their share(.|\n)*nvidia-smi cannot describe GPU '0'"):
        gpu_cluster(["0"], MemoryPolicy(0.9, 1))


# -- the policy inside each installed backend, in a fresh process --------------------------------------

_APPLY = textwrap.dedent(
    """
    import sys
    from dasktrain.runtime import _gpu_memory
    from dasktrain.runtime._gpu import MemoryPolicy
    from dasktrain.errors import GPUError
    backend = sys.argv[1]
    try:
        getattr(_gpu_memory, "_" + backend)(MemoryPolicy(0.5, 2), 1000, {})
    except GPUError as error:
        print("GPUError:", error)
    else:
        print("applied")
    print("started:", backend in sys.modules)
    """
)


@pytest.mark.parametrize("backend, module", [("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax")])
def test_each_backend_reports_what_the_policy_found(backend, module):
    pytest.importorskip(module)
    env = {**os.environ, "KERAS_BACKEND": backend}
    run = subprocess.run([sys.executable, "-c", _APPLY, backend], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    if visible_gpus():
        assert "applied" in run.stdout
    else:  # a CPU build: the policy must say there is no GPU to limit, naming the backend
        assert "GPUError" in run.stdout
        name = {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX"}[backend]
        assert name in run.stdout


def test_jax_gets_its_share_from_the_environment_before_it_starts():
    """JAX reads XLA_PYTHON_CLIENT_MEM_FRACTION once, when it starts: the preload sets it first."""
    code = textwrap.dedent(
        """
        import os, sys
        from dasktrain.runtime import _gpu_memory
        from dasktrain.runtime._gpu import MemoryPolicy
        try:
            _gpu_memory._jax(MemoryPolicy(0.6, 3), 1000, {})
        except Exception as error:
            print(type(error).__name__)
        print(os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"], os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.stdout.split()[-2:] == ["0.2", "true"], run.stdout + run.stderr


# -- placement -----------------------------------------------------------------------------------------


def test_gpu_work_on_a_cluster_without_gpus_is_refused_before_any_work(db, client, digits, trained, table_name):
    with pytest.raises(GPUError, match="use_gpus=True, but none of the cluster's 2 workers advertises a GPU"):
        dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE,
                      iterations=1, use_gpus=True, progress=False)  # fmt: skip
    with pytest.raises(GPUError, match="advertises a GPU"):
        dasktrain.predict_table(db, "scoring_models", "fit_digits_test", table_name, client=client, use_gpus=True)
    assert not table_exists(db, table_name)
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'dasktrain_staging%%'")
        assert cur.fetchone()[0] == 0
    with pytest.raises(GPUError, match="advertises a GPU"):
        dasktrain.evaluate(db, "scoring_models", "fit_digits_test", output_table=table_name, client=client,
                           use_gpus=True)  # fmt: skip
    assert not table_exists(db, table_name)
    with pytest.raises(TypeError, match="use_gpus"):
        dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE,
                      iterations=1, use_gpus="yes", progress=False)  # fmt: skip


def _pretend_policy_applied(dask_worker=None):
    """What dasktrain.gpu_worker records on a real GPU worker (this machine has none to apply it to)."""
    _gpu_memory._outcome.update(applied={"device": "pretend", "memory_mib": 0, "limit_mib": 0, "backend": "-"})


@pytest.mark.slow
def test_gpu_work_runs_only_on_gpu_workers(db, digits, trained, table_name):
    """A cluster of one worker advertising a GPU and one without: every segment trains and scores on the first."""
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as mixed,
        Client(mixed) as client,
    ):
        gpu_spec = copy.deepcopy(mixed.new_spec)
        gpu_spec["options"]["resources"] = {"GPU": 1}
        mixed.worker_spec["pretend-gpu"] = gpu_spec
        mixed.sync(mixed._correct_state)
        client.wait_for_workers(2)
        gpu_worker = dasktrain.runtime._placement.gpu_workers(client)
        assert len(gpu_worker) == 1
        client.run(_pretend_policy_applied, workers=gpu_worker)
        result = dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE,
                               iterations=2, normalizing_const=16.0, progress=False)  # fmt: skip
        assert [d["workers"] for d in result.devices] == [1]  # both segments, on the one GPU worker
        rows = dasktrain.predict_table(db, "scoring_models", "fit_digits_test", table_name, client=client,
                                       progress=False)  # fmt: skip
        assert rows == 397
        cpu_only = dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE,
                                 iterations=1, normalizing_const=16.0, progress=False, use_gpus=False)  # fmt: skip
        assert sum(d["workers"] for d in cpu_only.devices) == 2  # anywhere: Dask spread the two segments


def test_the_summary_row_says_what_the_model_trained_on(db, trained):
    devices = dasktrain.model_summary(db, "scoring_models", "digits_mlp")["devices"]
    assert devices and {d["device"] for d in devices} == {"cpu"}
    assert sum(d["workers"] for d in devices) == 2


def test_a_summary_table_from_before_gains_the_devices_column(db, trained, table_name):
    dasktrain.save_model(db, table_name, trained, name="m")
    with db.cursor() as cur:
        cur.execute(f"ALTER TABLE {table_name}_summary DROP COLUMN devices")
    dasktrain.save_model(db, table_name, trained, name="m")
    assert dasktrain.model_summary(db, table_name, "m", 2)["devices"] == trained.devices
    assert dasktrain.model_summary(db, table_name, "m", 1)["devices"] is None


# -- the command line ----------------------------------------------------------------------------------


def test_cli_gpu_flags_are_checked(db, capsys):
    assert main(["predict", "--dsn", db.dsn, "--scheduler", "tcp://127.0.0.1:1", "--gpus", "1", "--model-table", "m",
                 "--source", "s", "--output", "o"]) == 2  # fmt: skip
    assert "dask cuda worker" in capsys.readouterr().err
    assert main(["demo", "--gpus", "many"]) == 2
    assert "--gpus takes 'auto' or a number of GPUs, not 'many'" in capsys.readouterr().err


def test_the_cpu_install_brings_no_cuda_libraries():
    import importlib.metadata as metadata
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    cuda_words = ("cuda", "nvidia", "torch")
    assert not [d for d in project["dependencies"] + project["optional-dependencies"]["dev"]
                if any(w in d for w in cuda_words)]  # fmt: skip
    assert "tensorflow[and-cuda]" in " ".join(project["optional-dependencies"]["gpu-tensorflow"])
    if importlib.util.find_spec("dask_cuda") is None:  # this environment is the CPU install
        installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
        assert not [name for name in installed if name.startswith(("nvidia-", "cuda-"))]
