"""``fit``: per-segment Keras training on Dask workers, merged each round by a cluster-side reducer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from . import _worker
from ._architectures import get_architecture
from ._cluster import client_or_local
from ._early_stopping import EarlyStopping
from ._model_spec import model_json, unflatten_weights, weight_shapes
from ._params import COMPILE_KEYS, FIT_KEYS, parse_params
from ._reducer import tree_reduce
from ._result import TrainingResult
from .errors import DataError, SchemaError
from .strategies import Averaging, Strategy


def fit(
    data,
    model,
    *,
    x: str | Sequence[str],
    y: str,
    compile,
    fit=None,
    iterations: int,
    strategy: Strategy | None = None,
    validation=None,
    metrics_every: int = 1,
    initial_weights=None,
    sync_every: int | None = None,
    early_stopping=None,
    normalizing_const: float = 1.0,
    checkpoint: tuple | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    client=None,
    db=None,
    progress: bool = True,
) -> TrainingResult:
    """Train a Keras model on every segment of the data in parallel, merging the models each round.

    Each iteration, every partition (segment) trains locally on the worker that holds it — one
    pass over its rows by default — then the cluster merges the segments' models with
    ``strategy``. Partitions are read once per ``fit`` and stay in worker memory. Each worker
    process builds the Keras model once and reuses it; only weights change between rounds. Each
    segment keeps its own optimizer state (Adam's moments, say) across rounds, as MADlib's fit
    does; it is not saved in checkpoints.

    Parameters
    ----------
    data : dask.dataframe.DataFrame or str
        The training data, or a table name read with :func:`read_table` from ``db``.
    model : keras.Model, str, or (str, int)
        A model, its JSON, or ``(architecture_table, model_id)`` from :func:`load_architecture`.
    x : str or list of str
        Feature column: a tensor column, or several plain numeric columns.
    y : str
        Label column: integer class labels (use a ``sparse_*`` loss) or one-hot rows.
    compile : dict or str
        Keras compile arguments, or a MADlib-style string such as
        ``"optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"``
        (parsed as literals, never evaluated).
    fit : dict or str, optional
        Keras fit arguments: ``batch_size`` (default 32), ``epochs`` per round (default 1), ``shuffle``.
    iterations : int
        Number of rounds.
    strategy : Strategy, default Averaging()
        :class:`Averaging`, :class:`EASGD`, :class:`Ensemble` or :class:`Centralized`.
    validation : dask.dataframe.DataFrame or str, optional
        Data evaluated with the merged model every ``metrics_every`` iterations (and at the last).
    metrics_every : int, default 1
    initial_weights : list of numpy.ndarray, optional
        Starting weights. Default: the model's own (or the architecture table's stored weights).
    sync_every : int, optional
        Make a round ``sync_every`` minibatches per segment instead of a whole pass.
    early_stopping : EarlyStopping or dict, optional
        Stop when the monitored loss stops improving.
    normalizing_const : float, default 1.0
        Features are divided by it (255 for 8-bit images); recorded for scoring.
    checkpoint : (db, table, name), optional
        Save the state every ``checkpoint_every`` iterations as a new version of ``name``.
    resume : bool, default False
        Continue from the latest checkpoint of ``checkpoint`` instead of iteration 0.
    client : distributed.Client, optional
        Default: the current client, else a local cluster from :func:`cluster` for this call.
    db : Database or str, optional
        Where table names (data, validation, architecture table) are read from.
    progress : bool, default True
        Show a progress bar with the loss, the first metric and the time left.

    Returns
    -------
    TrainingResult

    Examples
    --------
    >>> import dasktrain, keras
    >>> model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> result = dasktrain.fit("digits", model, x="x", y="y", iterations=5,
    ...     compile="optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']",
    ...     normalizing_const=16.0)  # doctest: +SKIP
    >>> result.metric("accuracy")[-1] > 0.8  # doctest: +SKIP
    True
    """
    plan = _Plan.build(**locals())
    return plan.run()


class _Plan:
    """Everything checked and resolved before any work starts, then the training loop."""

    @classmethod
    def build(cls, **kw) -> _Plan:
        self = cls()
        self.iterations = _positive_int(kw["iterations"], "iterations")
        self.metrics_every = _positive_int(kw["metrics_every"], "metrics_every")
        self.checkpoint_every = _positive_int(kw["checkpoint_every"], "checkpoint_every")
        self.sync_every = None if kw["sync_every"] is None else _positive_int(kw["sync_every"], "sync_every")
        self.strategy = Averaging() if kw["strategy"] is None else kw["strategy"]
        if not isinstance(self.strategy, Strategy):
            raise TypeError(
                f"Expected strategy=Averaging(), EASGD(...), Ensemble() or Centralized(). Received: {self.strategy!r}"
            )
        self.strategy.validate()
        self.early = EarlyStopping.of(kw["early_stopping"])
        self.compile_params = parse_params(kw["compile"], what="compile", allowed=COMPILE_KEYS)
        if "loss" not in self.compile_params:
            raise DataError("compile= needs a loss, e.g. loss='sparse_categorical_crossentropy'.")
        self.fit_params = parse_params(kw["fit"], what="fit", allowed=FIT_KEYS)
        self.batch_size = _positive_int(self.fit_params.get("batch_size", 32), "batch_size")
        self.epochs = _positive_int(self.fit_params.get("epochs", 1), "epochs")
        norm = kw["normalizing_const"]
        if isinstance(norm, bool) or not isinstance(norm, int | float) or not norm > 0:
            raise DataError(f"Expected a positive normalizing_const. Received: normalizing_const={norm!r}")
        self.normalizing_const = float(norm)
        self.x, self.y = kw["x"], kw["y"]
        self.progress = kw["progress"]
        self.checkpoint, self.resume = kw["checkpoint"], kw["resume"]
        if self.checkpoint is not None and (not isinstance(self.checkpoint, tuple) or len(self.checkpoint) != 3):
            raise TypeError(f"Expected checkpoint=(db, table, name). Received: checkpoint={self.checkpoint!r}")
        if self.resume and self.checkpoint is None:
            raise DataError("resume=True needs checkpoint=(db, table, name) to resume from.")
        self.db = kw["db"]
        self._resolve_model(kw["model"], kw["initial_weights"])
        self.data, self.source_table = self._frame(kw["data"], "data")
        self.validation, self.validation_table = (None, None)
        if kw["validation"] is not None:
            self.validation, self.validation_table = self._frame(kw["validation"], "validation")
        self.client = kw["client"]
        return self

    # -- resolving inputs --------------------------------------------------------------------------

    def _resolve_model(self, model, initial_weights) -> None:
        self.model_arch_table = self.model_id = None
        stored = None
        if isinstance(model, tuple):
            if len(model) != 2:
                raise TypeError(f"Expected model=(architecture_table, model_id). Received: {model!r}")
            self.model_arch_table, self.model_id = model
            self.architecture, stored = get_architecture(self.db, *model)
        else:
            self.architecture = model_json(model)
        try:
            built = _worker.compiled_model(self.architecture, self.compile_params)
        except DataError:
            raise
        except Exception as exc:  # unknown optimizer, loss or metric names
            raise DataError(f"Keras cannot compile the model with compile={self.compile_params!r}: {exc}") from None
        shapes = weight_shapes(built)
        if initial_weights is not None:
            weights = [np.asarray(w, dtype=np.float32) for w in initial_weights]
            got = [w.shape for w in weights]
            if got != shapes:
                raise DataError(f"initial_weights have shapes {got}; the model's weights are {shapes}.")
        elif stored is not None:
            weights = unflatten_weights(stored, shapes)
        elif not isinstance(model, str | tuple | dict | bytes):
            weights = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
        else:
            weights = [np.asarray(w, dtype=np.float32) for w in built.get_weights()]
        self.initial_weights = weights
        self.input_shape = tuple(built.inputs[0].shape[1:])
        self.output_shape = tuple(built.outputs[0].shape[1:])

    def _frame(self, data, role: str):
        import dask.dataframe as dd

        if isinstance(data, str):
            from ._read import read_table

            columns = [*([self.x] if isinstance(self.x, str) else self.x), self.y]
            return read_table(self.db, data, columns=columns), data
        if not isinstance(data, dd.DataFrame):
            raise TypeError(f"Expected {role} as a dask DataFrame or a table name. Received: {type(data).__name__}")
        for column in [*([self.x] if isinstance(self.x, str) else self.x), self.y]:
            if column not in data.columns:
                raise SchemaError(
                    f"{role} has no column {column!r}. Available columns: {', '.join(map(str, data.columns))}."
                )
        return data, None

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        with client_or_local(self.client) as client:
            return self._run(client)

    def _run(self, client) -> TrainingResult:
        if not all(client.run(_worker.has_plugin).values()):
            client.register_plugin(_worker.TrainingWorker())
        result = self._start_result()
        start_iteration = len(result.history)
        elapsed_before = result.history[-1]["elapsed"] if result.history else 0.0
        job = _worker.Job(
            fit_id=uuid.uuid4().hex,
            architecture=self.architecture,
            compile=self.compile_params,
            batch_size=self.batch_size,
            epochs=self.epochs,
            sync_every=self.sync_every,
            shuffle=bool(self.fit_params.get("shuffle", True)),
        )
        train = self.data.repartition(npartitions=1) if self.strategy.centralized else self.data
        segments, workers, stats = self._prepare(client, train)
        self._check(stats, "data")
        result.num_rows = sum(s.rows for s in stats)
        result.num_segments = len(stats)
        result.class_values = _class_values(stats, self.output_shape)
        validation = []
        if self.validation is not None:
            validation, _, vstats = self._prepare(client, self.validation)
            self._check(vstats, "validation")

        n = len(segments)
        center = client.scatter([result.weights], hash=False)[0]
        members = result.members if self.strategy.is_ensemble and len(result.members) == n else None
        starts = client.scatter(members, hash=False) if members else [center] * n
        bar = _progress_bar(self.iterations, start_iteration, self.progress)
        clock = time.perf_counter()
        try:
            for iteration in range(start_iteration + 1, self.iterations + 1):
                starts, center, model_state, training = self._round(client, job, segments, workers, starts, center)
                evaluate = bool(validation) and (iteration % self.metrics_every == 0 or iteration == self.iterations)
                wanted = [training]
                if evaluate:
                    wanted.append(self._evaluation(client, job, validation, model_state))
                metrics = client.gather(wanted)
                entry = {
                    "iteration": iteration,
                    "elapsed": elapsed_before + time.perf_counter() - clock,
                    "training": metrics[0],
                    "validation": metrics[1] if evaluate else None,
                }
                result.history.append(entry)
                bar.set_postfix(_postfix(entry), refresh=False)
                bar.update(1)
                stop = self.early is not None and self.early.update(self._monitored(entry))
                if self.checkpoint and (iteration % self.checkpoint_every == 0 or stop):
                    self._save_checkpoint(client, result, model_state)
                if stop:
                    result.stopped_early = True
                    break
            result.members = self._final_members(
                client, model_state if result.history[start_iteration:] else None, result
            )
        finally:
            bar.close()
            client.run(_worker.forget_fit, job.fit_id)
        result.end_time = datetime.now().astimezone()
        return result

    def _round(self, client, job, segments, workers, starts, center):
        """Submit one round: local training, the reducer tree, the strategy's updates (all futures)."""
        strategy, n = self.strategy, len(segments)
        locals_ = [
            client.submit(_worker.train_segment, segments[i], starts[i], job, i, workers=[workers[i]], pure=False)
            for i in range(n)
        ]
        total = tree_reduce(client, locals_, _worker.merge)
        training = client.submit(_worker.round_metrics, total, pure=False)
        if strategy.is_ensemble:  # members stay apart; they are only collected for validation and the end
            starts = [
                client.submit(_worker.new_local, local, None, strategy, workers=[w], pure=False)
                for local, w in zip(locals_, workers, strict=True)
            ]
            return starts, center, client.submit(_worker.collect, *starts, pure=False), training
        center = client.submit(_worker.new_center, total, center, strategy, pure=False)
        if strategy.keeps_local_weights:  # EASGD: each segment pulled towards the new center
            starts = [
                client.submit(_worker.new_local, local, center, strategy, workers=[w], pure=False)
                for local, w in zip(locals_, workers, strict=True)
            ]
        else:
            starts = [center] * n
        return starts, center, center, training

    def _evaluation(self, client, job, validation, model_state):
        """Submit the merged model's evaluation on every validation segment, reduced by rows."""
        evals = [
            client.submit(_worker.evaluate_segment, v, model_state, job, self.strategy.is_ensemble, pure=False)
            for v in validation
        ]
        return client.submit(_worker.round_metrics, tree_reduce(client, evals, _worker.merge), pure=False)

    def _start_result(self) -> TrainingResult:
        if self.resume:
            from ._model_store import load_result

            db, table, name = self.checkpoint
            try:
                result = load_result(db, table, name)
            except SchemaError:
                result = None  # nothing saved yet: start from iteration 0
            if result is not None:
                saved = [w.shape for w in result.weights]
                if saved != [w.shape for w in self.initial_weights]:
                    raise DataError(
                        f"Checkpoint {name!r} in {table!r} holds weights of shapes {saved}, which this model "
                        f"cannot take: resume with the model that was checkpointed."
                    )
                result.architecture = self.architecture
                result.strategy = self.strategy
                result.fit_params, result.compile_params = self.fit_params, self.compile_params
                self._describe(result)
                return result
        result = TrainingResult(
            architecture=self.architecture,
            members=[self.initial_weights],
            strategy=self.strategy,
            compile_params=self.compile_params,
            fit_params=self.fit_params,
            start_time=datetime.now().astimezone(),
        )
        self._describe(result)
        return result

    def _describe(self, result: TrainingResult) -> None:
        result.normalizing_const = self.normalizing_const
        result.source_table = self.source_table
        result.x, result.y = self.x, self.y
        result.validation_table = self.validation_table
        result.metrics_every = self.metrics_every
        result.model_arch_table, result.model_id = self.model_arch_table, self.model_id

    def _prepare(self, client, frame):
        """Read each partition once into float32 arrays on a worker; return futures, their workers, stats."""
        from distributed import wait

        partitions = client.compute(frame.to_delayed())
        segments = [
            client.submit(
                _worker.prepare_segment, p, self.x, self.y, self.input_shape, self.normalizing_const, pure=False
            )
            for p in partitions
        ]
        stats = client.gather([client.submit(_worker.segment_stats, s, pure=False) for s in segments])
        wait(segments)
        holders = client.who_has(segments)
        workers = [sorted(holders[s.key])[0] for s in segments]
        del partitions
        return segments, workers, stats

    def _check(self, stats, role: str) -> None:
        """Refuse bad data before training starts, naming the segment and the fix."""
        loss = str(self.compile_params.get("loss", ""))
        classes = self.output_shape[-1] if self.output_shape else 1
        for k, s in enumerate(stats):
            where = f"{role} segment {k}"
            if s.rows == 0:
                raise DataError(f"{where} is empty: load the table with fewer segments, or drop empty partitions.")
            if s.x_shape != self.input_shape:
                raise DataError(f"{where}: x has shape {s.x_shape} per row; the model's input is {self.input_shape}.")
            if not s.finite:
                raise DataError(f"{where}: x has NaN or infinite values; clean or filter them before training.")
            if s.label_kind == "sparse":
                if "sparse" not in loss and "categorical" in loss:
                    raise DataError(
                        f"{where}: y holds integer class labels but loss={loss!r} expects one-hot rows; "
                        f"use loss='sparse_categorical_crossentropy' or one-hot labels."
                    )
                bad = [c for c in s.classes if not 0 <= c < classes] if "sparse" in loss else []
                if bad:
                    raise DataError(
                        f"{where}: labels {bad[:5]} are outside the model's {classes} classes (0..{classes - 1})."
                    )
            else:
                if "sparse" in loss:
                    raise DataError(f"{where}: y holds one-hot rows but loss={loss!r} expects integer labels.")
                if s.label_shape != self.output_shape:
                    raise DataError(
                        f"{where}: y has shape {s.label_shape} per row; the model outputs {self.output_shape}."
                    )

    def _monitored(self, entry: dict) -> float:
        monitor = self.early.monitor or ("validation_loss" if self.validation is not None else "training_loss")
        part = entry["validation"] if monitor == "validation_loss" else entry["training"]
        if part is None:  # validation not computed this iteration: judge on training loss
            part = entry["training"]
        return part["loss"]

    def _final_members(self, client, model_state, result: TrainingResult):
        if model_state is None:
            return result.members
        state = client.gather(model_state)
        return state if self.strategy.is_ensemble else [state]

    def _save_checkpoint(self, client, result: TrainingResult, model_state) -> None:
        from ._model_store import CHECKPOINT, save_model

        db, table, name = self.checkpoint
        result.members = self._final_members(client, model_state, result)
        result.end_time = datetime.now().astimezone()
        save_model(db, table, result, name=name, status=CHECKPOINT)


def _positive_int(value, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"Expected a positive integer {label}. Received: {label}={value!r}")
    return int(value)


def _class_values(stats, output_shape) -> list:
    if stats and stats[0].label_kind == "sparse":
        return sorted({c for s in stats for c in s.classes})
    return list(range(output_shape[-1])) if output_shape else []


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="fit", unit="it", disable=not enabled, leave=True)


def _postfix(entry: dict) -> dict:
    out = {}
    for part, prefix in (("training", ""), ("validation", "val_")):
        for name, value in list((entry.get(part) or {}).items())[:2]:
            out[prefix + name] = f"{value:.4f}"
    return out
