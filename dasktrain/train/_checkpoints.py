"""A fit's checkpoints: its name held for the whole fit, each version saved with the replicas' states, and pruned."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from .._names import TableName
from ..errors import DasktrainError
from ..models._result import TrainingResult
from ..runtime._guard import WorkersLost, gather
from . import _worker
from ._cluster_segments import release_pending

logger = logging.getLogger("dasktrain")


class Checkpoints:
    """The checkpoints of one :func:`fit` run (``plan.checkpoint``: ``(db, table, name)`` or None)."""

    def __init__(self, plan, client):
        self.plan, self.client = plan, client
        self.last: tuple[str, str, int] | None = None  # (table, name, version) of the newest saved
        self.saved = 0  # versions this run has saved

    @contextlib.contextmanager
    def held(self):
        """Hold the checkpoint's name for the whole fit: two fits saving (and pruning) one checkpoint
        delete each other's versions (issue 22), so the second is refused before any work."""
        if self.plan.checkpoint is None:
            yield
            return
        from ..io._database import connect
        from ..io._locks import hold_checkpoint

        db, table, name = self.plan.checkpoint
        holder = connect(db).connection()
        try:
            holder.autocommit = True
            with holder.cursor() as cur:
                if not hold_checkpoint(cur, TableName.parse(table), name):
                    raise DasktrainError(
                        f"Another fit is saving checkpoint {name!r} in {str(table)!r} now: wait for it to end, or "
                        f"checkpoint this one under another name."
                    )
            yield
        finally:
            holder.close()  # the lock goes with the session

    def save(self, result: TrainingResult, iteration: int, replicas: list, fit_id: str) -> None:
        """Save ``result`` after ``iteration`` as the next checkpoint version, with every replica's state."""
        from ..models._model_store import CHECKPOINT, save_model

        db, table, name = self.plan.checkpoint
        result.end_time = datetime.now().astimezone()
        keep = self.plan.checkpoint_keep
        # Older versions go only once this run has saved as many of its own: the one it resumed
        # from stays while the newer ones may be unreadable (issue 22), and so do an earlier run's.
        version = save_model(
            db, table, result, name=name, status=CHECKPOINT, keep=keep if keep and self.saved + 1 >= keep else None,
            replica_states=self._replica_states(iteration, replicas, fit_id),
        )  # fmt: skip
        self.saved += 1
        self.last = (str(table), name, version)

    def _replica_states(self, iteration: int, replicas: list, fit_id: str) -> dict | None:
        """Every replica's state after ``iteration``, fetched from the workers holding them.

        None when a worker was lost meanwhile: the checkpoint then keeps the model only, and a
        resume starts the replicas' optimizers afresh.
        """
        client = self.client
        futures = [client.submit(_worker.export_state, fit_id, r.id, iteration, workers=[r.worker], pure=False)
                   for r in replicas]  # fmt: skip
        try:
            states = gather(client, futures, [f"replica {r.id}" for r in replicas], "fit",
                            watch={r.worker for r in replicas})  # fmt: skip
        except WorkersLost:
            release_pending(futures)  # pinned to the lost worker, they would wait there for good
            logger.warning("fit: iteration %d: a worker left; this checkpoint keeps no optimizer state", iteration)
            return None
        if any(s is None for s in states):
            return None
        return {r.id: s for r, s in zip(replicas, states, strict=True)}

    def note(self) -> str:
        """Where the last checkpoint is, for the error that ends a fit."""
        if self.last is None:
            if self.plan.checkpoint is None:
                return "No checkpoint was kept: pass checkpoint=(db, table, name) to keep progress."
            return "No checkpoint was saved yet in this run."
        table, name, version = self.last
        return f"The last checkpoint is version {version} of {name!r} in {table!r}: continue with resume=True."
