"""A Hyperband search resumes with the same architecture built again (issue 22, item 10).

Keras names a rebuilt model's layers anew (``dense_1``, then ``dense_3`` in the same process): the
configurations' fingerprint, which a resume must match, leaves those names out.
"""

import dataclasses
import hashlib

from helpers import mlp

import dasktrain
from dasktrain.select._hyperband_search import _fingerprint

SPACE = {"loss": "sparse_categorical_crossentropy", "learning_rate": [0.001, 0.01], "optimizer": "adam"}


def test_the_same_architecture_built_again_has_the_same_fingerprint():
    first, again = mlp(), mlp()
    assert first.layers[-1].name != again.layers[-1].name  # Keras's automatic names differ
    drawn = [dasktrain.model_configs(model, compile=SPACE, search="random", n=4, seed=0) for model in (first, again)]
    assert _fingerprint(drawn[0]) == _fingerprint(drawn[1])
    other = dasktrain.model_configs(mlp(classes=3), compile=SPACE, search="random", n=4, seed=0)
    assert _fingerprint(other) != _fingerprint(drawn[0])  # another architecture still differs
    fewer = dasktrain.model_configs(first, compile=SPACE, search="random", n=3, seed=0)
    assert _fingerprint(fewer) != _fingerprint(drawn[0])
    stored = dasktrain.model_configs(("arch", 1), compile=SPACE, search="random", n=4, seed=0)
    before = hashlib.sha256(b"".join(repr(dataclasses.astuple(c)).encode() for c in stored)).hexdigest()[:16]
    assert _fingerprint(stored) == before  # configurations of an architecture table digest as they did
