"""The training path uses only the public Keras 3 API: a tiny fit on a second backend, if installed."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

SECOND_BACKENDS = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]

SCRIPT = textwrap.dedent(
    """
    import keras, numpy as np
    from distributed import Client
    import dasktrain, loaders
    if __name__ == "__main__":
        assert keras.backend.backend() == BACKEND, keras.backend.backend()
        db = dasktrain.connect(DSN)
        x, y = loaders.read_digits()
        loaders.write_arrays(db, TABLE, x[:600], y[:600], segments=2, if_exists="replace")
        layers = [keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
        model = keras.Sequential(layers)
        with Client(dasktrain.cluster(n_workers=2)) as client:
            result = dasktrain.fit(TABLE, model, x="x", y="y", db=db, client=client, iterations=4, progress=False,
                                   compile={"optimizer": "Adam(learning_rate=0.02)", "metrics": ["accuracy"],
                                            "loss": "sparse_categorical_crossentropy"},
                                   fit={"epochs": 3}, normalizing_const=16.0)
        assert result.training_loss[-1] < result.training_loss[0], result.history
        assert result.metric("accuracy")[-1] > 0.5, result.history  # 10 classes: chance is 0.1
        print("ok", result.metric("accuracy")[-1])
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not SECOND_BACKENDS, reason="neither JAX nor PyTorch is installed: no second Keras backend")
def test_fit_runs_on_a_second_keras_backend(db, tmp_path, table_name):
    backend = SECOND_BACKENDS[0]
    script = tmp_path / "second_backend.py"
    header = f"BACKEND = {backend!r}\nDSN = {db.dsn!r}\nTABLE = {table_name!r}\n"
    script.write_text(header + SCRIPT)
    env = dict(os.environ, KERAS_BACKEND=backend)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
