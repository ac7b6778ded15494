"""Scoring's work on the cluster: one task per segment, with a progress bar, and rows with non-finite features."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def finite_rows(X: np.ndarray, ids: np.ndarray | None, skip: bool, where: str) -> np.ndarray | None:
    """Which rows have only finite features: None when all do; else refuse, or with ``skip`` a mask.

    >>> finite_rows(np.array([[0.0], [np.nan]]), np.array([7, 8]), True, "segment 0").tolist()
    [True, False]
    """
    if not len(X):
        return None
    ok = np.isfinite(X.reshape(len(X), -1)).all(axis=1)
    if ok.all():
        return None
    if not skip:
        which = f"ids {ids[~ok][:5].tolist()}" if ids is not None else f"rows {np.flatnonzero(~ok)[:5].tolist()}"
        raise DataError(
            f"{where}: {int((~ok).sum())} row(s) have NaN or infinite features ({which}). Clean them, or pass "
            f"skip_nonfinite=True (--skip-nonfinite) to skip and count them."
        )
    return ok


def run_segments(tasks: list, client, progress: bool, label: str, placed: dict | None = None) -> list:
    """Compute one task per segment on the cluster with a progress bar; return their results.

    ``placed``: task options from :func:`~dasktrain.runtime._placement.task_options` (GPU workers only).
    """
    from tqdm.auto import tqdm

    from ..runtime._cluster import client_or_local
    from ..runtime._guard import gather, wait_for_workers

    if not tasks:
        return []
    with client_or_local(client) as client:
        wait_for_workers(client, label)
        futures = client.compute(tasks, **(placed or {}))
        try:
            with tqdm(total=len(futures), unit="segment", desc=label, disable=not progress) as bar:
                return gather(client, futures, [f"segment {k}" for k in range(len(futures))], label, bar=bar)
        finally:
            # Release the tasks now: results lost with a worker later are not recomputed for nothing.
            for future in futures:
                future.release()
