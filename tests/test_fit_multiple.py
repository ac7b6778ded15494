"""fit_multiple: model hopper parallelism on a real cluster, cross-validation, and saved searches."""

import sys
from collections import Counter

import cloudpickle
import numpy as np
import pytest
from chaos import in_background, own_cluster
from helpers import frame, mlp
from psycopg2 import sql

import dasktrain
import loaders
from dasktrain.errors import DataError, SchemaError
from dasktrain.testing import drop_tables, kill_worker_running, table_exists

COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
TRAIN, TEST = "fit_digits_train", "fit_digits_test"
SIX = "fit_digits_six"  # the same 1,400 training rows in 6 segments: more segments than workers

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # replay() runs on a worker


def _configs(rates=(0.01, 0.001), units=(16,)):
    import keras

    def arch(n):
        keras.utils.set_random_seed(n)
        layers = [keras.layers.Flatten(), keras.layers.Dense(n, activation="relu"), keras.layers.Dense(10)]
        return keras.Sequential([keras.Input((8, 8)), *layers, keras.layers.Softmax()])

    return dasktrain.model_configs(
        [arch(n) for n in units], compile=COMPILE | {"learning_rate": list(rates)}, fit={"batch_size": [32]}
    )


def _search(db, client, configs, **kwargs):
    options = {"x": "x", "y": "y", "iterations": 2, "db": db, "client": client, "normalizing_const": 16.0,
               "progress": False} | kwargs  # fmt: skip
    data = options.pop("data", TRAIN)
    return dasktrain.fit_multiple(data, configs, **options)


def _visits_per_iteration(search, parts, iterations, segments=None):
    """Each (configuration, iteration, part) visited exactly once, and its parts covering each segment once."""
    seen = Counter((v["mst_key"], v["iteration"], v["part"]) for v in search.visits)
    expected = {(k, i, p) for k in search.results for i in range(1, iterations + 1) for p in range(parts)}
    covered = {}
    for v in search.visits:
        covered.setdefault((v["mst_key"], v["iteration"]), []).extend(v["segments"])
    segments = list(range(parts)) if segments is None else segments
    return (set(seen) == expected and set(seen.values()) == {1}
            and all(sorted(c) == segments for c in covered.values()))  # fmt: skip


@pytest.fixture(scope="module")
def six(db, digits):
    x, y = digits
    loaders.write_arrays(db, SIX, x[:1400], y[:1400], segments=6, if_exists="replace")
    yield SIX
    drop_tables(db, SIX)


def _parts_cover_the_segments(search, workers, iterations, segments=6, rows=1400):
    """One visit per worker per model per iteration, each over several segments, each part on one worker."""
    assert len(search.visits) == len(search.results) * iterations * workers
    assert _visits_per_iteration(search, parts=workers, iterations=iterations, segments=list(range(segments)))
    assert all(len(v["segments"]) >= 2 for v in search.visits)
    for key, result in search.results.items():
        assert [h["rows"] for h in result.history] == [rows] * iterations
        for iteration in range(1, iterations + 1):
            visits = [v for v in search.visits if (v["mst_key"], v["iteration"]) == (key, iteration)]
            assert sum(v["rows"] for v in visits) == rows


@pytest.fixture(scope="module")
def search(db, client, digits):
    return _search(db, client, _configs(units=(16, 32)), validation=TEST, seed=5)


def test_every_configuration_visits_every_part_once_per_iteration(search):
    assert _visits_per_iteration(search, parts=2, iterations=2)  # 2 segments on 2 workers: a segment each
    assert len(search.results) == 4 and set(search.status.values()) == {"finished"}
    for result in search.results.values():
        assert [h["rows"] for h in result.history] == [1400, 1400]
        assert all(h["validation"]["accuracy"] > 0 for h in result.history)


def test_the_table_ranks_configurations_and_best_has_the_lowest_validation_loss(search, tmp_path):
    table = search.table()
    assert list(table["mst_key"]) == search.ranking()
    losses = [search[k].validation_loss[-1] for k in search.results]
    assert search.best.validation_loss[-1] == min(losses) == table["validation_loss"].iloc[0]
    assert search.best.mst_key == search.best_key == table["mst_key"].iloc[0]
    assert set(table["parameters"]) == {16 * 64 + 16 + 16 * 10 + 10, 32 * 64 + 32 + 32 * 10 + 10}
    assert table["validation_accuracy"].max() > 0.8
    assert (tmp_path / "search.png").exists() is False
    assert search.plot(str(tmp_path / "search.png")) and (tmp_path / "search.png").stat().st_size > 10_000
    assert search.best.model().evaluate(np.zeros((2, 8, 8)), np.zeros(2), verbose=0)[0] >= 0
    assert 0 < search.busy_fraction() <= 1


def test_rank_by_a_metric_takes_the_highest(db, client, search):
    by_accuracy = dasktrain.SelectionResult(search.results, search.status, rank_by="validation_accuracy")
    accuracy = {k: r.metric("accuracy", "validation")[-1] for k, r in search.results.items()}
    assert by_accuracy.best_key == max(accuracy, key=accuracy.get)


def replay(parts, architecture, compile_params, weights, visits, mst_key, seed):
    """Train one model on the same batches, visit after visit, in one Keras model (run on the worker)."""
    from dasktrain._model_spec import compiled_model
    from dasktrain.train import _worker
    from dasktrain.train._segment_data import SegmentData, prepare_segment

    model = compiled_model(architecture, compile_params)
    model.set_weights(weights)
    job = _worker.Job("replay", architecture, compile_params, batch_size=32, seed=seed)
    for part, segments, iteration in visits:
        data = SegmentData.concat([prepare_segment(parts[s], "x", "y", (8, 8), 1.0, (10,)) for s in segments])
        _worker._train(model, data, job, np.random.default_rng([seed, mst_key, part, iteration]))
    return model.get_weights()


def test_optimizer_state_travels_with_the_model_bitwise(db, table_name):
    """One worker: every hop restores weights and Adam's moments exactly, as if one model saw every batch.

    Its two segments are one part, shuffled together."""
    data = frame([300, 200])
    model = mlp()
    initial = model.get_weights()
    model_id = dasktrain.load_architecture(db, table_name, model, weights=initial)
    configs = dasktrain.model_configs((table_name, model_id), compile=COMPILE | {"learning_rate": [0.01, 0.001]})
    with own_cluster(n_workers=1) as (_, client):
        search = dasktrain.fit_multiple(data, configs, x="x", y="y", iterations=2, seed=3, client=client, db=db,
                                        progress=False)  # fmt: skip
        parts = [data.partitions[k].compute() for k in range(2)]
        for config in configs:
            order = [(v["part"], tuple(v["segments"]), v["iteration"]) for v in search.visits
                     if v["mst_key"] == config.mst_key]  # fmt: skip
            assert order == [(0, (0, 1), 1), (0, (0, 1), 2)]
            result = search[config.mst_key]
            expected = client.submit(replay, parts, result.architecture, result.compile_params, initial, order,
                                     config.mst_key, 3, pure=False).result()  # fmt: skip
            for got, want in zip(result.weights, expected, strict=True):
                np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_a_worker_killed_mid_visit_is_re_queued_and_counted_once(db, six):
    """The parts are homed again on the live workers (their 6 segments moved as needed), each row counted once."""
    with own_cluster() as (_, client):
        killer = in_background(lambda: kill_worker_running(client, "visit-2-None-", timeout=120))
        search = _search(db, client, _configs(rates=(0.01, 0.003)), iterations=3, validation=TEST, data=SIX)
        killer.join()
    assert killer.error is None
    _parts_cover_the_segments(search, workers=2, iterations=3)
    assert set(search.status.values()) == {"finished"}
    assert search.best.metric("accuracy", "validation")[-1] > 0.8


def test_a_visit_covers_a_workers_segments_when_there_are_more_segments_than_workers(db, client, six):
    """6 segments on 2 workers: each model makes 2 visits per iteration (one per worker), each over 3 segments."""
    search = dasktrain.fit_multiple(six, _configs(), x="x", y="y", iterations=2, validation=TEST, db=db,
                                    client=client, normalizing_const=16.0, progress=False, seed=1)  # fmt: skip
    workers = len(client.scheduler_info()["workers"])
    assert workers == 2
    _parts_cover_the_segments(search, workers, iterations=2)
    where = {}
    for v in search.visits:  # a part stays on its worker, one part per worker
        where.setdefault(v["part"], set()).add(v["worker"])
    assert all(len(w) == 1 for w in where.values()) and len(set.union(*where.values())) == workers
    assert set(search.status.values()) == {"finished"}
    assert search.best.metric("accuracy", "validation")[-1] > 0.8  # as well as with one segment per worker


def test_a_diverging_configuration_is_marked_and_the_others_finish(db, client, digits):
    # 1e300 is infinite in float32: every weight becomes inf or NaN at the first step (a finite rate
    # can leave all ReLUs dead and the clipped loss finite)
    configs = dasktrain.model_configs(
        mlp(), compile=COMPILE | {"optimizer": "sgd", "learning_rate": [0.05, 1e300]}, fit={"batch_size": 32}
    )
    search = _search(db, client, configs, validation=TEST)
    assert search.status == {1: "finished", 2: "diverged"}
    assert "configuration 2" in search.errors[2] and search.best_key == 1
    assert list(search.table()["status"]) == ["finished", "diverged"]


def test_folds_cover_the_table_once_and_each_model_leaves_its_fold_out(db, client, digits):
    from dasktrain.train._segment_data import fold_of

    ids = np.arange(1400)
    folds = fold_of(ids, 3)
    assert set(folds.tolist()) == {0, 1, 2} and np.array_equal(folds, fold_of(ids, 3))  # stable, disjoint, covering
    assert abs(np.bincount(folds) - 1400 / 3).max() < 60
    search = _search(db, client, _configs(), folds=3, rank_by="accuracy")
    assert search.rank_by == "validation_accuracy"
    for key in search.results:
        rows = Counter()
        for visit in search.visits:
            if visit["mst_key"] == key and visit["iteration"] == 1:
                rows[visit["fold"]] += visit["rows"]
        # each fold's model trained on the other folds' rows, over both parts
        assert sum(rows.values()) == 2 * 1400 and all(0 < n < 1400 for n in rows.values())
    table = search.table()
    assert {"validation_accuracy", "validation_accuracy_std", "validation_loss_std"} <= set(table.columns)
    assert table["validation_accuracy_std"].between(0, 0.5).all()
    with pytest.raises(DataError, match="keeps no models"):
        dasktrain.save_models(db, "never_written", search)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 1}, "folds as a whole number from 2"),
        ({"folds": 3, "validation": TEST}, "leave out validation"),
        ({"folds": 3, "cache": "disk"}, "cache='memory'"),
        ({"rank_by": "precision"}, "not compiled in every configuration"),
        ({"rank_by": "validation_loss"}, "needs validation"),
    ],
)
def test_bad_searches_are_refused_before_any_work(db, digits, kwargs, message):
    with pytest.raises(DataError, match=message):
        _search(db, None, _configs(), **kwargs)


def test_dask_dataframes_train_and_validate_as_table_names_do(db, client, digits):
    """Train and validation as dask DataFrames: fit_multiple tested their truth value (issue 20, item 8)."""
    train, test = dasktrain.read_table(db, TRAIN), dasktrain.read_table(db, TEST)
    search = _search(db, client, _configs(rates=(0.01,)), data=train, validation=test, iterations=1)
    assert search.rank_by == "validation_loss" and search.status == {1: "finished"}
    assert _visits_per_iteration(search, parts=2, iterations=1)
    assert search[1].num_rows == 1400 and search[1].history[0]["rows"] == 1400
    assert search[1].validation_table is None and search[1].metric("accuracy", "validation")[0] > 0.5
    mixed = _search(db, client, _configs(rates=(0.01,)), validation=test, iterations=1, rank_by="accuracy")
    assert mixed.rank_by == "validation_accuracy" and mixed[1].metric("accuracy", "validation")[0] > 0.5


def test_configurations_share_the_data_when_their_inputs_hold_as_many_values(db, client, digits):
    configs = dasktrain.model_configs([mlp(), mlp(input_shape=(64,))], compile=COMPILE)
    search = _search(db, client, configs, iterations=1)  # an 8x8 and a flat 64-value input, one read
    assert set(search.status.values()) == {"finished"}
    configs = dasktrain.model_configs([mlp(), mlp(input_shape=(32,))], compile=COMPILE)
    with pytest.raises(DataError, match=r"inputs of shape \(32,\)"):
        _search(db, None, configs)
    with pytest.raises(DataError, match="needs configurations"):
        _search(db, None, [])


def test_a_saved_search_loads_and_scores_by_mst_key(db, client, search, table_name):
    version = dasktrain.save_models(db, table_name, search, name="digits_search")
    assert version == 1 and dasktrain.save_models(db, table_name, search, name="digits_search") == 2
    with db.cursor() as cur:
        cur.execute(sql.SQL("SELECT mst_key, model_arch FROM {} WHERE version = 1 ORDER BY 1").format(
            sql.Identifier(table_name)))  # fmt: skip
        assert [r[0] for r in cur.fetchall()] == [1, 2, 3, 4]
        cur.execute(sql.SQL("SELECT mst_key, status, validation_loss_final, metrics_iters FROM {} "
                            "WHERE version = 1 ORDER BY 1").format(sql.Identifier(table_name + "_info")))  # fmt: skip
        info = cur.fetchall()
        cur.execute(sql.SQL("SELECT best_mst_key, num_configurations FROM {} WHERE version = 1").format(
            sql.Identifier(table_name + "_summary")))  # fmt: skip
        assert cur.fetchone() == (search.best_key, 4)
    assert [(k, s, m) for k, s, _, m in info] == [(k, "finished", [1, 2]) for k in (1, 2, 3, 4)]
    assert [round(r[2], 5) for r in info] == [round(search[k].validation_loss[-1], 5) for k in (1, 2, 3, 4)]
    worst = search.ranking()[-1]
    model = dasktrain.load_model(db, table_name, mst_key=worst)
    for got, want in zip(model.get_weights(), search[worst].weights, strict=True):
        np.testing.assert_array_equal(got, want)
    best = dasktrain.evaluate(db, table_name, TEST, client=client, progress=False)  # the best, by default
    assert best["loss"] == pytest.approx(search.best.validation_loss[-1], rel=1e-4)
    scored = dasktrain.predict_table(db, table_name, TEST, table_name + "_scores", mst_key=worst, id="id",
                                     client=client, progress=False)  # fmt: skip
    assert scored == 397
    with pytest.raises(SchemaError, match="no mst_key 9"):
        dasktrain.load_model(db, table_name, mst_key=9)
    with pytest.raises(SchemaError, match="not a search"):
        dasktrain.load_model(db, table_name + "_scores", mst_key=1)
    drop_tables(db, table_name + "_scores")
    assert not table_exists(db, table_name + "_scores")


def test_save_models_refuses_a_table_of_single_models(db, trained, search):
    with pytest.raises(SchemaError, match="holds single models"):
        dasktrain.save_models(db, "scoring_models", search)
    with pytest.raises(SchemaError, match="not a search"):
        dasktrain.load_model(db, "scoring_models", mst_key=1)
