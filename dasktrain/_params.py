"""Compile and fit parameters: Python dicts, or MADlib-style strings parsed without ``eval``.

MADlib writes ``compile_params`` as ``"optimizer='adam', loss='categorical_crossentropy',
metrics=['accuracy']"``; an optimizer may carry arguments, ``optimizer='SGD(learning_rate=0.01)'``.
Only literals are accepted: strings, numbers, booleans, None, lists, tuples and dicts of them.
"""

from __future__ import annotations

import ast
import inspect
import reprlib
from collections.abc import Mapping

from .errors import DataError

MAX_BATCH_SIZE = 2**31 - 1  # Keras and TensorFlow index batches with 32-bit integers
#: The most rounds (iterations) and epochs per round a job may ask for: more is a typo, or years of training.
MAX_ITERATIONS = 10**6
MAX_EPOCHS = 10**6
MAX_RETRIES = 100  # times a round may be retried after losing workers
MAX_CONFIGS = 10_000  # configurations one search may train: each is a model on every worker
COMPILE_KEYS = {"optimizer", "loss", "metrics", "loss_weights", "weighted_metrics", "jit_compile", "run_eagerly"}
#: Keras fit parameters a stored model's ``fit_params`` may hold (MADlib's); a fit refuses those in
#: :data:`UNSUPPORTED_FIT_KEYS`, each once accepted and ignored (issue 22).
FIT_KEYS = {"batch_size", "epochs", "verbose", "shuffle", "class_weight", "sample_weight", "validation_split"}
UNSUPPORTED_FIT_KEYS = {
    "validation_split": "pass validation= (a table or a dask DataFrame of held-out rows) instead",
    "verbose": "pass progress=True or False instead (the command line's --quiet)",
    "sample_weight": "weighing rows by a column is not supported yet; class_weight={class: weight} weighs them by "
    "their class",
}


def positive_int(value, label: str, *, maximum: int | None = None) -> int:
    """``value`` as an int, or :class:`DataError` naming ``label`` unless it is a whole number >= 1.

    >>> positive_int(3, "iterations")
    3
    >>> positive_int(2**63, "batch_size", maximum=MAX_BATCH_SIZE)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Expected batch_size between 1 and 2147483647. Received: batch_size=9223372036854775808
    """
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"Expected a positive integer {label}. Received: {label}={bounded_repr(value)}")
    if maximum is not None and value > maximum:
        raise DataError(f"Expected {label} between 1 and {maximum}. Received: {label}={bounded_repr(value)}")
    return int(value)


def boolean(value, label: str) -> bool:
    """``value`` if it is a real bool, else :class:`DataError`: a YAML ``"false"`` or a 0 is not taken for one.

    >>> boolean(True, "replace")
    True
    >>> boolean("false", "replace")
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Expected replace=True or False. Received: replace='false' (a str)
    """
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return bool(value)
    kind = type(value).__name__
    raise DataError(f"Expected {label}=True or False. Received: {label}={bounded_repr(value)} (a {kind})")


def bounded_repr(value, limit: int = 80) -> str:
    """``repr(value)`` in at most about ``limit`` characters: an error repeats no more of a bad value than that.

    >>> bounded_repr("x" * 200, limit=12)
    "'xxx...xxxx'"
    >>> bounded_repr(list(range(100)))
    '[0, 1, 2, 3, 4, 5, 6, 7, ...]'
    """
    shortened = reprlib.Repr()
    shortened.maxlevel = 3
    shortened.maxstring = shortened.maxother = limit
    shortened.maxlist = shortened.maxtuple = shortened.maxdict = shortened.maxset = 8
    try:
        text = shortened.repr(value)
    except Exception:  # a value whose repr itself fails
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def parse_params(params: str | Mapping | None, *, what: str, allowed: set[str] | None) -> dict:
    """Parse ``"a=1, b='x'"`` (or take a dict) into a dict of literals, checking the keys (unless ``allowed`` is None).

    >>> parse_params("optimizer='adam', metrics=['accuracy']", what="compile", allowed=COMPILE_KEYS)
    {'optimizer': 'adam', 'metrics': ['accuracy']}
    """
    if params is None:
        return {}
    if isinstance(params, Mapping):
        result = dict(params)
    elif isinstance(params, str):
        result = _parse_keywords(params, what)
    else:
        raise TypeError(f"Expected {what} parameters as a dict or a string. Received: {type(params).__name__}")
    unknown = sorted(set(result) - allowed) if allowed is not None else []
    if unknown:
        raise DataError(
            f"Unknown {what} parameter {bounded_repr(unknown[0])}. Known: {', '.join(sorted(allowed))}."
        )
    return result


def refuse_unsupported_fit(params: Mapping) -> None:
    """Refuse, before any work, the fit parameters a fit would not honour, saying what to use instead.

    >>> refuse_unsupported_fit({"batch_size": 32, "verbose": 0})
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: fit parameter verbose is not supported: pass progress=True or False instead (the \
command line's --quiet).
    """
    for key, instead in UNSUPPORTED_FIT_KEYS.items():
        if key in params:
            raise DataError(f"fit parameter {key} is not supported: {instead}.")


def _parse_keywords(text: str, what: str) -> dict:
    if not text.strip():
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except (SyntaxError, RecursionError, MemoryError):
        raise DataError(f"Cannot parse {what} parameters {bounded_repr(text)}: expected name=value pairs.") from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise DataError(f"Cannot parse {what} parameters {bounded_repr(text)}: expected name=value pairs only.")
    result = {}
    for keyword in call.keywords:
        try:
            result[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            shown = _shortened(f"{keyword.arg}={ast.get_source_segment(f'f({text})', keyword.value)}")
            raise DataError(
                f"{what} parameter {shown} is not a literal: only strings, numbers, booleans, None, lists and "
                f"dicts are allowed (nothing is evaluated)."
            ) from None
    return result


def _shortened(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (a message repeats no more of what it was given).

    >>> _shortened("x" * 100, limit=10)
    'xxxxxxx...'
    """
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def optimizer_config(optimizer) -> object:
    """``'SGD(learning_rate=0.1)'`` -> a Keras optimizer config dict; other values unchanged.

    >>> optimizer_config("SGD(learning_rate=0.1)")
    {'class_name': 'SGD', 'config': {'learning_rate': 0.1}}
    >>> optimizer_config("adam")
    'adam'
    """
    if not isinstance(optimizer, str) or "(" not in optimizer:
        return optimizer
    name, _, rest = optimizer.partition("(")
    if not name.strip().isidentifier() or not rest.endswith(")"):
        raise DataError(f"Cannot parse optimizer {bounded_repr(optimizer)}: expected NAME or NAME(arg=value, ...).")
    return {"class_name": name.strip(), "config": _parse_keywords(rest[:-1], "optimizer")}


def keyword_defaults(function) -> dict:
    """``{name: default}`` of ``function``'s parameters that have one (to call a planner with another
    function's defaults filled in).

    >>> keyword_defaults(lambda a, b=1, *, c=None: None)
    {'b': 1, 'c': None}
    """
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}  # fmt: skip
