"""TensorFlow's "triggered tf.function retracing" warning, silenced on the workers of a search.

A search builds one Keras model per configuration on each worker, and each traces its train and
test functions once (twice when a part ends in a smaller batch): nothing retraces in a loop. But
TensorFlow counts traces per *code object* (``Function._get_key_for_call_stats``), and every Keras
model's functions share one (``TensorFlowTrainer._make_function``'s ``multi_step_on_iterator``), so
five configurations' first evaluations read as "5 out of the last 5 calls ... triggered tf.function
retracing", a warning that names no fault and has no fix. Only that message is dropped.
"""

from __future__ import annotations

import logging

from distributed import WorkerPlugin

RETRACING = "triggered tf.function retracing"


class _DropRetracing(logging.Filter):
    """Drop TensorFlow's frequent-retracing warning; let every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


def quiet_retracing() -> None:
    """Add the filter to the ``tensorflow`` logger of this process, once.

    >>> quiet_retracing(); quiet_retracing()
    >>> sum(isinstance(f, _DropRetracing) for f in logging.getLogger("tensorflow").filters)
    1
    """
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropRetracing) for f in logger.filters):
        logger.addFilter(_DropRetracing())


class QuietRetracing(WorkerPlugin):
    """Silences the retracing warning on every worker, those that join later included."""

    name = "dasktrain-quiet-retracing"

    def setup(self, worker) -> None:
        quiet_retracing()


def has_quiet_retracing(dask_worker=None) -> bool:
    return QuietRetracing.name in dask_worker.plugins


def silence_retracing(client) -> None:
    """Register :class:`QuietRetracing` on the cluster unless every worker has it."""
    if not all(client.run(has_quiet_retracing).values()):
        client.register_plugin(QuietRetracing())
