"""Job files: YAML holding the same parameters as the API function a subcommand calls."""

from __future__ import annotations

from pathlib import Path

from .errors import DataError

FIT_KEYS = {
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
    "validation",
    "metrics_every",
    "sync_every",
    "replicas",
    "normalizing_const",
    "early_stopping",
    "model_table",
    "name",
    "description",
    "checkpoint_every",
    "checkpoint_keep",
    "resume",
    "retries",
    "seed",
    "cache",
}
#: dasktrain.fit_groups: one model per value of the ``by`` column.
FIT_GROUPS_KEYS = {
    "data",
    "by",
    "model_arch_table",
    "model_id",
    "x",
    "y",
    "compile",
    "fit",
    "iterations",
    "max_group_rows",
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
    """Read a YAML job file (safely: plain data only) and check its keys.

    >>> read_job("score.yaml", PREDICT_KEYS, "predict")  # doctest: +SKIP
    {'model_table': 'models', 'name': 'fashion_cnn', 'version': 'latest', ...}
    """
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DataError(f"Cannot read job file {path!r}: {exc.strerror}.") from None
    try:
        job = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"Job file {path!r} is not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(job, dict):
        raise DataError(f"Job file {path!r} must hold a mapping of parameter: value.")
    unknown = sorted(set(job) - allowed)
    if unknown:
        raise DataError(
            f"Job file {path!r} has unknown key(s) {', '.join(unknown)}; "
            f"'dasktrain {command}' takes: {', '.join(sorted(allowed))}."
        )
    return job
