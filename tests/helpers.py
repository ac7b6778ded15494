"""Helpers shared by the training tests: a tiny model, a compile string, in-memory frames."""

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from dasktrain.io._tensor_column import tensor_series

COMPILE = "optimizer='Adam(learning_rate=0.01)', loss='sparse_categorical_crossentropy', metrics=['accuracy']"


def mlp(classes=10, input_shape=(8, 8), seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def frame(sizes, nan=False):
    rng = np.random.default_rng(0)

    def part(n):
        x = rng.random((n, 8, 8)).astype(np.float32)
        if nan and n:
            x[0, 0, 0] = np.nan
        return pd.DataFrame({"x": tensor_series(x), "y": rng.integers(0, 10, n).astype(np.int64)})

    parts = [part(n) for n in sizes]
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0].iloc[:0], verify_meta=False)
