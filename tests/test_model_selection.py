"""model_configs, its distributions, and model selection tables in MADlib's layout."""

import numpy as np
import pytest
from helpers import mlp
from psycopg2 import sql

import dasktrain
from dasktrain.errors import DataError, SchemaError

COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def test_a_grid_has_every_combination_in_order_with_stable_keys():
    configs = dasktrain.model_configs(
        [("arch", 1), ("arch", 2)],
        compile=COMPILE | {"optimizer": ["adam", "sgd"], "learning_rate": [0.1, 0.01]},
        fit={"batch_size": [32, 64], "epochs": 2},
    )
    assert [c.mst_key for c in configs] == list(range(1, 17))
    combos = {(c.model, c.compile["optimizer"], c.fit["batch_size"]) for c in configs}
    assert len(combos) == 16
    assert configs[0].compile == {"optimizer": "Adam(learning_rate=0.1)", "loss": COMPILE["loss"],
                                  "metrics": ["accuracy"]}  # fmt: skip
    assert configs[0].fit == {"batch_size": 32, "epochs": 2}
    again = dasktrain.model_configs(
        [("arch", 1), ("arch", 2)],
        compile=COMPILE | {"optimizer": ["adam", "sgd"], "learning_rate": [0.1, 0.01]},
        fit={"batch_size": [32, 64], "epochs": 2},
    )
    assert again == configs


def test_a_list_of_metrics_is_a_value_and_a_list_of_lists_is_searched():
    one = dasktrain.model_configs(("arch", 1), compile=COMPILE)
    assert len(one) == 1 and one[0].compile["metrics"] == ["accuracy"]
    two = dasktrain.model_configs(("arch", 1), compile=COMPILE | {"metrics": [["accuracy"], ["mse"]]})
    assert [c.compile["metrics"] for c in two] == [["accuracy"], ["mse"]]


def test_random_search_draws_n_configurations_reproducibly_within_the_ranges():
    space = COMPILE | {"learning_rate": dasktrain.loguniform(1e-4, 1e-1)}
    fit = {"batch_size": [32, 64, 128], "epochs": dasktrain.choice([1, 2])}
    first = dasktrain.model_configs([("arch", 1), ("arch", 2)], compile=space, fit=fit, search="random", n=40, seed=3)
    again = dasktrain.model_configs([("arch", 1), ("arch", 2)], compile=space, fit=fit, search="random", n=40, seed=3)
    other = dasktrain.model_configs([("arch", 1), ("arch", 2)], compile=space, fit=fit, search="random", n=40, seed=4)
    assert first == again and first != other
    rates = [float(c.compile["optimizer"].split("=")[1].rstrip(")")) for c in first]
    assert all(1e-4 <= r < 1e-1 for r in rates)
    assert min(rates) < 1e-3 < max(rates)  # spread over decades, not bunched at the top as uniform would be
    assert {c.fit["batch_size"] for c in first} == {32, 64, 128}
    assert {c.model for c in first} == {("arch", 1), ("arch", 2)}


def test_distributions_stay_in_their_ranges():
    rng = np.random.default_rng(0)
    assert all(0.2 <= dasktrain.uniform(0.2, 0.3).sample(rng) < 0.3 for _ in range(100))
    near = [dasktrain.log_near_one(0.9, 0.999).sample(rng) for _ in range(200)]
    assert all(0.9 < v <= 0.999 for v in near) and np.median(near) > 0.98
    with pytest.raises(DataError, match="low < high"):
        dasktrain.uniform(1, 1)
    with pytest.raises(DataError, match="low > 0"):
        dasktrain.loguniform(0, 1)
    with pytest.raises(DataError, match="high < 1"):
        dasktrain.log_near_one(0.5, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compile": {"optimizer": "adam"}}, "needs a loss"),
        ({"compile": COMPILE | {"lr": [0.1]}}, "Unknown compile parameter 'lr'"),
        ({"compile": COMPILE, "fit": {"batch_size": []}}, "empty list"),
        ({"compile": COMPILE | {"learning_rate": dasktrain.uniform(0.1, 0.2)}}, "distribution for search='random'"),
        ({"compile": COMPILE, "search": "random"}, "needs n"),
        ({"compile": COMPILE, "search": "bayes"}, "search='grid' or 'random'"),
        ({"compile": COMPILE, "n": 3}, "n= is for search='random'"),
    ],
)
def test_bad_searches_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(DataError, match=message):
        dasktrain.model_configs(("arch", 1), **kwargs)


def test_models_can_be_given_as_keras_models():
    configs = dasktrain.model_configs([mlp(), mlp(classes=3)], compile=COMPILE)
    assert [c.model.count('"units": 10') for c in configs] == [1, 0]


def test_a_model_selection_table_round_trips_in_madlibs_layout(db, table_name):
    arch = f"{table_name}_arch"
    ids = [dasktrain.load_architecture(db, arch, mlp(seed=s)) for s in (0, 1)]
    configs = dasktrain.model_configs(
        [(arch, i) for i in ids], compile=COMPILE | {"learning_rate": [0.01, 0.001]}, fit={"batch_size": [16, 32]}
    )
    dasktrain.save_model_selection(db, table_name, configs)
    assert dasktrain.load_model_selection(db, table_name) == configs
    with db.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} ORDER BY mst_key LIMIT 1").format(sql.Identifier(table_name)))
        assert [d.name for d in cur.description] == ["mst_key", "model_arch_table", "model_id", "compile_params",
                                                     "fit_params"]  # fmt: skip
        cur.execute(sql.SQL("SELECT model_arch_table, object_table FROM {}").format(
            sql.Identifier(f"{table_name}_summary")))  # fmt: skip
        assert cur.fetchall() == [(arch, None)]
    with pytest.raises(SchemaError, match="if_exists='replace'"):
        dasktrain.save_model_selection(db, table_name, configs[:1])
    dasktrain.save_model_selection(db, table_name, configs[:1], if_exists="replace")
    assert dasktrain.load_model_selection(db, table_name) == configs[:1]


def test_madlibs_own_table_without_the_arch_column_is_read_through_its_summary(db, table_name):
    with db.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (mst_key serial, model_id integer, compile_params varchar, fit_params varchar);"
                "INSERT INTO {} (model_id, compile_params, fit_params) VALUES (1, 'loss=''mse''', 'batch_size=8');"
                "CREATE TABLE {} (model_arch_table varchar, object_table varchar);"
                "INSERT INTO {} VALUES ('madlib_arch', NULL)"
            ).format(*[sql.Identifier(table_name)] * 2, *[sql.Identifier(f"{table_name}_summary")] * 2)
        )
    (config,) = dasktrain.load_model_selection(db, table_name)
    assert config.model == ("madlib_arch", 1) and config.compile == {"loss": "mse"} and config.fit == {"batch_size": 8}


def test_saving_needs_stored_architectures_and_writes_nothing_otherwise(db, table_name):
    from dasktrain.testing import table_exists

    configs = dasktrain.model_configs(mlp(), compile=COMPILE)
    with pytest.raises(DataError, match="load_architecture"):
        dasktrain.save_model_selection(db, table_name, configs)
    assert not table_exists(db, table_name)
    with pytest.raises(DataError, match="No configurations"):
        dasktrain.save_model_selection(db, table_name, [])


def _brackets(table):
    return {int(s): [(int(n), int(r)) for n, r in zip(g.n_i, g.r_i, strict=True)]
            for s, g in table.groupby("s", sort=False)}  # fmt: skip


def test_hyperband_schedule_is_madlibs_by_default_for_r81_eta3():
    """MADlib's documented "Print Hyperband schedule" (madlib_keras_automl.sql_in): hyperband_schedule(81, 3, 0)."""
    table = dasktrain.hyperband_schedule(81, 3)
    assert _brackets(table) == {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(27, 3), (9, 9), (3, 27), (1, 81)],
        2: [(9, 9), (3, 27), (1, 81)],
        1: [(6, 27), (2, 81)],
        0: [(5, 81)],
    }
    assert table.equals(dasktrain.hyperband_schedule(81, 3, schedule="madlib"))
    for s, rounds in _brackets(table).items():
        assert [i for i in table[table.s == s].i] == list(range(len(rounds)))


def test_hyperband_schedule_li_is_the_papers_table_1_for_r81_eta3():
    """Li et al. (2018), Table 1 (R=81, eta=3): the middle brackets start more configurations than MADlib's."""
    assert _brackets(dasktrain.hyperband_schedule(81, 3, schedule="li")) == {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }


def test_hyperband_schedule_with_eta_2_and_skipped_last_rounds():
    table = dasktrain.hyperband_schedule(8, eta=2, schedule="li")  # mlr3hyperband's documented example
    assert [tuple(r) for r in table[["s", "n_i", "r_i"]].itertuples(index=False)] == [
        (3, 8, 1), (3, 4, 2), (3, 2, 4), (3, 1, 8), (2, 6, 2), (2, 3, 4), (2, 1, 8), (1, 4, 4), (1, 2, 8), (0, 4, 8),
    ]  # fmt: skip
    # MADlib's: bracket 2 starts (4 // 3) * 2^2 = 4 configurations, not ceil(4 / 3 * 2^2) = 6
    assert _brackets(dasktrain.hyperband_schedule(8, eta=2)) == {
        3: [(8, 1), (4, 2), (2, 4), (1, 8)], 2: [(4, 2), (2, 4), (1, 8)], 1: [(4, 4), (2, 8)], 0: [(4, 8)],
    }  # fmt: skip
    skipped = dasktrain.hyperband_schedule(8, eta=2, skip_last=1)
    assert len(skipped) == len(table) - 4  # each bracket's last round; bracket 0 had only that one
    assert skipped.r_i.max() == 4 and 0 not in set(skipped.s)
    # exact powers need no floating-point logarithm: 1000 = 10^3 has 4 brackets
    assert dasktrain.hyperband_schedule(1000, eta=10).s.max() == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"R": 2, "eta": 3}, "R >= eta"), ({"R": 9, "eta": 1}, "eta >= 2"), ({"R": 9.0}, "whole number"),
     ({"R": 9, "skip_last": -1}, "skip_last >= 0"), ({"R": 9, "schedule": "paper"}, "schedule='madlib' or 'li'")],
)  # fmt: skip
def test_hyperband_schedule_refuses_bad_parameters(kwargs, message):
    with pytest.raises(DataError, match=message):
        dasktrain.hyperband_schedule(**kwargs)


def test_a_search_model_saved_then_loaded_back_records_the_hopper(db, trained, table_name):
    """A search's best model says strategy=hopper; saving it and loading it back (resume does) must work."""
    import dataclasses

    from dasktrain.models._model_store import load_result
    from dasktrain.strategies.hopper import Hopper

    dasktrain.save_model(db, table_name, dataclasses.replace(trained, strategy=Hopper()), name="best")
    assert load_result(db, table_name, "best").strategy == Hopper()
