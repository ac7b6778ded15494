"""An ordinary table end to end: one float column per feature, a text class label, a Normalization layer.

scikit-learn's wine data (178 rows, 13 measurements, 3 cultivars) as MADlib's own examples keep
data: plain columns and a varchar class. It trains, scores table to table with the class text
written back, evaluates, and scores lazily over a dask DataFrame.
"""

import numpy as np
import pandas as pd
import pytest

import dasktrain
import loaders
from dasktrain.errors import DataError

COMPILE = {"optimizer": "Adam(learning_rate=0.01)", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def wine_frame() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    wine = data.frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
    wine["cultivar"] = np.asarray(data.target_names)[wine.pop("target")]
    return wine


FEATURES = [c for c in wine_frame().columns if c != "cultivar"]


def normalized_mlp(train: pd.DataFrame):
    import keras

    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(train[FEATURES].to_numpy("float32"))
    return keras.Sequential([
        keras.Input((len(FEATURES),)), norm, keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def wine(db):
    from dasktrain.testing import drop_tables

    frame = wine_frame()
    test = frame.index % 5 == 0
    loaders.write_frame(db, "wine_train", frame[~test], segments=2, if_exists="replace")
    loaders.write_frame(db, "wine_test", frame[test], segments=2, if_exists="replace")
    with db.cursor() as cur:  # MADlib's examples keep the class in a varchar column
        cur.execute("ALTER TABLE wine_test ALTER COLUMN cultivar TYPE varchar(20)")
    yield frame[~test], frame[test]
    for table in ("wine_train", "wine_test", "wine_models"):
        drop_tables(db, table)


@pytest.fixture(scope="module")
def wine_model(db, client, wine):
    train, _ = wine
    result = dasktrain.fit(
        "wine_train", normalized_mlp(train), x=FEATURES, y="cultivar", db=db, client=client, compile=COMPILE,
        fit={"batch_size": 16}, iterations=12, validation="wine_test", seed=0, progress=False,
    )  # fmt: skip
    dasktrain.save_model(db, "wine_models", result, name="wine")
    return result


def test_text_labels_train_as_their_sorted_classes(wine_model):
    assert wine_model.class_values == ["class_0", "class_1", "class_2"]
    assert wine_model.label_type == "text"
    # A Normalization layer adapted on the client keeps its mean and variance on the workers:
    # without them the loss stays near 50 and the accuracy near a third.
    assert wine_model.history[-1]["validation"]["accuracy"] >= 0.9


def test_the_adapted_normalization_reaches_plain_keras(wine, wine_model):
    train, test = wine
    codes = {v: k for k, v in enumerate(wine_model.class_values)}
    keras_model = normalized_mlp(train)
    keras_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras_model.fit(train[FEATURES].to_numpy("float32"), train["cultivar"].map(codes).to_numpy(), batch_size=16,
                    epochs=12, verbose=0)  # fmt: skip
    plain = keras_model.evaluate(test[FEATURES].to_numpy("float32"), test["cultivar"].map(codes).to_numpy(),
                                 verbose=0, return_dict=True)["accuracy"]  # fmt: skip
    assert wine_model.history[-1]["validation"]["accuracy"] >= plain - 0.01


def test_predict_table_reads_the_stored_columns_and_writes_the_class_text(db, client, wine, wine_model, table_name):
    _, test = wine
    rows = dasktrain.predict_table(db, "wine_models", "wine_test", table_name, name="wine", client=client,
                                   progress=False)  # fmt: skip
    assert rows == len(test)
    with db.cursor() as cur:
        cur.execute(f"SELECT pg_typeof(class_value)::text FROM {table_name} LIMIT 1")
        assert cur.fetchone()[0] == "text"
        cur.execute(f"SELECT s.class_value = t.cultivar FROM {table_name} s JOIN wine_test t USING (id)")
        right = [r[0] for r in cur.fetchall()]
    assert len(right) == len(test) and np.mean(right) >= 0.9


def test_evaluate_takes_text_labels(db, client, wine_model):
    scores = dasktrain.evaluate(db, "wine_models", "wine_test", name="wine", client=client, progress=False)
    assert scores["rows"] == 36 and scores["accuracy"] >= 0.9
    assert scores["accuracy"] == pytest.approx(wine_model.history[-1]["validation"]["accuracy"], abs=1e-6)


def test_lazy_predict_takes_the_model_columns_or_a_list(db, client, wine, wine_model):
    _, test = wine
    ddf = dasktrain.read_table(db, "wine_test")
    default = dasktrain.predict(wine_model, ddf).compute()
    listed = dasktrain.predict(wine_model, ddf, x=FEATURES).compute()
    assert len(default) == len(test)
    assert default.sort_values("id")["class_value"].tolist() == listed.sort_values("id")["class_value"].tolist()
    assert set(default["class_value"]) <= {"class_0", "class_1", "class_2"}


def test_unknown_labels_at_evaluation_are_named(db, client, wine, wine_model):
    _, test = wine
    odd = test.assign(cultivar=np.where(test.index % 2, "class_9", test["cultivar"]))
    loaders.write_frame(db, "wine_odd", odd, segments=2, if_exists="replace")
    try:
        with pytest.raises(DataError, match="does not know: 'class_9'"):
            dasktrain.evaluate(db, "wine_models", "wine_odd", name="wine", client=client, progress=False)
    finally:
        from dasktrain.testing import drop_tables

        drop_tables(db, "wine_odd")


def test_null_labels_are_refused_before_training(db, client, wine, table_name):
    train, _ = wine
    loaders.write_frame(db, table_name, train.assign(cultivar=train["cultivar"].where(train.index % 7 > 0)))
    with pytest.raises(DataError, match="'cultivar' has NULL values"):
        dasktrain.fit(table_name, normalized_mlp(train), x=FEATURES, y="cultivar", db=db, client=client,
                      compile=COMPILE, iterations=1, progress=False)  # fmt: skip


def test_more_classes_than_outputs_are_refused_before_training(db, client, wine):
    import keras

    model = keras.Sequential([keras.Input((len(FEATURES),)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(DataError, match="has 3 classes .* give its last layer 3 units"):
        dasktrain.fit("wine_train", model, x=FEATURES, y="cultivar", db=db, client=client, compile=COMPILE,
                      iterations=1, progress=False)  # fmt: skip


def test_boolean_labels_score_as_booleans(db, client, wine, table_name):
    import keras

    train, test = wine
    loaders.write_frame(db, table_name, train.assign(red=train["cultivar"] == "class_0").drop(columns="cultivar"))
    model = keras.Sequential([keras.Input((len(FEATURES),)), keras.layers.Dense(2, activation="softmax")])
    result = dasktrain.fit(table_name, model, x=FEATURES, y="red", db=db, client=client, compile=COMPILE,
                           iterations=1, progress=False)  # fmt: skip
    assert result.class_values == [False, True] and result.label_type == "bool"
    models, output = f"{table_name}_models", f"{table_name}_out"
    dasktrain.save_model(db, models, result, name="red")
    try:
        dasktrain.predict_table(db, models, "wine_test", output, name="red", client=client, progress=False)
        with db.cursor() as cur:
            cur.execute(f"SELECT pg_typeof(class_value)::text, count(*) FROM {output} GROUP BY 1")
            (kind, rows), = cur.fetchall()
        assert kind == "boolean" and rows == len(test)
    finally:
        from dasktrain.testing import drop_tables

        drop_tables(db, output)
        drop_tables(db, models)


@pytest.mark.parametrize(
    "table, x, y, match",
    [
        ("no_such_table", FEATURES, "cultivar", "Table 'no_such_table' does not exist"),
        ("wine_train", [*FEATURES[:12], "nope"], "cultivar", "no column 'nope'"),
        ("wine_train", [*FEATURES[:12], "cultivar"], FEATURES[12], "'cultivar' does not hold numbers"),
        ("wine_train", FEATURES, "no_label", "no column 'no_label'"),
    ],
)
def test_bad_tables_and_columns_are_refused_before_any_cluster_is_used(db, wine, table, x, y, match):
    from dasktrain.errors import SchemaError

    not_a_client = object()  # any use of a cluster would fail with AttributeError, not SchemaError
    with pytest.raises(SchemaError, match=match):
        dasktrain.fit(table, normalized_mlp(wine[0]), x=x, y=y, db=db, client=not_a_client, compile=COMPILE,
                      iterations=1, progress=False)  # fmt: skip


def test_the_command_line_trains_and_scores_plain_columns(db, client, wine, table_name, capsys):
    from dasktrain import cli

    train, test = wine
    model_id = dasktrain.load_architecture(db, f"{table_name}_arch", normalized_mlp(train),
                                           weights=normalized_mlp(train).get_weights())  # fmt: skip
    models, scores = f"{table_name}_models", f"{table_name}_scores"
    try:
        assert cli.main([
            "fit", "--dsn", db.dsn, "--data", "wine_train", "--model-arch-table", f"{table_name}_arch",
            "--model-id", str(model_id), "--x", ",".join(FEATURES), "--y", "cultivar", "--compile",
            "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']",
            "--iterations", "2", "--model-table", models, "--name", "wine_cli", "--quiet",
        ]) == 0  # fmt: skip
        assert cli.main(["predict", "--dsn", db.dsn, "--model-table", models, "--name", "wine_cli", "--source",
                         "wine_test", "--output", scores, "--quiet"]) == 0  # fmt: skip
        with db.cursor() as cur:
            cur.execute(f"SELECT count(*), bool_and(class_value LIKE 'class_%') FROM {scores}")
            assert cur.fetchone() == (len(test), True)
    finally:
        from dasktrain.testing import drop_tables

        for table in (f"{table_name}_arch", models, scores):
            drop_tables(db, table)
