"""What a resumed fit starts from: the checkpoint's newest readable version, and its replicas' states.

- The same replicas (as many, with the same numbers): each continues from its own state,
  bitwise, as if the fit had not stopped.
- Another number of replicas (another number of workers with ``replicas=None``): each replica's
  optimizer starts from the row-by-row mean of the saved ones (Adam's moments averaged, its step
  count kept), at the start of its rows; EASGD's own weights restart from the center. An
  ensemble's members *are* its replicas, so an ensemble resumes only with as many.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import DataError, SchemaError
from ..models._fit_state import ReplicaState

logger = logging.getLogger("dasktrain")


def latest_readable(db, table: str, name: str):
    """The newest readable stored version of ``name``, as a ``TrainingResult``; None when none is saved yet.

    A newest version that cannot be read is passed over for the one before it, with a warning. When
    no saved version can be read, the fit stops: training afresh would prune versions a user may want.

    >>> latest_readable(None, "models", "never_saved") is None  # doctest: +SKIP
    True
    """
    from ..models._model_store import list_models, load_result

    try:
        versions = [m["version"] for m in list_models(db, table) if m["name"] == name]
    except SchemaError:
        versions = []  # no model table yet
    if not versions:
        logger.warning("fit: resume found no version of %r in %r: training from iteration 0", name, table)
        return None
    unreadable = []
    for version in sorted(versions, reverse=True):
        try:
            result = load_result(db, table, name, version)
        except (SchemaError, DataError) as exc:
            unreadable.append(f"version {version}: {exc}")
            continue
        if unreadable:
            logger.warning(
                "fit: resuming %r from version %d, the newest that can be read (%s)",
                name,
                version,
                "; ".join(unreadable),
            )
        return result
    raise DataError(
        f"Cannot resume {name!r} in {table!r}: no saved version can be read ({'; '.join(unreadable)}). "
        f"Delete them (dasktrain.delete_model) to train afresh, or resume under another name."
    )


def resumed_states(client, result, ids: Sequence[int], strategy) -> dict:
    """``{replica: future of its state}`` for the first round of a resumed fit (empty for a fresh one).

    Takes the states out of ``result`` (they are not kept with the model after the first round).
    """
    saved = result.replica_states or {}
    result.replica_states = None
    if not saved:
        return {}
    if set(saved) == set(ids):
        futures = client.scatter([saved[k] for k in ids], hash=False)
        return dict(zip(ids, futures, strict=True))
    if strategy.is_ensemble:
        raise DataError(
            f"The checkpoint is an ensemble of {len(saved)} members, one per replica, but this fit trains "
            f"{len(ids)} replicas: resume it with replicas={len(saved)}."
        )
    logger.warning(
        "fit: the checkpoint holds the state of %d replicas and this fit trains %d: each replica's optimizer "
        "starts from the mean of the saved ones",
        len(saved),
        len(ids),
    )
    mean = mean_state(list(saved.values()))
    shared = client.scatter([mean], hash=False)[0]
    return {k: shared for k in ids}


def mean_state(states: Sequence[ReplicaState]) -> ReplicaState:
    """One optimizer state, the mean of ``states`` variable by variable (whole-number variables rounded).

    >>> a = ReplicaState(3, [np.array(4), np.array([1.0, 2.0])])
    >>> b = ReplicaState(3, [np.array(6), np.array([3.0, 2.0])])
    >>> [v.tolist() for v in mean_state([a, b]).optimizer]
    [5, [2.0, 2.0]]
    """
    optimizer = []
    for values in zip(*(s.optimizer for s in states), strict=True):
        mean = np.mean(np.stack([np.asarray(v, np.float64) for v in values]), axis=0)
        dtype = np.asarray(values[0]).dtype
        optimizer.append((np.rint(mean) if dtype.kind in "iub" else mean).astype(dtype))
    return ReplicaState(states[0].iteration, optimizer)
