"""k8s/: the manifests checked against the Dask operator's CRDs and Kubernetes' schemas, the image's
Dockerfile linted, and the manifests' own commands run as local processes against the embedded database.

No container runtime or Kubernetes API server runs here: docs/kubernetes.md says what was not run.
"""

import copy
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from psycopg2 import sql
from psycopg2.extensions import make_dsn

import dasktrain
import loaders

K8S = Path(__file__).resolve().parents[1] / "k8s"
KUBERNETES_VERSION = "1.33.0"  # the Kubernetes release the core kinds are validated against
DASK_KINDS = {"DaskCluster", "DaskJob", "DaskAutoscaler", "DaskWorkerGroup"}


def _documents(variant: str | None = None) -> list[tuple[str, dict]]:
    folders = ["common"] + ([variant] if variant else ["cpu", "gpu"])
    return [(str(path.relative_to(K8S)), doc) for folder in folders for path in sorted((K8S / folder).glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]  # fmt: skip


def _crd_schemas() -> dict[str, dict]:
    """Each Dask kind's openAPIV3Schema, from the CRDs inside the dask-kubernetes wheel."""
    package = Path(importlib.util.find_spec("dask_kubernetes").submodule_search_locations[0])
    crds = package / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
    schemas = {}
    for path in crds.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schemas[crd["spec"]["names"]["kind"]] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def _strict(schema):
    """The CRD's structural schema as JSON Schema that refuses unknown fields, as the API server prunes them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out = {k: v for k, v in out.items() if k != "type"} | {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _body(doc: dict) -> dict:
    """What a CRD's schema describes: everything but apiVersion, kind and metadata (the API server's own)."""
    return {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}


def _pods(kind: str, doc: dict) -> list[tuple[str, dict]]:
    """The pod specs inside a Dask resource, each wrapped as a Pod."""
    specs = {"DaskCluster": lambda s: {"scheduler": s["scheduler"], "worker": s["worker"]},
             "DaskJob": lambda s: {"job": s["job"], "scheduler": s["cluster"]["spec"]["scheduler"],
                                   "worker": s["cluster"]["spec"]["worker"]}}  # fmt: skip
    if kind not in specs:
        return []
    return [(role, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{doc['metadata']['name']}-{role}",
                                                                    **part.get("metadata", {})}, "spec": part["spec"]})
            for role, part in specs[kind](doc["spec"]).items()]  # fmt: skip


def _containers(doc: dict) -> list[dict]:
    if doc["kind"] in DASK_KINDS:
        return [c for _, pod in _pods(doc["kind"], doc) for c in pod["spec"]["containers"]]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return []


# -- offline validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_dask_resources_validate_strictly_against_the_operators_crds(variant):
    schemas = _crd_schemas()
    kinds = [doc["kind"] for _, doc in _documents(variant) if doc["kind"] in DASK_KINDS]
    assert sorted(kinds) == ["DaskAutoscaler", "DaskCluster", "DaskJob"]
    for where, doc in _documents(variant):
        if doc["kind"] in DASK_KINDS:
            assert doc["apiVersion"] == "kubernetes.dask.org/v1", where
            jsonschema.validate(_body(doc), schemas[doc["kind"]])


def test_the_strict_crd_check_refuses_unquoted_quantities_and_unknown_fields():
    schemas = _crd_schemas()
    cluster = dict(_documents("gpu"))["gpu/daskcluster.yaml"]
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    unquoted = copy.deepcopy(cluster)
    unquoted["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 1
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        jsonschema.validate(_body(unquoted), schemas["DaskCluster"])
    typo = copy.deepcopy(cluster)
    typo["spec"]["worker"]["replica"] = 3
    with pytest.raises(jsonschema.ValidationError, match="'replica' was unexpected"):
        jsonschema.validate(_body(typo), schemas["DaskCluster"])


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_core_kinds_and_the_pods_inside_dask_resources_validate_with_kubernetes_validate(variant):
    checked = []
    for where, doc in _documents(variant):
        if doc["kind"] in DASK_KINDS:
            for role, pod in _pods(doc["kind"], doc):
                kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
                checked.append(f"{where}:{role}")
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            checked.append(where)
    assert {"common/cronjob-score.yaml", "common/secret.yaml", "common/configmap.yaml",
            "common/serviceaccount.yaml", f"{variant}/daskjob-fit.yaml:job"} <= set(checked)  # fmt: skip
    bad = copy.deepcopy(dict(_documents(variant))["common/cronjob-score.yaml"])
    bad["spec"]["concurrency"] = "Forbid"  # a misspelt field: strict validation refuses unknown fields
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_every_container_is_bounded_probed_and_keeps_the_dsn_in_the_secret(variant):
    docs = _documents(variant)
    secret = next(doc for _, doc in docs if doc["kind"] == "Secret")
    dsn = secret["stringData"]["DASKTRAIN_DSN"]
    for where, doc in docs:
        text = yaml.safe_dump(doc)
        if doc["kind"] != "Secret":
            assert "password" not in text and dsn not in text, f"{where} holds the DSN"
        for container in _containers(doc):
            name = f"{where}:{container['name']}"
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][part]), name
                assert all(isinstance(v, str) for v in container["resources"][part].values()), name
            assert "--dsn" not in container.get("command", []) + container.get("args", []), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            dsn_env = [e for e in container.get("env", []) if e["name"] == "DASKTRAIN_DSN"]
            assert all("secretKeyRef" in e["valueFrom"] for e in dsn_env), name
            if container["name"] in ("scheduler", "worker"):
                assert container["readinessProbe"]["httpGet"]["path"] == "/health", name
                assert container["livenessProbe"]["httpGet"]["path"] == "/health", name
                assert dsn_env or container["name"] == "scheduler", name
            else:
                assert dsn_env, f"{name} cannot reach the database"
    account = next(doc for _, doc in docs if doc["kind"] == "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert not [doc for _, doc in docs if doc["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    cron = next(doc for _, doc in docs if doc["kind"] == "CronJob")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid" and cron["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    assert cron["jobTemplate"]["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]


def test_gpu_workers_run_dask_cuda_with_one_gpu_and_the_memory_policy():
    cluster = dict(_documents("gpu"))["gpu/daskcluster.yaml"]
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert worker["command"] == ["dask", "cuda", "worker"]
    assert "dasktrain.gpu_worker" in worker["args"] and "GPU=1" in worker["args"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == worker["resources"]["requests"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert float(env["DASKTRAIN_GPU_MEMORY_FRACTION"]) == 0.9
    cpu = dict(_documents("cpu"))["cpu/daskcluster.yaml"]["spec"]["worker"]["spec"]["containers"][0]
    assert cpu["command"] == ["dask", "worker"] and "nvidia.com/gpu" not in cpu["resources"]["limits"]


# -- the image --------------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, str(K8S / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_as_a_user_under_tini_from_a_pinned_base_without_compilers():
    text = (K8S / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base  # a full version, never "latest"
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "--"\]$', final, re.M)
    assert re.search(r"^ARG TINI_VERSION=\d[\w.\-]*$", final, re.M) and "tini=${TINI_VERSION}" in final
    assert "HEALTHCHECK" in final
    for compiler in ("gcc", "build-essential", "g++", "clang"):
        assert compiler not in text
    pinned = [line for line in (K8S / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert pinned and all(re.fullmatch(r"[\w.\-\[\]]+==[\w.+\-]+", line) for line in pinned)
    names = {line.split("==")[0].lower() for line in pinned}
    assert {"dask", "distributed", "keras", "tensorflow", "psycopg2-binary"} <= names


def test_the_health_check_answers_for_a_dask_server(client):
    from dasktrain.runtime._health import healthy

    port = client.scheduler_info()["services"]["dashboard"]
    assert healthy(port) and not healthy(_free_port())


# -- the manifests' commands, run as local processes ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Pods:
    """Start containers of the manifests as local processes: their command and args, their environment
    (Secret and ConfigMap contents resolved, the ConfigMap mounted as files in a temp dir), and what
    the operator injects (DASK_SCHEDULER_ADDRESS, DASK_WORKER_NAME; for the CronJob, the local scheduler
    in place of the scheduler Service's name). Only ports are changed: pods each have their own
    network, local processes share one."""

    def __init__(self, tmp_path: Path, dsn: str):
        docs = dict(_documents("cpu"))
        self.configmap = docs["common/configmap.yaml"]["data"]
        self.secret = {**docs["common/secret.yaml"]["stringData"], "DASKTRAIN_DSN": dsn}
        self.config = tmp_path / "config"
        self.config.mkdir()
        for name, text in self.configmap.items():
            (self.config / name).write_text(text)
        self.tmp = tmp_path
        self.processes = []

    def start(self, container: dict, extra_env: dict, ports: dict[str, int], wait: bool = False):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "DASKTRAIN_"))}
        env.update({"HOME": str(self.tmp), "MPLCONFIGDIR": str(self.tmp / "mpl"), "KERAS_HOME": str(self.tmp / "k")})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "dasktrain-database"
                env[item["name"]] = self.secret[ref["key"]]
        env.update(extra_env)
        words = [*container["command"], *container.get("args", [])]
        words = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], w) for w in words]  # Kubernetes' $(VAR)
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        assert "/config" not in mounts or mounts["/config"]["readOnly"]
        words = [w.replace("/config/", f"{self.config}/") for w in words]
        words = [str(ports.get(w, w)) for w in words]
        executable = shutil.which(words[0], path=str(Path(sys.executable).parent))
        assert executable, f"{words[0]} is not installed"
        if wait:
            return subprocess.run([executable, *words[1:]], env=env, capture_output=True, text=True, timeout=600)
        process = subprocess.Popen([executable, *words[1:]], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.processes.append(process)
        return process

    def cluster(self, spec: dict) -> str:
        """Start the scheduler and two workers of a DaskCluster's spec; return the scheduler's address."""
        from dasktrain.runtime._health import healthy

        comm, dashboard = _free_port(), _free_port()
        scheduler = spec["scheduler"]["spec"]["containers"][0]
        probe = scheduler["readinessProbe"]["httpGet"]["port"]
        named = {p["name"]: p["containerPort"] for p in scheduler["ports"]}
        assert named[probe] == int(scheduler["args"][scheduler["args"].index("--dashboard-address") + 1][1:])
        self.start(scheduler, {}, {"8786": comm, ":8787": f":{dashboard}"})
        deadline = time.monotonic() + 120
        while not healthy(dashboard) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert healthy(dashboard), "the scheduler's /health never answered"
        address = f"tcp://127.0.0.1:{comm}"
        worker = spec["worker"]["spec"]["containers"][0]
        for k in range(2):
            self.start(worker, {"DASK_SCHEDULER_ADDRESS": address, "DASK_WORKER_NAME": f"worker-{k}"},
                       {":8788": f":{_free_port()}"})  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=180)
        return address

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []


@pytest.fixture
def k8s_schema(db):
    """A schema of the test database holding what the ConfigMap's job files name: digits and an architecture."""
    with db.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS k8s_demo CASCADE; CREATE SCHEMA k8s_demo")
    dsn = make_dsn(db.dsn, options="-csearch_path=k8s_demo")
    x, y = loaders.read_digits()
    scoped = dasktrain.connect(dsn)
    loaders.write_arrays(scoped, "digits", x[:1400], y[:1400], segments=2)
    loaders.write_arrays(scoped, "digits_test", x[1400:], y[1400:], segments=2)
    architecture = (Path(__file__).resolve().parents[1] / "examples" / "digits_cnn.json").read_text()
    assert dasktrain.load_architecture(scoped, "model_arch", architecture, name="digits_cnn") == 1
    yield scoped, dsn
    with db.cursor() as cur:
        cur.execute("DROP SCHEMA k8s_demo CASCADE")


@pytest.mark.slow
def test_the_manifests_commands_train_save_and_score(tmp_path, k8s_schema):
    scoped, dsn = k8s_schema
    docs = dict(_documents("cpu"))
    job = docs["cpu/daskjob-fit.yaml"]["spec"]
    pods = _Pods(tmp_path, dsn)
    try:
        address = pods.cluster(job["cluster"]["spec"])  # the DaskJob's own cluster
        done = pods.start(job["job"]["spec"]["containers"][0], {"DASK_SCHEDULER_ADDRESS": address}, {}, wait=True)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        pods.stop()
    fit = yaml.safe_load(pods.configmap["fit.yaml"])
    saved = dasktrain.list_models(scoped, fit["model_table"])
    assert [(m["name"], m["num_iterations"]) for m in saved] == [(fit["name"], fit["iterations"])]

    cron = docs["common/cronjob-score.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    try:
        address = pods.cluster(docs["cpu/daskcluster.yaml"]["spec"])  # the long-lived cluster
        done = pods.start(cron, {"DASK_SCHEDULER_ADDRESS": address}, {}, wait=True)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        pods.stop()
    score = yaml.safe_load(pods.configmap["score.yaml"])
    with scoped.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT count(*), count(DISTINCT id) FROM {}").format(sql.Identifier(score["output_table"]))
        )
        assert cur.fetchone() == (397 * score["pred_type"], 397)
