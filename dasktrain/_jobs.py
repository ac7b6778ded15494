"""Job files: YAML holding the same parameters as the API function a subcommand calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ._params import MAX_BATCH_SIZE, MAX_CONFIGS, MAX_ITERATIONS, MAX_RETRIES, bounded_repr
from .errors import DataError

#: The most values a job file may hold, counting those YAML aliases (``&a`` ... ``*a``) repeat: a job is a few
#: dozen values, and a 570-byte file of nested aliases expands to hundreds of millions.
MAX_JOB_VALUES = 100_000

#: What a training job names, whether it trains one model or one per group.
_TRAINING_KEYS = {
    "data",
    "model_arch_table",
    "model_id",
    "x",
    "y",
    "compile",
    "fit",
    "iterations",
    "strategy",
    "strategy_params",
    "alpha",
    "beta",
    "normalizing_const",
    "seed",
    "model_table",
    "name",
    "description",
}
FIT_KEYS = _TRAINING_KEYS | {
    "validation",
    "metrics_every",
    "sync_every",
    "replicas",
    "early_stopping",
    "checkpoint_every",
    "checkpoint_keep",
    "resume",
    "retries",
    "cache",
}
#: dasktrain.fit_groups: one model per value of the ``by`` column.
FIT_GROUPS_KEYS = _TRAINING_KEYS | {"by", "max_group_rows"}
#: A search: dasktrain.model_configs (grid, random) and fit_multiple, or dasktrain.hyperband; then save_models.
SELECT_KEYS = {
    "data",
    "validation",
    "x",
    "y",
    "model_arch_table",
    "model_id",
    "configs",
    "compile",
    "fit",
    "search",
    "n",
    "iterations",
    "R",
    "eta",
    "skip_last",
    "bracket",
    "schedule",
    "folds",
    "id",
    "rank_by",
    "metrics_every",
    "normalizing_const",
    "retries",
    "seed",
    "cache",
    "model_table",
    "name",
    "description",
}
PREDICT_KEYS = {
    "model_table",
    "name",
    "version",
    "source_table",
    "output_table",
    "pred_type",
    "id",
    "x",
    "batch_size",
    "replace",
    "class_values",
    "normalizing_const",
    "skip_nonfinite",
}
EVALUATE_KEYS = {"model_table", "name", "version", "table", "x", "y", "output_table", "replace", "skip_nonfinite"}


def read_job(path: str, allowed: set[str], command: str) -> dict:
    """Read a YAML job file (safely: plain data only), check its keys and the type of each value.

    A value of the wrong type is refused here, before anything runs: a quoted ``"false"`` is a
    string, not False, and ``version: 1.9`` is not version 1.

    >>> read_job("score.yaml", PREDICT_KEYS, "predict")  # doctest: +SKIP
    {'model_table': 'models', 'name': 'fashion_cnn', 'version': 'latest', ...}
    """
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DataError(f"Cannot read job file {path!r}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise DataError(f"Job file {path!r} is not text (UTF-8).") from None
    try:
        job = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise DataError(f"Job file {path!r} is not valid YAML: {message[:300]}") from None
    except RecursionError:
        raise DataError(f"Job file {path!r} nests its values too deeply to be a job.") from None
    if not isinstance(job, dict):
        raise DataError(f"Job file {path!r} must hold a mapping of parameter: value.")
    _refuse_bombs(job, path)
    unknown = sorted(map(str, set(job) - allowed))
    if unknown:
        named = ", ".join(key if len(key) <= 40 else key[:37] + "..." for key in unknown[:8])
        raise DataError(
            f"Job file {path!r} has unknown key(s) {named}{', ...' if len(unknown) > 8 else ''}; "
            f"'dasktrain {command}' takes: {', '.join(sorted(allowed))}."
        )
    for key, value in job.items():
        check_value(key, value, where=f"Job file {path!r}")
    return job


def check_value(key: str, value, *, where: str | None = None) -> None:
    """Refuse ``value`` for job key ``key`` unless it has the key's type (None means the default).

    ``where`` names the job file; without it, the value came from the flag of that name.

    >>> check_value("replace", "false", where="Job file 'score.yaml'")
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Job file 'score.yaml': replace must be true or false. Received: replace='false' (a str)
    >>> check_value("iterations", 10**7)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: --iterations must be a whole number from 1 to 1000000. Received: 10000000
    """
    expected, accepts = KINDS[key]
    if isinstance(value, str) and "\x00" in value:  # only a job file can hold one; PostgreSQL cannot store it
        raise DataError(f"{where}: {key} holds a NUL character (\\x00), which PostgreSQL cannot store.")
    if (value is None and key not in BOOLEANS) or accepts(value):
        return
    if where is None:
        raise DataError(f"--{key.replace('_', '-')} must be {expected}. Received: {bounded_repr(value)}")
    kind = type(value).__name__
    raise DataError(f"{where}: {key} must be {expected}. Received: {key}={bounded_repr(value)} (a {kind})")


def _refuse_bombs(job: dict, path: str) -> None:
    """Refuse a job that holds more than :data:`MAX_JOB_VALUES` values, counting what aliases repeat.

    Counted without expanding anything (a list an alias repeats is counted each time, up to the
    limit), so a file of nested aliases is refused in microseconds and a self-referencing one ends.
    """
    stack, seen = [job], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_JOB_VALUES:
            raise DataError(
                f"Job file {path!r} holds more than {MAX_JOB_VALUES} values (counting what its YAML aliases "
                f"repeat): a job's parameters are a few dozen values."
            )
        if isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple | set):
            stack.extend(value)


def _whole(value, low: int = 1, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _text(value) -> bool:
    return isinstance(value, str)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _params(value) -> bool:
    return isinstance(value, str | Mapping)


def _count(high: int) -> tuple[str, Callable]:
    return f"a whole number from 1 to {high}", lambda value: _whole(value, 1, high)


#: The type of each job key: what a message says is expected, and the test of a value (None is the default).
KINDS: dict[str, tuple[str, Callable]] = {
    **dict.fromkeys(
        ["data", "model_arch_table", "y", "strategy", "validation", "model_table", "name", "description", "by",
         "configs", "search", "schedule", "id", "rank_by", "cache", "source_table", "output_table", "table"],
        ("a string", _text),
    ),  # fmt: skip
    **dict.fromkeys(["compile", "fit", "strategy_params"], ("a mapping or a 'name=value, ...' string", _params)),
    **dict.fromkeys(["alpha", "beta", "normalizing_const"], ("a number", _number)),
    **dict.fromkeys(["iterations", "R", "metrics_every", "checkpoint_every", "sync_every"], _count(MAX_ITERATIONS)),
    **dict.fromkeys(["checkpoint_keep", "folds", "max_group_rows"], _count(2**31 - 1)),
    **dict.fromkeys(["resume", "replace", "skip_nonfinite"], ("true or false", lambda v: isinstance(v, bool))),
    "x": ("a column name or a list of them", lambda v: _text(v) or (isinstance(v, list) and all(map(_text, v)))),
    "model_id": (
        "an architecture id (a whole number >= 1), or a list of them (select)",
        lambda v: _whole(v) or (isinstance(v, list) and bool(v) and all(map(_whole, v))),
    ),
    "replicas": ("a whole number >= 1 or 'segments'", lambda v: _whole(v) or v == "segments"),
    "early_stopping": ("a patience (a whole number), a mapping or a string", lambda v: _whole(v, 0) or _params(v)),
    "retries": (f"a whole number from 0 to {MAX_RETRIES}", lambda v: _whole(v, 0, MAX_RETRIES)),
    "seed": ("a whole number >= 0", lambda v: _whole(v, 0, 2**64 - 1)),
    "n": _count(MAX_CONFIGS),
    "eta": ("a whole number from 2 to 1000", lambda v: _whole(v, 2, 1000)),
    "skip_last": ("a whole number >= 0", lambda v: _whole(v, 0, MAX_ITERATIONS)),
    "bracket": ("a whole number >= 0", lambda v: _whole(v, 0, MAX_ITERATIONS)),
    "version": ("a version number (1, 2, ...) or 'latest'", lambda v: _whole(v, 1, 2**31 - 1) or v == "latest"),
    "pred_type": ("'response', 'prob', a whole number k or a threshold", lambda v: _text(v) or _number(v)),
    "batch_size": _count(MAX_BATCH_SIZE),
    "class_values": ("a list of the classes' values", lambda v: isinstance(v, list)),
}
BOOLEANS = {key for key, (expected, _) in KINDS.items() if expected == "true or false"}
