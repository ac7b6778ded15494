"""dasktrain.fit on a real database and a real LocalCluster with worker processes, tiny models."""

import numpy as np
from helpers import COMPILE, frame, mlp

import dasktrain


def train(db, client, model=None, **kwargs):
    options = dict(
        x="x", y="y", db=db, client=client, compile=COMPILE, iterations=2, normalizing_const=16.0, progress=False
    )
    options.update(kwargs)
    return dasktrain.fit(options.pop("data", "fit_digits_train"), model or mlp(), **options)


def test_a_two_segment_fit_on_digits_beats_chance_by_a_wide_margin(db, client, digits):
    result = train(db, client, iterations=5, fit={"epochs": 2}, validation="fit_digits_test")
    assert result.num_segments == 2 and result.num_rows == 1400
    assert result.class_values == list(range(10))
    assert len(result.history) == 5 and all(h["validation"] for h in result.history)
    assert result.metric("accuracy", "validation")[-1] > 0.8  # chance is 0.1
    assert result.training_loss[-1] < result.training_loss[0]
    assert result.history[-1]["elapsed"] > result.history[0]["elapsed"] > 0


def test_easgd_one_one_trains_exactly_like_averaging(db, client, digits):
    model = mlp(seed=3)
    start = model.get_weights()
    runs = [
        train(db, client, model, strategy=s, fit={"shuffle": False}, initial_weights=start)
        for s in (dasktrain.Averaging(), dasktrain.EASGD(alpha=1, beta=1))
    ]
    for a, b in zip(runs[0].weights, runs[1].weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert runs[0].training_loss == runs[1].training_loss


def test_an_ensemble_predicts_the_mean_of_its_members(db, client, digits):
    x, _ = digits
    result = train(db, client, strategy=dasktrain.Ensemble(), validation="fit_digits_test")
    assert len(result.members) == 2
    assert not np.array_equal(result.members[0][0], result.members[1][0])
    features = x[1400:1450].astype(np.float32) / 16
    members = []
    for weights in result.members:
        single = mlp()
        single.set_weights(weights)
        members.append(single.predict(features, verbose=0))
    np.testing.assert_allclose(
        result.model().predict(features, verbose=0), np.mean(members, axis=0), rtol=1e-5, atol=1e-6
    )


def test_centralized_trains_all_rows_as_one_segment(db, client, digits):
    result = train(db, client, strategy=dasktrain.Centralized(), iterations=1)
    assert result.num_segments == 1 and result.num_rows == 1400


def test_save_load_round_trip_is_bitwise_and_versions_never_overwrite(db, client, digits, table_name):
    first = train(db, client, iterations=1)
    second = train(db, client, iterations=1, model=mlp(seed=9))
    assert dasktrain.save_model(db, table_name, first, name="digits_mlp") == 1
    assert dasktrain.save_model(db, table_name, second, name="digits_mlp", description="again") == 2
    assert [(m["name"], m["version"]) for m in dasktrain.list_models(db, table_name)] == [
        ("digits_mlp", 1),
        ("digits_mlp", 2),
    ]
    for version, result in ((1, first), (2, second), (None, second)):
        loaded = dasktrain.load_model(db, table_name, "digits_mlp", version)
        for a, b in zip(loaded.get_weights(), result.weights, strict=True):
            assert a.tobytes() == b.tobytes()
    summary = dasktrain.model_summary(db, table_name, "digits_mlp", 1)
    assert summary["strategy"] == "slowmo" and summary["num_iterations"] == 1
    assert summary["training_loss"] == first.training_loss
    assert summary["normalizing_const"] == 16.0 and summary["class_values"] == [str(c) for c in range(10)]
    with db.cursor() as cur:  # MADlib's layout: flat float32 weights and the Keras JSON
        cur.execute(f"SELECT length(model_weights), model_arch->>'class_name' FROM {table_name} WHERE version = 1")
        size, class_name = cur.fetchone()
    assert size == 4 * sum(w.size for w in first.weights) and class_name == "Sequential"
    assert dasktrain.delete_model(db, table_name, "digits_mlp", version=1) == 1
    assert [m["version"] for m in dasktrain.list_models(db, table_name)] == [2]


def test_an_ensemble_is_stored_as_members_and_loads_as_their_mean(db, client, digits, table_name):
    x, _ = digits
    result = train(db, client, strategy=dasktrain.Ensemble(), iterations=1)
    dasktrain.save_model(db, table_name, result, name="ens")
    loaded = dasktrain.load_model(db, table_name, "ens")
    features = x[:20].astype(np.float32) / 16
    np.testing.assert_allclose(
        loaded.predict(features, verbose=0), result.model().predict(features, verbose=0), rtol=1e-6
    )


def test_resume_continues_from_the_last_checkpoint(db, client, digits, table_name):
    checkpoint = (db, table_name, "ck")
    first = train(db, client, iterations=2, checkpoint=checkpoint)
    assert [m["version"] for m in dasktrain.list_models(db, table_name)] == [1, 2]
    again = train(db, client, iterations=2, checkpoint=checkpoint, resume=True)
    assert again.history == first.history  # nothing left to do: no training
    for a, b in zip(again.weights, first.weights, strict=True):
        assert a.tobytes() == b.tobytes()
    more = train(db, client, iterations=4, checkpoint=checkpoint, resume=True)
    assert [h["iteration"] for h in more.history] == [1, 2, 3, 4]
    assert more.history[:2] == first.history
    # Only the newest two checkpoint versions are kept (checkpoint_keep=2).
    assert [(m["version"], m["status"]) for m in dasktrain.list_models(db, table_name)] == [
        (3, "checkpoint"),
        (4, "checkpoint"),
    ]


def test_segments_of_unequal_size_and_one_smaller_than_a_batch_train_together(db, client):
    result = train(db, client, data=frame([600, 5, 300]), fit={"batch_size": 32}, iterations=2, normalizing_const=1.0)
    assert result.num_segments == 3 and result.num_rows == 905
    assert all(np.isfinite(result.training_loss))


def test_sync_every_makes_a_round_k_minibatches(db, client, digits):
    result = train(db, client, sync_every=2, fit={"batch_size": 16}, iterations=3)
    assert len(result.history) == 3 and all(np.isfinite(result.training_loss))


def test_early_stopping_ends_the_loop(db, client, digits):
    result = train(db, client, iterations=10, early_stopping={"patience": 1, "min_delta": 100.0})
    assert result.stopped_early and len(result.history) == 2


def test_plot_writes_a_learning_curve(db, client, digits, tmp_path):
    result = train(db, client, iterations=2, validation="fit_digits_test")
    path = result.plot(str(tmp_path / "curve.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_fit_starts_from_an_architecture_tables_weights(db, client, digits, table_name):
    import keras

    frozen = keras.Sequential(
        [keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    frozen.layers[-1].trainable = False
    stored = [np.full(w.shape, 0.25, np.float32) for w in frozen.get_weights()]
    model_id = dasktrain.load_architecture(db, table_name, frozen, name="frozen", weights=stored)
    assert dasktrain.list_architectures(db, table_name) == [
        {"model_id": model_id, "name": "frozen", "description": None, "has_weights": True}
    ]
    result = train(db, client, model=(table_name, model_id), iterations=1)
    for a, b in zip(result.weights, stored, strict=True):
        np.testing.assert_array_equal(a, b)  # nothing trainable: the stored weights come back
    dasktrain.delete_architecture(db, table_name, model_id)
    assert dasktrain.list_architectures(db, table_name) == []
