"""``TrainingResult``: what :func:`dasktrain.fit` returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from .._model_spec import build_model
from ..strategies import Strategy


@dataclass(repr=False)
class TrainingResult:
    """The outcome of :func:`dasktrain.fit`: final weights, per-iteration history, and what was used.

    Attributes
    ----------
    weights : list of numpy.ndarray
        Final (merged) weights; for :class:`~dasktrain.Ensemble`, those of member 0.
    members : list of list of numpy.ndarray
        One weight list per ensemble member (a single entry for other strategies).
    history : list of dict
        One entry per iteration: ``iteration``, ``elapsed`` (seconds since the start),
        ``training`` (row-weighted mean of the replicas' loss and metrics over the round) and,
        every ``metrics_every`` iterations when validation data is given, ``validation``
        (loss and metrics of the merged model on the validation data); ``rows``, the rows the
        reducer merged (each row counted once); ``replicas``, the models trained in parallel;
        ``retries``, how many times the round was run again after losing workers; and ``moved``,
        the segments moved to another worker before the round, to the replica that trains on them.

    Examples
    --------
    >>> result = dasktrain.fit("digits", model, x="x", y="y", compile=..., iterations=3)  # doctest: +SKIP
    >>> result.training_loss  # doctest: +SKIP
    [1.52, 0.81, 0.55]
    >>> result.plot("learning_curve.png")  # doctest: +SKIP
    """

    architecture: str
    members: list[list[np.ndarray]]
    strategy: Strategy
    compile_params: dict
    fit_params: dict
    history: list[dict] = field(default_factory=list)
    class_values: list | None = None
    label_type: str | None = None  # the label column's SQL type, for text and boolean classes
    normalizing_const: float = 1.0
    source_table: str | None = None
    x: object = "x"
    y: object = "y"
    validation_table: str | None = None
    metrics_every: int = 1
    num_rows: int = 0
    num_segments: int = 0
    num_replicas: int = 0  # models trained in parallel each round (members of an ensemble)
    model_arch_table: str | None = None
    model_id: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    stopped_early: bool = False
    outer_state: list | None = None  # the strategy's own state after the last round (SlowMo's momentum)
    replica_states: dict | None = None  # {replica: ReplicaState} of a checkpoint, for an exact resume
    devices: list | None = None  # what the segments trained on: [{"host", "device", "memory_limit_mib", ...}]
    mst_key: int | None = None  # the configuration, in a fit_multiple search

    def __repr__(self) -> str:
        """One line: strategy, iterations, rows, segments, replicas, parameters and the last round's metrics."""
        last = self.history[-1] if self.history else {}
        metrics = [
            f"{part}_{name}={value:.4f}"
            for part in ("training", "validation")
            for name, value in (last.get(part) or {}).items()
        ]
        parameters = sum(int(np.prod(w.shape)) for w in self.weights)
        members = f", members={len(self.members)}" if self.strategy.is_ensemble else ""
        return (
            f"TrainingResult(strategy={self.strategy.name}, iterations={self.iterations}, rows={self.num_rows}, "
            f"segments={self.num_segments}, replicas={self.num_replicas}, parameters={parameters}{members}"
            + "".join(f", {m}" for m in metrics)
            + (", stopped_early=True" if self.stopped_early else "")
            + ")"
        )

    @property
    def weights(self) -> list[np.ndarray]:
        return self.members[0]

    @property
    def iterations(self) -> int:
        return len(self.history)

    def _series(self, part: str, metric: str) -> list[float]:
        return [h[part][metric] for h in self.history if h.get(part) and metric in h[part]]

    @property
    def training_loss(self) -> list[float]:
        return self._series("training", "loss")

    @property
    def validation_loss(self) -> list[float]:
        return self._series("validation", "loss")

    def metric(self, name: str, part: str = "training") -> list[float]:
        """Values of metric ``name`` (e.g. ``"accuracy"``) per iteration, for ``"training"`` or ``"validation"``."""
        return self._series(part, name)

    @property
    def metric_names(self) -> list[str]:
        """Compiled metrics recorded, loss excluded."""
        names = []
        for entry in self.history:
            for part in ("training", "validation"):
                for key in entry.get(part) or {}:
                    if key != "loss" and key not in names:
                        names.append(key)
        return names

    def model(self):
        """A compiled ``keras.Model`` with the final weights (for ensembles, the mean of the members)."""
        from .._model_spec import compiled_model
        from .._stateful_layers import set_weights

        if not self.strategy.is_ensemble:
            model = compiled_model(self.architecture, self.compile_params)
            set_weights(model, self.weights)
            return model
        return ensemble_model(self.architecture, self.members, self.compile_params)

    def plot(self, path: str) -> str:
        """Write a learning-curve PNG (loss and the first metric, training and validation); return ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        metric = next(iter(self.metric_names), None)
        panels = ["loss"] + ([metric] if metric else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        for ax, name in zip(axes[0], panels, strict=True):
            for part, style in (("training", "-o"), ("validation", "-s")):
                points = [(h["iteration"], h[part][name]) for h in self.history if h.get(part) and name in h[part]]
                if points:
                    ax.plot(*zip(*points, strict=True), style, label=part, markersize=3)
            ax.set_xlabel("iteration")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(f"{self.strategy!r} on {self.source_table or 'data'}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def history_json(self) -> str:
        return json.dumps(self.history)


def ensemble_model(architecture: str, members: list[list[np.ndarray]], compile_params: dict | None):
    """One Keras model whose output is the mean of its members' outputs."""
    import keras

    from .._model_spec import compiled_model
    from .._stateful_layers import set_weights

    config = json.loads(architecture)
    built = []
    for i, weights in enumerate(members):
        config.setdefault("config", {})["name"] = f"member_{i}"
        member = build_model(json.dumps(config))
        set_weights(member, weights)
        built.append(member)
    inputs = keras.Input(shape=built[0].input_shape[1:])
    outputs = keras.layers.Average()([m(inputs) for m in built]) if len(built) > 1 else built[0](inputs)
    model = keras.Model(inputs, outputs, name="ensemble")
    if compile_params:
        compiled = compiled_model(architecture, compile_params)  # resolves optimizer strings the same way
        model.compile(
            optimizer=compiled.optimizer, loss=compile_params.get("loss"), metrics=compile_params.get("metrics")
        )
    return model
