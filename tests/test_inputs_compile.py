"""The last raw errors (issue 22, item 11): bad compile parameters, too-deep JSON, a table never ANALYZEd.

Each is refused, or judged, on the client before any work: no round runs, nothing is written.
"""

import logging

import pytest
from helpers import mlp

import dasktrain
from dasktrain import cli
from dasktrain.errors import DataError
from dasktrain.io._read import plan_reads
from dasktrain.train._cache import choose_cache, unknown_size_hint

NOWHERE = "postgresql://nobody@127.0.0.1:1/none"
BAD_COMPILE = [
    ({"loss": "nosuchloss"}, "Unknown loss 'nosuchloss' in compile="),
    ({"loss": {"module": "os", "class_name": "system", "config": {"command": "true"}}}, "Unknown loss {'class_name"),
    ({"loss": "mse", "metrics": [{"class_name": "__lambda__", "config": {"code": "x"}}]}, "Unknown metric {'class"),
    ({"loss": "mse", "metrics": ["accuracy", "sparse_categorical_acuracy"]}, "did you mean 'sparse_categorical_acc"),
    ({"loss": "mse", "weighted_metrics": [["nosuch"]]}, "Unknown metric 'nosuch'"),
]


@pytest.mark.parametrize("compile, message", BAD_COMPILE)
def test_fit_resolves_losses_and_metrics_before_any_work(db, digits, compile, message):
    # The tables are checked first (a second, without Keras), then the compile parameters, before any cluster.
    not_a_client = object()  # any use of a cluster would fail with AttributeError, not DataError
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("{", r"\{")):
        dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", compile=compile, iterations=1, db=db,
                      client=not_a_client)  # fmt: skip


def test_aliases_keras_resolves_from_the_labels_pass():
    from dasktrain._keras_config import check_compile

    check_compile({"loss": "CE", "metrics": ["acc", "accuracy", ["mae"]], "weighted_metrics": None})
    check_compile({"loss": {"out_a": "mse", "out_b": None}, "metrics": {"out_a": ["mae"]}})
    check_compile({"loss": {"class_name": "MeanSquaredError", "config": {}}})


def test_a_search_and_groups_resolve_them_too(db, digits):
    not_a_client = object()
    with pytest.raises(DataError, match="Unknown loss 'nosuchloss'"):
        configs = dasktrain.model_configs(mlp(), compile={"loss": "nosuchloss"})
        dasktrain.fit_multiple("fit_digits_train", configs, x="x", y="y", iterations=1, db=db, client=not_a_client)
    with pytest.raises(DataError, match="Unknown metric 'nosuch'"):
        dasktrain.hyperband("fit_digits_train", mlp(), compile={"loss": "mse", "metrics": ["nosuch"]}, R=3, x="x",
                            y="y", validation="fit_digits_test", db=db, client=not_a_client)  # fmt: skip


def test_architectures_load_refuses_json_nested_too_deeply(capsys, tmp_path):
    spec = tmp_path / "deep.json"
    spec.write_text("[" * 100_000 + "]" * 100_000)
    argv = ["architectures", "load", "--dsn", NOWHERE, "--model-arch-table", "a", "--json", str(spec)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Invalid model JSON: nested more than 100 levels deep" in err and len(err) < 300, err
    with pytest.raises(DataError, match="nested more than 100 levels"):
        dasktrain.load_architecture(NOWHERE, "a", '{"class_name": "Sequential", "config": ' + "[" * 150 + "]" * 150
                                    + "}")  # fmt: skip


def test_a_table_never_analyzed_is_judged_by_its_size_on_disk(db, table_name, caplog):
    with db.cursor() as cur:  # no autovacuum: nothing ANALYZEs it behind the test's back
        cur.execute(
            f"CREATE TABLE {table_name} WITH (autovacuum_enabled = false) AS "
            f"SELECT g AS id, array_fill(g::real, ARRAY[256]) AS x, g % 10 AS y FROM generate_series(1, 2000) g"
        )
    reads = plan_reads(db, table_name, columns=["x", "y"])
    assert not any(segment.rows for segment in reads.segments)  # the catalog has no estimate
    tight = {"w1": {"memory_limit": 2 * 2**20, "metrics": {"memory": 0}}}  # 1.2 MiB of room; 2 MB of features
    roomy = {"w1": {"memory_limit": 2**30, "metrics": {"memory": 0}}}
    caplog.set_level(logging.INFO, logger="dasktrain")
    assert choose_cache("auto", reads, ["x"], tight) == "disk"
    assert "has no row estimate" in caplog.text and "run ANALYZE" in caplog.text
    assert choose_cache("auto", reads, ["x"], roomy) == "memory"
    hint = unknown_size_hint("memory", reads)
    assert "never ANALYZEd" in hint and f"run ANALYZE {table_name} or pass cache='disk'" in hint
    with db.cursor() as cur:
        cur.execute(f"ANALYZE {table_name}")
    reads = plan_reads(db, table_name, columns=["x", "y"])
    assert sum(segment.rows for segment in reads.segments) == 2000
    assert choose_cache("auto", reads, ["x"], tight) == "disk" and unknown_size_hint("memory", reads) == ""
