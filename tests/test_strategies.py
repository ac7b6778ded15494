"""Strategies and the reducer: pure numpy, then on a real LocalCluster."""

import numpy as np
import pytest

from dasktrain import EASGD, Averaging, Ensemble
from dasktrain.errors import DataError
from dasktrain.strategies import WeightedSum
from dasktrain.train._reducer import tree_depth, tree_reduce
from dasktrain.train._worker import merge, new_center


def _segments(k=9, seed=0):
    rng = np.random.default_rng(seed)
    weights = [[rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)] for _ in range(k)]
    rows = [int(r) for r in rng.integers(1, 5000, k)]
    return weights, rows


def _numpy_mean(weights, rows):
    return [
        (
            np.tensordot(np.asarray(rows, np.float64), np.stack([w[i] for w in weights]).astype(np.float64), axes=1)
            / sum(rows)
        ).astype(np.float32)
        for i in range(len(weights[0]))
    ]


def test_the_cluster_reducer_gives_numpys_row_weighted_mean_exactly(client):
    weights, rows = _segments()
    parts = [
        client.submit(WeightedSum.of, w, n, {"loss": float(n)}, pure=False) for w, n in zip(weights, rows, strict=True)
    ]
    total = tree_reduce(client, parts, merge)
    assert tree_depth(len(parts)) == 2
    center, _ = client.submit(new_center, total, weights[0], None, Averaging(), 1).result()
    for got, expected in zip(center, _numpy_mean(weights, rows), strict=True):
        np.testing.assert_array_equal(got, expected)
    merged = total.result()
    assert merged.rows == sum(rows)
    assert merged.mean_metrics()["loss"] == pytest.approx(sum(n * n for n in rows) / sum(rows))


def test_unequal_segments_count_by_rows_not_by_segment():
    big, small = [np.full(2, 1.0, np.float32)], [np.full(2, 5.0, np.float32)]
    total = WeightedSum.of(big, 999) + WeightedSum.of(small, 1)
    np.testing.assert_allclose(total.mean()[0], [1.004, 1.004], rtol=1e-6)


def test_easgd_one_one_is_exactly_averaging():
    weights, rows = _segments(4, seed=3)
    total = merge(*[WeightedSum.of(w, n) for w, n in zip(weights, rows, strict=True)])
    previous = [np.ones_like(w) for w in weights[0]]
    avg, _ = new_center(total, previous, None, Averaging(), 1)
    easgd = EASGD(alpha=1, beta=1)
    center, _ = new_center(total, previous, None, easgd, 1)
    for a, b in zip(avg, center, strict=True):
        np.testing.assert_array_equal(a, b)
    local = easgd.local(weights[0], center)
    for a, b in zip(local, avg, strict=True):
        np.testing.assert_array_equal(a, b)


def test_easgd_formulas():
    easgd = EASGD(alpha=0.25, beta=0.5)
    center = easgd.center([np.array([0.0])], [np.array([4.0])])
    assert center[0][0] == 2.0  # (1 - 0.5) * 0 + 0.5 * 4
    local = easgd.local([np.array([10.0])], center)
    assert local[0][0] == 8.0  # 10 - 0.25 * (10 - 2)


def test_ensemble_keeps_each_segments_own_weights():
    own = [np.array([3.0], np.float32)]
    assert Ensemble().local(own, None)[0][0] == 3.0


def test_a_merged_model_with_nan_weights_stops_training():
    from dasktrain.errors import TrainingDivergedError

    total = WeightedSum.of([np.array([np.nan], np.float32)], 3)
    with pytest.raises(TrainingDivergedError, match="iteration 4: the merged model has NaN"):
        new_center(total, [np.zeros(1, np.float32)], None, Averaging(), 4)


@pytest.mark.parametrize(
    "name, params, expected",
    [("EASGD", {"alpha": 0.5}, EASGD(alpha=0.5)), ("Averaging", {}, Averaging()), ("ensemble", {}, Ensemble())],
)
def test_strategies_by_name_ignore_case(name, params, expected):
    from dasktrain.strategies import strategy_named

    assert strategy_named(name, **params) == expected


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("averaging", {"alpha": 0.5}, "takes no parameter alpha"),
        ("easgd", {"gamma": 1}, "takes no parameter gamma .it takes alpha, beta"),
        ("sgd", {}, "Unknown strategy 'sgd'"),
        ("easgd", {"alpha": 2}, "in \\[0, 1\\]"),
    ],
)
def test_strategy_parameters_the_strategy_does_not_take_are_refused(name, params, match):
    from dasktrain.strategies import strategy_named

    with pytest.raises(DataError, match=match):
        strategy_named(name, **params)


@pytest.mark.parametrize("alpha, beta", [(-0.1, 0.5), (0.5, 1.5), ("0.5", 0.5), (True, 0.5)])
def test_easgd_parameters_outside_0_1_are_refused(alpha, beta):
    with pytest.raises(DataError, match="in \\[0, 1\\]"):
        EASGD(alpha=alpha, beta=beta).validate()
