"""``fit``: Keras training of replicas on Dask workers, merged each round by a cluster-side reducer."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from .._keras_config import cause, check_compile
from .._model_spec import compiled_model, model_json, unflatten_weights, weight_shapes
from .._names import identifier
from .._params import (
    COMPILE_KEYS,
    FIT_KEYS,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_ITERATIONS,
    MAX_RETRIES,
    boolean,
    bounded_repr,
    parse_params,
    positive_int,
    refuse_unsupported_fit,
)
from ..errors import DataError, SchemaError
from ..models._architectures import get_architecture
from ..models._result import TrainingResult
from ..runtime._cluster import client_or_local
from ..strategies import SlowMo, Strategy
from ._cache import check_cache
from ._checks import check_read_columns, check_stats, is_text, refuse_text_features
from ._class_weights import class_weight_table
from ._early_stopping import EarlyStopping
from ._labels import check_classes, label_classes
from ._replicas import check_replicas
from ._resume import latest_readable


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
    replicas: int | str | None = None,
    validation=None,
    metrics_every: int = 1,
    initial_weights=None,
    sync_every: int | None = None,
    early_stopping=None,
    normalizing_const: float = 1.0,
    checkpoint: tuple | None = None,
    checkpoint_every: int = 1,
    checkpoint_keep: int | None = 2,
    resume: bool = False,
    retries: int = 2,
    seed: int | None = None,
    use_gpus: bool | None = None,
    cache: str = "auto",
    client=None,
    db=None,
    progress: bool = True,
) -> TrainingResult:
    """Train a Keras model on the data in parallel, one replica per worker, merging the replicas each round.

    The data is read once per ``fit``, one partition per database segment, and stays in worker
    memory (or on the workers' disks). The segments are grouped into *replicas*, rows evened out:
    by default one per worker that trains, whatever the number of segments. Each iteration, every
    replica trains on its segments' rows as one stream, shuffled together (one pass by default),
    on the worker holding them; then the cluster merges the replicas' models with ``strategy``.
    Each worker process builds the Keras model once and reuses it; only weights change between
    rounds. Each replica keeps its own optimizer state (Adam's moments, say) across rounds, saved
    with checkpoints. Empty segments are skipped. When the table has fewer segments than
    replicas, its segments are read in several parts (block ranges), so that every worker trains.

    A worker lost during a round costs a retry of that round: its segments are read again from
    the database on a live worker, and its replicas train there from the last merged model (with
    a fresh optimizer state); every row is counted once per round.

    Parameters
    ----------
    data : dask.dataframe.DataFrame or str
        The training data, or a table name read with :func:`read_table` from ``db``.
    model : keras.Model, str, or (str, int)
        A model, its JSON, or ``(architecture_table, model_id)`` from :func:`load_architecture`.
    x : str or list of str
        Feature column: a tensor column, or several plain numeric columns (a list, or names joined
        by commas), one feature each.
    y : str
        Label column: integer class labels (use a ``sparse_*`` loss), one-hot rows, or text or
        boolean classes, numbered by their sorted values as MADlib does (``result.class_values``
        keeps them, and scoring writes them back).
    compile : dict or str
        Keras compile arguments, or a MADlib-style string such as
        ``"optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"``
        (parsed as literals, never evaluated).
    fit : dict or str, optional
        Keras fit arguments: ``batch_size`` (default 32), ``epochs`` per round (default 1), ``shuffle``
        (True or False, default True) and ``class_weight``, a dict ``{class: weight}`` weighing each
        row's loss by its class (for text or boolean labels, the keys are the class values).
        ``validation_split``, ``verbose`` and ``sample_weight`` are refused: pass ``validation=``
        and ``progress=`` instead (weighing rows by a column is not supported yet).
    iterations : int
        Number of rounds.
    strategy : Strategy, default SlowMo()
        :class:`SlowMo` (averaging with outer Nesterov momentum and the replicas' learning rate
        scaled by their number: the default, which matches one process's accuracy per epoch best),
        :class:`Averaging`, :class:`EASGD`, :class:`Ensemble` or :class:`Centralized`.
    replicas : None, int or "segments", default None
        How many models train in parallel each round. None: one per worker that trains (per GPU
        worker on GPUs). An int: that many, the segments grouped with their rows evened out.
        ``"segments"``: one per segment, as MADlib does (with many segments, less accurate per
        epoch and slower; kept for comparison). Recorded in the summary as ``num_replicas``.
    validation : dask.dataframe.DataFrame or str, optional
        Data evaluated with the merged model every ``metrics_every`` iterations (and at the last).
    metrics_every : int, default 1
    initial_weights : list of numpy.ndarray, optional
        Starting weights. Default: the model's own (or the architecture table's stored weights).
    sync_every : int, optional
        Make a round ``sync_every`` minibatches per replica instead of a whole pass.
    early_stopping : EarlyStopping, dict or int, optional
        Stop when the monitored loss stops improving: an :class:`EarlyStopping`, a dict of its
        parameters, or an int, its patience.
    normalizing_const : float, default 1.0
        Features are divided by it (255 for 8-bit images); recorded for scoring.
    checkpoint : (db, table, name), optional
        Save the state every ``checkpoint_every`` iterations as a new version of ``name``. The
        table is checked before training starts.
    checkpoint_keep : int or None, default 2
        Keep only the newest ``checkpoint_keep`` checkpoint versions of ``name`` (final versions are
        never deleted); None keeps them all. Older ones are pruned only once this fit has saved
        ``checkpoint_keep`` of its own: the version a fit resumed from is never pruned to make room.
    resume : bool, default False
        Continue from the latest checkpoint of ``checkpoint`` instead of iteration 0 (with a
        warning when nothing is saved yet; from the newest readable version, saying so, when the
        newest cannot be read). With as many replicas as were checkpointed, each continues from
        its own optimizer state; with another number (say, another number of workers), each
        starts from the mean of the saved states.
    retries : int, default 2
        How many times a round may be retried after losing workers before ``fit`` gives up with
        :class:`~dasktrain.errors.SegmentFailedError` naming the segments and the last checkpoint.
    seed : int, optional
        Seeds each round's shuffle of each replica (from ``seed``, the replica and the iteration),
        so that a run, or a resumed run with the same replicas, replays the same order. Default:
        Keras's own shuffling.
    use_gpus : bool, optional
        True: read and train every segment on GPU workers (those with a ``GPU`` resource), an error
        before any work if there are none; False: on any worker; None (default): True when the
        cluster has GPU workers. The devices used are saved in the model's summary row.
    cache : "auto", "memory" or "disk", default "auto"
        Where each worker keeps its segments between rounds. "memory": in their stored dtype (a
        fit adds about 1.5× their raw size). "disk": each segment's features are streamed from the
        database into a file in the worker's local directory and read a batch at a time, so a
        segment larger than the worker's memory trains (``data`` must be a table name, and rows
        of one fixed width). "auto": disk when the catalog's row estimates say the segments would
        not fit below Dask's spill threshold, else memory.
    client : distributed.Client, optional
        Default: the current client, else a local cluster from :func:`cluster` for this call.
    db : Database or str, optional
        Where table names (data, validation, architecture table) are read from.
    progress : bool, default True
        Show a progress bar with the loss, the first metric and the time left.

    Returns
    -------
    TrainingResult

    Raises
    ------
    DataError
        Bad input, found before training starts; :class:`~dasktrain.errors.TrainingDivergedError`
        when the loss becomes NaN or infinite (naming the iteration and replica).
    ClusterError
        No workers within ``dasktrain.worker-timeout``, or a round that failed ``retries + 1`` times.

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

    folds: tuple | None = None  # (id column, k): each row's cross-validation fold (fit_multiple(folds=k))

    @classmethod
    def build(cls, **kw) -> _Plan:
        self = cls()
        self.iterations = positive_int(kw["iterations"], "iterations", maximum=MAX_ITERATIONS)
        self.metrics_every = positive_int(kw["metrics_every"], "metrics_every")
        self.checkpoint_every = positive_int(kw["checkpoint_every"], "checkpoint_every")
        keep = kw["checkpoint_keep"]
        self.checkpoint_keep = None if keep is None else positive_int(keep, "checkpoint_keep")
        retries = kw["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int | np.integer) or not 0 <= retries <= MAX_RETRIES:
            raise DataError(
                f"Expected retries as a whole number from 0 to {MAX_RETRIES}. Received: retries={bounded_repr(retries)}"
            )
        self.retries = int(retries)
        seed = kw["seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise DataError(f"Expected seed as a whole number >= 0 or None. Received: seed={bounded_repr(seed)}")
        self.seed = None if seed is None else int(seed)
        self.sync_every = None if kw["sync_every"] is None else positive_int(kw["sync_every"], "sync_every")
        self.strategy = SlowMo() if kw["strategy"] is None else kw["strategy"]
        if not isinstance(self.strategy, Strategy):
            raise TypeError(
                f"Expected strategy=SlowMo(...), Averaging(), EASGD(...), Ensemble() or Centralized(). "
                f"Received: {bounded_repr(self.strategy)}"
            )
        self.strategy.validate()
        self.replicas = check_replicas(kw["replicas"])
        if self.replicas is not None and self.strategy.centralized:
            raise DataError(
                f"Centralized() trains one model on one worker: leave replicas unset. Received: "
                f"replicas={bounded_repr(self.replicas)}"
            )
        self.early = EarlyStopping.of(kw["early_stopping"])
        self._set_params(kw["compile"], kw["fit"])
        norm = kw["normalizing_const"]
        if isinstance(norm, bool) or not isinstance(norm, int | float) or not norm > 0:
            raise DataError(f"Expected a positive normalizing_const. Received: normalizing_const={bounded_repr(norm)}")
        self.normalizing_const = float(norm)
        x = kw["x"]  # plain columns may come joined by commas, as MADlib's independent_varname and --x do
        self.x = [c.strip() for c in x.split(",")] if isinstance(x, str) and "," in x else x
        self.y = kw["y"]
        if self.y in self.features:
            raise DataError(
                f"y={bounded_repr(self.y)} is also a feature (x={bounded_repr(self.x)}): the label column cannot be "
                f"an input of its model."
            )
        self.progress = boolean(kw["progress"], "progress")
        self.checkpoint, self.resume = kw["checkpoint"], boolean(kw["resume"], "resume")
        if self.checkpoint is not None and (not isinstance(self.checkpoint, tuple) or len(self.checkpoint) != 3):
            raise TypeError(
                f"Expected checkpoint=(db, table, name). Received: checkpoint={bounded_repr(self.checkpoint)}"
            )
        if self.resume and self.checkpoint is None:
            raise DataError("resume=True needs checkpoint=(db, table, name) to resume from.")
        self.db = kw["db"]
        if self.checkpoint is not None:
            from ..models._model_store import check_model_table

            db, table, name = self.checkpoint
            identifier(name, what="model")
            check_model_table(db, table)
        self.cache = check_cache(kw["cache"], kw["data"], self.strategy.centralized)
        # The tables first: a wrong name or column is refused in a second, before Keras builds the model.
        self.data, self.source_table = self._frame(kw["data"], "data")
        self.validation, self.validation_table = (None, None)
        if kw["validation"] is not None:
            self.validation, self.validation_table = self._frame(kw["validation"], "validation")
        check_compile(self.compile_params)  # after the tables (it imports Keras), before any work
        self._resolve_model(kw["model"], kw["initial_weights"])
        self.classes, self.label_type = label_classes(self.data, self.y)
        check_classes(self.classes, self.output_shape, str(self.compile_params.get("loss", "")), self.y)
        self._set_class_weights()
        self.client = kw["client"]
        self.use_gpus = kw["use_gpus"]
        if self.use_gpus not in (True, False, None):
            raise TypeError(f"Expected use_gpus=True, False or None. Received: use_gpus={bounded_repr(self.use_gpus)}")
        return self

    def for_config(self, model, compile, fit) -> _Plan:
        """This plan, for another model and compile and fit parameters on the same data
        (:func:`dasktrain.fit_multiple`'s configurations: the data is planned once)."""
        plan = copy.copy(self)
        plan._set_params(compile, fit)
        check_compile(plan.compile_params)
        plan._resolve_model(model, None)
        plan._set_class_weights()
        return plan

    def job(self, fit_id: str, **extra):
        """What every training task of this plan needs (a :class:`_worker.Job`)."""
        from ._worker import Job

        return Job(fit_id=fit_id, architecture=self.architecture, compile=self.compile_params,
                   batch_size=self.batch_size, epochs=self.epochs, shuffle=self.shuffle, seed=self.seed,
                   class_weights=self.class_weights, **extra)  # fmt: skip

    # -- resolving inputs --------------------------------------------------------------------------

    def _set_params(self, compile, fit) -> None:
        self.compile_params = parse_params(compile, what="compile", allowed=COMPILE_KEYS)
        if "loss" not in self.compile_params:
            raise DataError("compile= needs a loss, e.g. loss='sparse_categorical_crossentropy'.")
        self.fit_params = parse_params(fit, what="fit", allowed=FIT_KEYS)
        refuse_unsupported_fit(self.fit_params)
        self.shuffle = boolean(self.fit_params.get("shuffle", True), "shuffle")
        self.batch_size = positive_int(self.fit_params.get("batch_size", 32), "batch_size", maximum=MAX_BATCH_SIZE)
        self.epochs = positive_int(self.fit_params.get("epochs", 1), "epochs", maximum=MAX_EPOCHS)

    def _set_class_weights(self) -> None:
        """fit's ``class_weight`` as one weight per class number, for the workers' batches (checked once the
        label's classes and the model's outputs are known, before any work)."""
        self.class_weights = class_weight_table(self.fit_params.get("class_weight"), self.classes, self.output_shape,
                                                self.y)  # fmt: skip

    def _resolve_model(self, model, initial_weights) -> None:
        self.model_arch_table = self.model_id = None
        stored = None
        if isinstance(model, tuple):
            if len(model) != 2:
                raise TypeError(f"Expected model=(architecture_table, model_id). Received: {bounded_repr(model)}")
            self.model_arch_table, self.model_id = model
            self.architecture, stored = get_architecture(self.db, *model)
        else:
            self.architecture = model_json(model)
        try:
            built = compiled_model(self.architecture, self.compile_params)
        except DataError:
            raise
        except Exception as exc:  # unknown optimizer, loss or metric names
            raise DataError(
                f"Keras cannot compile the model with compile={bounded_repr(self.compile_params)}: "
                f"{cause(exc)}"
            ) from None
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
            from ..io._read import plan_reads

            reads = plan_reads(self.db, data, columns=[*self.features, self.y])
            check_read_columns(reads.reader.specs, self.features, self.y, data, role)
            return reads, data
        if not isinstance(data, dd.DataFrame):
            raise TypeError(f"Expected {role} as a dask DataFrame or a table name. Received: {type(data).__name__}")
        for column in [*self.features, self.y]:
            if column not in data.columns:
                raise SchemaError(
                    f"{role} has no column {column!r}. Available columns: {', '.join(map(str, data.columns))}."
                )
        refuse_text_features([c for c in self.features if is_text(data.dtypes[c])], self.features, role)
        return data, None

    @property
    def features(self) -> list[str]:
        return [self.x] if isinstance(self.x, str) else list(self.x)

    @property
    def shaping(self) -> tuple:
        """How a worker turns a partition into a segment: :func:`~._segment_data.prepare_segment`'s arguments."""
        return self.x, self.y, self.input_shape, self.normalizing_const, self.output_shape, self.classes

    # -- running -----------------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        from ._training import Training

        with client_or_local(self.client, quiet=not self.progress) as client:
            return Training(self, client).run()

    def start_result(self) -> TrainingResult:
        if self.resume:
            _, table, name = self.checkpoint
            result = latest_readable(*self.checkpoint)
            if result is not None:
                saved = [w.shape for w in result.weights]
                if saved != [w.shape for w in self.initial_weights]:
                    raise DataError(
                        f"Checkpoint {name!r} in {table!r} holds weights of shapes {saved}, which this model "
                        f"cannot take: resume with the model that was checkpointed."
                    )
                result.architecture = self.architecture
                if type(result.strategy) is not type(self.strategy):
                    result.outer_state = None  # another strategy's state means nothing to this one
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
        result.label_type = self.label_type
        result.validation_table = self.validation_table
        result.metrics_every = self.metrics_every
        result.model_arch_table, result.model_id = self.model_arch_table, self.model_id

    def check(self, stats, role: str) -> None:
        """Refuse bad data before training starts, naming the segment and the fix."""
        check_stats(stats, role, str(self.compile_params.get("loss", "")), self.input_shape, self.output_shape)

    def monitored(self, entry: dict) -> float:
        monitor = self.early.monitor or ("validation_loss" if self.validation is not None else "training_loss")
        part = entry["validation"] if monitor == "validation_loss" else entry["training"]
        if part is None:  # validation not computed this iteration: judge on training loss
            part = entry["training"]
        return part["loss"]
