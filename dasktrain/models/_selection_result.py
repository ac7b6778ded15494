"""``SelectionResult``: what :func:`dasktrain.fit_multiple` returns, one :class:`TrainingResult` per configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .._whole_table import WholeTable
from ._result import TrainingResult

FINISHED, DIVERGED, STOPPED = "finished", "diverged", "stopped"


@dataclass(repr=False)
class SelectionResult:
    """Every configuration's training, ranked.

    Attributes
    ----------
    results : dict of int to TrainingResult
        By ``mst_key``: weights, compile and fit parameters, and the per-iteration history (each
        entry's ``training`` metrics are row-weighted over the iteration's visits; ``validation``
        those of the model after the iteration; ``elapsed`` seconds since the search started).
    status : dict of int to str
        ``"finished"``, ``"diverged"`` (its loss became NaN; the others went on) or ``"stopped"``
        (a Hyperband rung left it behind).
    visits : list of dict
        Every model's visit to a part (the segments one worker holds): ``mst_key``, ``fold``,
        ``iteration``, ``part``, ``segments`` (the segment numbers it covered), ``worker``, ``rows``,
        ``started`` (epoch seconds) and ``seconds``; a visit lost with its worker and run again
        appears once.
    rank_by : str
        What ``best`` minimizes (losses) or maximizes (metrics): ``"validation_loss"``, ``"training_loss"``,
        or ``"validation_<metric>"``.
    folds : int or None
        With cross-validation, each configuration's ``validation`` is the mean over the folds and
        ``cv`` holds each metric's standard deviation; the folds' models are not kept.
    architectures : dict of int to str
        Each configuration's architecture by name (its ``name`` in the architecture table, else
        the Keras model's ``name``).

    Examples
    --------
    >>> search = dasktrain.fit_multiple("fashion_train", configs, x="x", y="y", iterations=5,
    ...                                 validation="fashion_test")  # doctest: +SKIP
    >>> print(search)  # doctest: +SKIP
    >>> search.table()[["mst_key", "validation_accuracy"]]  # doctest: +SKIP
    >>> search.best.model().predict(X)  # doctest: +SKIP
    """

    results: dict[int, TrainingResult]
    status: dict[int, str]
    visits: list[dict] = field(default_factory=list)
    rank_by: str = "validation_loss"
    folds: int | None = None
    cv: dict[int, dict[str, float]] = field(default_factory=dict)  # {mst_key: {"loss_std": ..., ...}}
    errors: dict[int, str] = field(default_factory=dict)  # why a configuration diverged
    architectures: dict[int, str] = field(default_factory=dict)  # mst_key -> architecture name

    def __getitem__(self, mst_key: int) -> TrainingResult:
        return self.results[mst_key]

    def __repr__(self) -> str:
        best = self.best_key
        value = self.score(best) if best is not None else float("nan")
        return (
            f"SelectionResult(configurations={len(self.results)}, visits={len(self.visits)}, "
            f"best=mst_key {best} ({self.rank_by}={value:.4f}))"
        )

    def __str__(self) -> str:
        """The one-line summary, then :meth:`table` whole."""
        return f"{self!r}\n{self.table()}"

    def score(self, mst_key: int) -> float:
        """The configuration's last value of :attr:`rank_by` (NaN when it has none, or diverged)."""
        part, _, metric = self.rank_by.partition("_")
        values = self.results[mst_key].metric(metric, part) if self.status[mst_key] != DIVERGED else []
        return values[-1] if values else float("nan")

    @property
    def maximize(self) -> bool:
        return not self.rank_by.endswith("loss")

    def ranking(self) -> list[int]:
        """``mst_key`` from best to worst (configurations without a score last)."""
        sign = -1.0 if self.maximize else 1.0

        def key(k):
            value = self.score(k)
            return (np.isnan(value), sign * value if not np.isnan(value) else 0.0, k)

        return sorted(self.results, key=key)

    @property
    def best_key(self) -> int | None:
        ranked = [k for k in self.ranking() if not np.isnan(self.score(k))]
        return ranked[0] if ranked else None

    @property
    def best(self) -> TrainingResult:
        """The best configuration's :class:`TrainingResult` (``.model()`` gives its Keras model)."""
        if self.best_key is None:
            raise ValueError(f"No configuration has a {self.rank_by}: every one diverged.")
        return self.results[self.best_key]

    def table(self) -> SelectionTable:
        """One row per configuration, best first: architecture, parameters, status, iterations, final
        metrics, seconds.

        A pandas DataFrame that prints whole (every column and row, metrics to 4 decimals), so that
        ``print(search.table())`` reads in a terminal or a README as it does in a notebook.

        >>> search.table().columns[:5].tolist()  # doctest: +SKIP
        ['mst_key', 'architecture', 'model_arch_table', 'model_id', 'parameters']
        """
        from ._model_store import format_params

        rows = []
        for key in self.ranking():
            result = self.results[key]
            last = result.history[-1] if result.history else {}
            row = {
                "mst_key": key,
                "architecture": self.architectures.get(key) or architecture_name(result.architecture),
                "model_arch_table": result.model_arch_table,
                "model_id": result.model_id,
                "parameters": sum(int(np.prod(w.shape)) for w in result.weights),
                "compile_params": format_params(result.compile_params),
                "fit_params": format_params(result.fit_params),
                "status": self.status[key],
                "iterations": result.iterations,
            }
            for part in ("training", "validation"):
                for name, value in (last.get(part) or {}).items():
                    row[f"{part}_{name}"] = value
            for name, value in self.cv.get(key, {}).items():
                row[f"validation_{name}"] = value
            row["seconds"] = last.get("elapsed")
            rows.append(row)
        return SelectionTable(rows)

    def plot(self, path: str) -> str:
        """Write every configuration's validation curves (training curves without validation) to a PNG.

        >>> search.plot("search.png")  # doctest: +SKIP
        'search.png'
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        part = "validation" if any(r.validation_loss for r in self.results.values()) else "training"
        metric = next((m for r in self.results.values() for m in r.metric_names), None)
        panels = ["loss"] + ([metric] if metric else [])
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
        for ax, name in zip(axes[0], panels, strict=True):
            for key in sorted(self.results):
                result = self.results[key]
                points = [(h["iteration"], h[part][name]) for h in result.history if h.get(part) and name in h[part]]
                if points:
                    style = "-o" if key == self.best_key else "-"
                    ax.plot(*zip(*points, strict=True), style, label=f"{key}", markersize=3)
            ax.set_xlabel("iteration")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{part} {name}")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(title="mst_key", fontsize="small", ncol=2)
        fig.suptitle(f"{len(self.results)} configurations; best: mst_key {self.best_key} by {self.rank_by}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    @property
    def passes(self) -> int:
        """Iterations trained over all configurations (each a pass over the data), to compare searches' cost.

        >>> SelectionResult({}, {}).passes
        0
        """
        return sum(r.iterations for r in self.results.values()) * (self.folds or 1)

    def busy_fraction(self) -> float:
        """How much of the search's span the workers spent training (1.0: never idle).

        >>> SelectionResult({}, {}, visits=[{"worker": "a", "started": 0.0, "seconds": 1.0},
        ...                                  {"worker": "a", "started": 1.0, "seconds": 1.0}]).busy_fraction()
        1.0
        """
        if not self.visits:
            return 0.0
        start = min(v["started"] for v in self.visits)
        end = max(v["started"] + v["seconds"] for v in self.visits)
        workers = {v["worker"] for v in self.visits}
        return sum(v["seconds"] for v in self.visits) / ((end - start) * len(workers)) if end > start else 1.0


def architecture_name(architecture: str) -> str:
    """The ``name`` in a Keras model's JSON (its class name when it has none).

    >>> architecture_name('{"class_name": "Sequential", "config": {"name": "mlp16"}}')
    'mlp16'
    """
    spec = json.loads(architecture)
    return (spec.get("config") or {}).get("name") or spec.get("class_name", "model")


class SelectionTable(WholeTable):
    """A search's table: a pandas DataFrame that prints whole (metrics to 4 decimals, seconds to 1).

    >>> print(SelectionTable({"mst_key": [2, 1], "architecture": ["cnn", "mlp"], "validation_loss": [0.31, 0.5]}))
    mst_key  architecture  validation_loss
          2  cnn                    0.3100
          1  mlp                    0.5000
    """

    integer_columns = frozenset({"model_id", "rows", "parameters", "iterations"})
    one_decimal_columns = frozenset({"seconds"})


@dataclass(repr=False)
class GroupResult(SelectionResult):
    """What :func:`dasktrain.fit_groups` returns: one model per value of the grouping column.

    Each group is numbered by ``mst_key`` (its value's sorted place) so that :func:`save_models`
    writes it in the same layout as a search, with the value in a ``group_value`` column.

    Examples
    --------
    >>> groups = dasktrain.fit_groups("sales", model, by="country", x="x", y="y", compile=...,
    ...                               iterations=5)  # doctest: +SKIP
    >>> groups.group("FR").model().predict(X_fr)  # doctest: +SKIP
    """

    by: str = "group"
    values: dict[int, object] = field(default_factory=dict)  # mst_key -> group value
    placement: dict[int, str] = field(default_factory=dict)  # mst_key -> "one worker" or "segments"

    def __repr__(self) -> str:
        across = sum(p == "segments" for p in self.placement.values())
        return f"GroupResult(by={self.by!r}, groups={len(self.results)}, trained across segments={across})"

    def group(self, value) -> TrainingResult:
        """The :class:`TrainingResult` of the group whose ``by`` value is ``value``."""
        for key, known in self.values.items():
            if known == value or str(known) == str(value):
                return self.results[key]
        raise KeyError(f"No group {self.by}={value!r}; the groups are {sorted(map(str, self.values.values()))}.")

    def table(self):
        """One row per group: its value, where it trained, rows, iterations and final metrics."""
        frame = super().table()
        frame.insert(1, self.by, [self.values[k] for k in frame["mst_key"]])
        frame.insert(2, "trained_on", [self.placement.get(k) for k in frame["mst_key"]])
        frame.insert(3, "rows", [self.results[k].num_rows for k in frame["mst_key"]])
        return frame
