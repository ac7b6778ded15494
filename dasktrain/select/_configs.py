"""``model_configs``: the configurations of a search, each an architecture with compile and fit parameters."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._model_spec import model_json
from .._params import COMPILE_KEYS, FIT_KEYS, MAX_CONFIGS, bounded_repr, parse_params, refuse_unsupported_fit
from ..errors import DataError
from ._distributions import Distribution

#: Compile keys whose plain value is itself a list: a list of lists searches over them.
LIST_VALUED = {"metrics", "weighted_metrics", "loss_weights"}
#: Optimizer names as ``compile`` takes them, and the class to call with a learning rate.
OPTIMIZER_CLASSES = {
    name.lower(): name
    for name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl", "Lion")
}


@dataclass(frozen=True)
class ModelConfig:
    """One configuration of a search: an architecture and its compile and fit parameters (MADlib strings).

    >>> ModelConfig(1, ("model_arch", 2), "optimizer='adam', loss='mse'", "batch_size=32").compile
    {'optimizer': 'adam', 'loss': 'mse'}
    """

    mst_key: int
    model: tuple | str  # (architecture_table, model_id), or the model's JSON
    compile_params: str
    fit_params: str

    @property
    def compile(self) -> dict:
        return parse_params(self.compile_params, what="compile", allowed=COMPILE_KEYS)

    @property
    def fit(self) -> dict:
        return parse_params(self.fit_params, what="fit", allowed=FIT_KEYS)


def model_configs(
    architectures,
    *,
    compile: Mapping,
    fit: Mapping | None = None,
    search: str = "grid",
    n: int | None = None,
    seed: int | None = None,
) -> list[ModelConfig]:
    """The configurations of a grid or random search, numbered by ``mst_key`` from 1.

    Parameters
    ----------
    architectures : model, JSON, (architecture_table, model_id), or a list of them
        The architectures to try.
    compile : dict
        Keras compile arguments. With ``search="grid"`` a list is a choice to search over (for
        ``metrics``, a list of lists); with ``"random"`` a list is sampled evenly, and so is a
        distribution (:func:`uniform`, :func:`loguniform`, :func:`log_near_one`, :func:`choice`).
        ``learning_rate`` is passed to the optimizer (``optimizer='Adam(learning_rate=0.01)'``).
    fit : dict, optional
        Keras fit arguments (``batch_size``, ``epochs``), searched the same way.
    search : "grid" or "random"
        Every combination in order, or ``n`` samples drawn with ``seed``.
    n : int
        How many configurations to draw (random search).
    seed : int, optional
        The same seed draws the same configurations.

    Returns
    -------
    list of ModelConfig

    Examples
    --------
    >>> configs = model_configs([("model_arch", 1), ("model_arch", 2)],
    ...     compile={"optimizer": "adam", "learning_rate": [0.001, 0.01],
    ...              "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
    ...     fit={"batch_size": [32, 128]})
    >>> len(configs), configs[0].compile_params
    (8, "optimizer='Adam(learning_rate=0.001)', loss='sparse_categorical_crossentropy', metrics=['accuracy']")
    >>> configs[-1].mst_key, configs[-1].model, configs[-1].fit_params
    (8, ('model_arch', 2), 'batch_size=128')
    """
    models = _architectures(architectures)
    compile_space = _space(compile, "compile", COMPILE_KEYS | {"learning_rate"})
    fit_space = _space(fit or {}, "fit", FIT_KEYS)
    refuse_unsupported_fit(fit_space)
    if "loss" not in compile_space:
        raise DataError("compile= needs a loss, e.g. 'loss': 'sparse_categorical_crossentropy'.")
    if search == "grid":
        if n is not None:
            raise DataError("n= is for search='random'; a grid has every combination.")
        drawn = _grid(models, compile_space, fit_space)
    elif search == "random":
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_CONFIGS:
            raise DataError(
                f"search='random' needs n, a whole number from 1 to {MAX_CONFIGS}. Received: n={bounded_repr(n)}"
            )
        drawn = _random(models, compile_space, fit_space, int(n), seed)
    else:
        raise DataError(f"Expected search='grid' or 'random'. Received: search={bounded_repr(search)}")
    return [
        ModelConfig(key, model, _compile_text(compile_values), _text(fit_values))
        for key, (model, compile_values, fit_values) in enumerate(drawn, start=1)
    ]


def _architectures(architectures) -> list:
    if isinstance(architectures, tuple) or not isinstance(architectures, Sequence) or isinstance(architectures, str):
        architectures = [architectures]
    if not architectures:
        raise DataError("model_configs needs at least one architecture.")
    models = []
    for model in architectures:
        if isinstance(model, tuple):
            if (
                len(model) != 2
                or not isinstance(model[0], str)
                or isinstance(model[1], bool)
                or not isinstance(model[1], int | np.integer)
            ):
                raise DataError(
                    f"Expected an architecture as (architecture_table, model_id). Received: {bounded_repr(model)}"
                )
            models.append((model[0], int(model[1])))
        else:
            models.append(model_json(model))
    return models


def _space(params: Mapping, what: str, allowed: set[str]) -> dict[str, list | Distribution]:
    """Each key's choices: a list of values, a distribution, or one value (a list of one)."""
    if not isinstance(params, Mapping):
        raise TypeError(
            f"Expected {what}= as a dict of values, lists or distributions. Received: {bounded_repr(params)}"
        )
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise DataError(
            f"Unknown {what} parameter {bounded_repr(unknown[0])}. Known: {', '.join(sorted(allowed))}."
        )
    space = {}
    for key, value in params.items():
        searched = isinstance(value, list) and (key not in LIST_VALUED or all(isinstance(v, list) for v in value))
        if searched and not value:
            raise DataError(f"{what}[{bounded_repr(key)}] is an empty list: give at least one value.")
        space[key] = value if searched or isinstance(value, Distribution) else [value]
    return space


def _grid(models, compile_space, fit_space):
    for name, values in [*compile_space.items(), *fit_space.items()]:
        if isinstance(values, Distribution):
            raise DataError(
                f"search='grid' takes lists; {name}={bounded_repr(values)} is a distribution for search='random'."
            )
    size = len(models) * math.prod(len(values) for values in [*compile_space.values(), *fit_space.values()])
    if size > MAX_CONFIGS:
        raise DataError(
            f"The grid has {size} configurations, more than the {MAX_CONFIGS} one search may train: search fewer "
            f"values, or draw n of them with search='random'."
        )
    split = len(compile_space)
    for model in models:
        for combo in itertools.product(*compile_space.values(), *fit_space.values()):
            compile_values = dict(zip(compile_space, combo[:split], strict=True))
            yield model, compile_values, dict(zip(fit_space, combo[split:], strict=True))


def _random(models, compile_space, fit_space, n: int, seed):
    rng = np.random.default_rng(seed)

    def draw(values):
        return values.sample(rng) if isinstance(values, Distribution) else values[int(rng.integers(len(values)))]

    for _ in range(n):
        model = models[int(rng.integers(len(models)))]
        yield model, {k: draw(v) for k, v in compile_space.items()}, {k: draw(v) for k, v in fit_space.items()}


def _compile_text(values: dict) -> str:
    values = dict(values)
    rate = values.pop("learning_rate", None)
    if rate is not None:
        optimizer = values.get("optimizer", "adam")
        if not isinstance(optimizer, str) or "(" in optimizer:
            raise DataError(
                f"learning_rate needs optimizer= as a name such as 'adam'. Received: {bounded_repr(optimizer)}"
            )
        values = {"optimizer": f"{OPTIMIZER_CLASSES.get(optimizer.lower(), optimizer)}(learning_rate={rate!r})",
                  **{k: v for k, v in values.items() if k != "optimizer"}}  # fmt: skip
    return _text(values)


def _text(values: dict) -> str:
    """MADlib's parameter string: ``name=literal`` pairs, read back by ``parse_params``."""
    return ", ".join(f"{key}={_plain(value)!r}" for key, value in values.items())


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return json.loads(json.dumps(value)) if isinstance(value, dict) else value
