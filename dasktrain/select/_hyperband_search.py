"""``hyperband`` and ``successive_halving``: random configurations trained in rungs, the best kept, on top of
model hopper parallelism."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping

from .._params import MAX_CONFIGS, MAX_ITERATIONS, boolean, bounded_repr, keyword_defaults, positive_int
from ..errors import DataError
from ..models._selection_result import FINISHED, STOPPED, SelectionResult
from ._configs import model_configs
from ._fit_multiple import Search, fit_multiple
from ._hyperband import hyperband_schedule
from ._search_state import check_state_table, load_state, save_state


def hyperband(
    data,
    architectures,
    *,
    compile: Mapping,
    fit: Mapping | None = None,
    R: int,
    eta: int = 3,
    skip_last: int = 0,
    schedule: str = "madlib",
    bracket: int | None = None,
    x,
    y: str,
    validation=None,
    folds: int | None = None,
    rank_by: str | None = None,
    checkpoint: tuple | None = None,
    resume: bool = False,
    seed: int | None = None,
    **options,
) -> SelectionResult:
    """Hyperband (Li et al., 2018) over random configurations, each bracket a successive halving.

    The schedule is :func:`hyperband_schedule`'s (MADlib's by default): bracket ``s`` draws ``n_0``
    configurations from ``compile``/``fit`` (lists sampled evenly, distributions drawn) and
    trains them ``r_0`` iterations; each rung keeps the best ``1/eta`` by ``rank_by`` and trains
    them on to ``r_i`` iterations (rounded to whole iterations). Models carry over from rung to
    rung — weights and optimizer state — rather than being retrained. Every bracket's rung runs
    at once on the cluster with :func:`fit_multiple`'s model hopper parallelism, the data read once.

    Parameters
    ----------
    data, architectures, compile, fit
        As for :func:`fit_multiple` and :func:`model_configs` (``search="random"``).
    R : int
        The most iterations a configuration gets.
    eta : int, default 3
        Each rung keeps ``1/eta`` of the configurations.
    skip_last : int, default 0
        Leave out the last rungs of each bracket (MADlib's meaning).
    schedule : {"madlib", "li"}, default "madlib"
        MADlib's bracket sizes (a search moved from MADlib trains as many configurations as
        there), or Li et al.'s, whose middle brackets start more (see :func:`hyperband_schedule`).
    bracket : int, optional
        Run only this bracket: successive halving (see :func:`successive_halving`).
    validation, folds
        What configurations are ranked on (one of them is required).
    checkpoint : (db, table), optional
        Save the whole search's state (every model's weights, optimizer state and history) in
        ``table`` after each rung. With ``resume=True`` a stopped search continues from its last
        finished rung; it needs ``seed``, which draws the same configurations again.
    seed : int, optional
        Draws the configurations and seeds each visit's shuffle.
    **options
        Passed to :func:`fit_multiple`: ``metrics_every``, ``normalizing_const``, ``client``, ``db``, ...

    Returns
    -------
    SelectionResult
        Every configuration drawn; ``status`` is ``"finished"`` for those that reached their
        bracket's last rung and ``"stopped"`` for those left behind; ``passes`` counts the
        iterations trained in all.

    Examples
    --------
    >>> search = dasktrain.hyperband("fashion_train", [cnn, mlp], compile={"optimizer": "adam",
    ...     "learning_rate": dasktrain.loguniform(1e-4, 1e-2), "loss": "sparse_categorical_crossentropy",
    ...     "metrics": ["accuracy"]}, fit={"batch_size": [64, 256]}, R=9, eta=3, x="x", y="y",
    ...     validation="fashion_test", seed=0)  # doctest: +SKIP
    >>> search.best.model()  # doctest: +SKIP
    """
    resume = boolean(resume, "resume")
    positive_int(R, "R", maximum=MAX_ITERATIONS)
    table = hyperband_schedule(R, eta, skip_last, schedule=schedule)
    if bracket is not None:
        if bracket not in set(table["s"]):
            raise DataError(
                f"bracket={bounded_repr(bracket)} is not in the schedule: its brackets are {sorted(set(table['s']))}."
            )
        table = table[table["s"] == bracket]
    starts = int(table.loc[table["i"] == 0, "n_i"].sum())
    if starts > MAX_CONFIGS:
        raise DataError(
            f"R={R} and eta={eta} start {starts} configurations, more than the {MAX_CONFIGS} one search may train: "
            f"choose a smaller R, a larger eta, or one bracket."
        )
    if validation is None and folds is None:
        raise DataError("hyperband ranks configurations on held-out rows: pass validation= or folds=.")
    rungs = {s: [(int(n), max(1, round(r))) for n, r in zip(group["n_i"], group["r_i"], strict=True)]
             for s, group in table.groupby("s", sort=False)}  # fmt: skip
    drawn = model_configs(
        architectures, compile=compile, fit=fit, search="random", n=sum(r[0][0] for r in rungs.values()), seed=seed
    )
    brackets, start = {}, 0
    for s, steps in rungs.items():
        for config in drawn[start : start + steps[0][0]]:
            brackets[config.mst_key] = s
        start += steps[0][0]
    if checkpoint is not None:
        if not isinstance(checkpoint, tuple) or len(checkpoint) != 2:
            raise TypeError(f"Expected checkpoint=(db, table). Received: checkpoint={bounded_repr(checkpoint)}")
        if seed is None:
            raise DataError("checkpoint= needs seed=: a resumed search must draw the same configurations.")
        check_state_table(*checkpoint, resume)
    elif resume:
        raise DataError("resume=True needs checkpoint=(db, table) to resume from.")
    defaults = keyword_defaults(fit_multiple)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"hyperband() got an unexpected keyword argument {bounded_repr(unknown[0])}")
    search = Search.plan(**{**defaults, **options, "data": data, "configs": drawn, "x": x, "y": y,
                            "iterations": R, "validation": validation, "folds": folds, "rank_by": rank_by,
                            "seed": seed})  # fmt: skip
    parameters = {"R": R, "eta": eta, "skip_last": skip_last, "schedule": schedule, "bracket": bracket, "seed": seed,
                  "folds": folds, "configs": _fingerprint(drawn)}  # fmt: skip
    return _Rungs(search, rungs, brackets, checkpoint, resume, parameters).run()


def successive_halving(data, architectures, *, compile: Mapping, R: int, eta: int = 3, **kwargs) -> SelectionResult:
    """Successive halving: Hyperband's most exploratory bracket alone.

    ``eta^s_max`` configurations (``s_max = floor(log_eta R)``) start at ``R / eta^s_max``
    iterations; each rung keeps the best ``1/eta`` and trains them ``eta`` times longer, up to ``R``.

    >>> search = dasktrain.successive_halving("fashion_train", cnn, compile=space, R=9, x="x", y="y",
    ...                                       validation="fashion_test", seed=0)  # doctest: +SKIP
    """
    s_max = int(hyperband_schedule(R, eta)["s"].max())
    return hyperband(data, architectures, compile=compile, R=R, eta=eta, bracket=s_max, **kwargs)


class _Rungs:
    """Every bracket's rungs, run side by side on one search's data."""

    def __init__(self, search: Search, rungs: dict, brackets: dict, checkpoint, resume: bool, parameters: dict):
        self.search, self.rungs, self.brackets = search, rungs, brackets
        self.checkpoint, self.resume, self.parameters = checkpoint, resume, parameters

    def run(self) -> SelectionResult:
        search = self.search
        with search.started():
            clock = time.perf_counter()
            models = search.models()
            status = dict.fromkeys(self.brackets, "active")
            first = self._restore(models, status) if self.resume else 0
            for rung in range(first, max(len(steps) for steps in self.rungs.values())):
                active = []
                for model in models:
                    steps = self.rungs[self.brackets[model.mst_key]]
                    if rung < len(steps) and status[model.mst_key] == "active":
                        model.last = steps[rung][1]
                        active.append(model)
                search.run(active, started=clock)
                self._halve(active, rung, status)
                if self.checkpoint is not None:
                    save_state(*self.checkpoint, self.parameters, rung + 1, _rows(models, self.brackets, status))
            final = {key: (FINISHED if value == "active" else STOPPED) for key, value in status.items()}
            return search.result(models, final)

    def _halve(self, active: list, rung: int, status: dict) -> None:
        """Keep each bracket's best ``n_{i+1}`` configurations for the next rung; stop the others."""
        ranked = self.search.result(active).ranking()
        for s, steps in self.rungs.items():
            if rung + 1 >= len(steps):
                continue  # the bracket's last rung: its survivors have finished
            keys = [k for k in ranked if self.brackets[k] == s and status[k] == "active"]
            for key in keys[steps[rung + 1][0] :]:
                status[key] = "stopped"

    def _restore(self, models: list, status: dict) -> int:
        rungs_done, rows = load_state(*self.checkpoint, self.parameters)
        for model in models:
            row = rows.get((model.mst_key, -1 if model.fold is None else model.fold))
            if row is None:
                continue
            model.state, model.history = row["state"], row["history"]
            model.iteration = row["iterations"] + 1
            status[model.mst_key] = "stopped" if row["status"] == "diverged" else row["status"]
            if row["status"] == "diverged":
                model.failed = "it diverged before the search was resumed"
        return rungs_done


def _rows(models: list, brackets: dict, status: dict) -> list[dict]:
    rows = []
    for m in models:
        state = "diverged" if m.failed else status[m.mst_key]
        rows.append(
            {
                "mst_key": m.mst_key,
                "fold": -1 if m.fold is None else m.fold,
                "bracket": brackets[m.mst_key],
                "status": state,
                "iterations": m.iteration - 1,
                "state": m.state,
                "history": m.history,
            }
        )
    return rows


def _fingerprint(configs) -> str:
    """A digest of the configurations drawn, so a resume with other search spaces is refused.

    A model given as such is digested without its layers' names: Keras names a rebuilt model's
    layers anew (``dense_1``, then ``dense_3`` in the same process), and the same architecture
    must resume its search (issue 22). Architecture-table configurations digest as before.

    >>> len(_fingerprint([]))
    16
    """
    digest = hashlib.sha256()
    for config in configs:
        fields = dataclasses.astuple(config)
        if isinstance(config.model, str):
            fields = (config.mst_key, unnamed_architecture(config.model), config.compile_params, config.fit_params)
        digest.update(repr(fields).encode())
    return digest.hexdigest()[:16]


def unnamed_architecture(architecture: str) -> str:
    """A model's JSON with each name (the model's, its layers', Keras's automatic ones) replaced by its
    number in order of appearance, so two builds of one architecture read the same.

    >>> a = '{"class_name": "Sequential", "config": {"name": "sequential_3", "layers": ['
    >>> b = '{"class_name": "Dense", "config": {"name": "dense_7", "units": 2}}]}}'
    >>> unnamed_architecture(a + b)
    '{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"name": "#1", \
"units": 2}}], "name": "#0"}}'
    """
    config = json.loads(architecture)
    names: dict[str, str] = {}
    stack = [config]
    while stack:  # breadth-first: the model's name, then its layers' in order
        value = stack.pop(0)
        if isinstance(value, dict):
            inner = value.get("config")
            if "class_name" in value and isinstance(inner, dict) and isinstance(inner.get("name"), str):
                names.setdefault(inner["name"], f"#{len(names)}")
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)

    def renamed(value):
        if isinstance(value, dict):
            return {key: renamed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [renamed(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    return json.dumps(renamed(config), sort_keys=True)
