"""Evaluation on the workers: a model's loss and metrics on the segments a worker holds."""

from __future__ import annotations

import numpy as np

from .._stateful_layers import set_weights
from ..strategies import WeightedSum
from ._segment_data import SegmentData
from ._worker import Job, _plugin


def evaluate_segments(weights, job: Job, members: bool, *segments: SegmentData) -> WeightedSum:
    """:func:`evaluate_segment` on several segments of one worker, as one stream of rows."""
    return evaluate_segment(SegmentData.concat(segments), weights, job, members)


def round_metrics(total: WeightedSum) -> dict[str, float]:
    return total.mean_metrics()


def evaluate_segment(data: SegmentData, weights, job: Job, members: bool = False) -> WeightedSum:
    """Loss and compiled metrics of one model (or the mean of ensemble members) on one segment's rows.

    Rows are scaled to float32 a chunk at a time and given to Keras as arrays (metrics are
    row-weighted over chunks, as over segments): a Python dataset would go through TensorFlow's
    generator thread, slow on a Dask worker (see :func:`._worker._train`).
    """
    slot = _plugin().slot(job)
    batch_size = max(job.batch_size, 256)
    chunks = list(_chunks(data, batch_size))
    with slot.lock:
        model = slot.model
        if not members:
            set_weights(model, weights)
            total = WeightedSum.of([], 0)
            for rows in chunks:
                features, labels = data.features(rows), data.y[rows]
                result = model.evaluate(features, labels, batch_size=batch_size, verbose=0, return_dict=True)
                total = total + WeightedSum.of([], len(labels), result)
            return total
        probabilities = []
        for member in weights:
            set_weights(model, member)
            predicted = [model.predict(data.features(rows), batch_size=batch_size, verbose=0) for rows in chunks]
            probabilities.append(np.concatenate(predicted))
    return WeightedSum.of([], data.rows, ensemble_metrics(np.mean(probabilities, axis=0), data.y, job.compile))


CHUNK_BYTES = 64 << 20  # float32 features scaled at once when evaluating


def _chunks(data: SegmentData, batch_size: int):
    """Slices of ``data``'s rows of about :data:`CHUNK_BYTES` of float32 features each (whole batches)."""
    row_bytes = 4 * int(np.prod(data.X.shape[1:], dtype=np.int64))
    step = max(1, CHUNK_BYTES // max(row_bytes, 1) // batch_size) * batch_size
    for start in range(0, data.rows, step):
        yield slice(start, start + step)


def ensemble_metrics(probabilities: np.ndarray, y: np.ndarray, compile_params: dict) -> dict[str, float]:
    """Loss and accuracy of averaged probabilities (the ensemble's prediction)."""
    import keras

    loss = keras.losses.get(compile_params.get("loss"))
    value = float(keras.ops.convert_to_numpy(keras.ops.mean(loss(y, probabilities))))
    predicted = probabilities.argmax(axis=-1)
    truth = y.argmax(axis=-1) if y.ndim > 1 else y
    return {"loss": value, "accuracy": float(np.mean(predicted == truth))}
