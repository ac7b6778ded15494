"""The Hyperband search the tests run (shared with the process that chaos.py starts and kills)."""

from helpers import mlp

import dasktrain

HYPERBAND = {
    "data": "fit_digits_train",
    "architectures": [mlp(seed=1)],
    "compile": {
        "optimizer": "adam",
        "learning_rate": dasktrain.loguniform(3e-4, 3e-2),
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    },  # fmt: skip
    "fit": {"batch_size": [32, 64]},
    "R": 4,
    "eta": 2,
    "x": "x",
    "y": "y",
    "validation": "fit_digits_test",
    "normalizing_const": 16.0,
    "seed": 7,
}
