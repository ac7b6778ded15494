"""The ``dasktrain`` command line: each subcommand is a thin layer over one API function.

Run ``dasktrain --help`` and ``dasktrain SUBCOMMAND --help``. Errors print one line on stderr
and exit with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from ._version import __version__
from .errors import DasktrainError

_COMMANDS: dict[str, tuple[str, str, Callable, Callable]] = {}


def command(name: str, help: str, example: str):
    """Register ``add_arguments(parser)`` and then ``run(args) -> int`` as subcommand ``name``."""

    def register(add_arguments: Callable):
        def with_run(run: Callable):
            _COMMANDS[name] = (help, example, add_arguments, run)
            return run

        return with_run

    return register


@contextlib.contextmanager
def _client(args):
    """A client on --scheduler; on a local cluster shaped by --gpus; else None (the API starts one when needed)."""
    from distributed import Client

    shaped = args.gpus is not None or args.workers_per_gpu is not None
    # Dask's own variable: the Kubernetes operator sets it in a DaskJob's runner, `dask worker` reads it too.
    scheduler = getattr(args, "scheduler", None) or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if scheduler:
        if shaped:
            raise DasktrainError(
                "--gpus and --workers-per-gpu shape a local cluster, not --scheduler's: start the GPU workers of "
                "that cluster with 'dask cuda worker SCHEDULER --resources GPU=1 --preload dasktrain.gpu_worker'"
            )
        from dask import config

        if not args.quiet:
            wait = config.get("distributed.comm.timeouts.connect")
            print(f"connecting to the Dask scheduler at {scheduler} (waiting up to {wait})...", file=sys.stderr)
        with Client(scheduler) as client:
            yield client
    elif shaped or args.dashboard is not None:
        from .runtime._cluster import announce, cluster

        shape = {"gpus": _gpus(args.gpus), "workers_per_gpu": args.workers_per_gpu or 1} if shaped else {}
        if args.dashboard is not None:
            shape["dashboard_address"] = args.dashboard
        with cluster(**shape) as local, Client(local) as client:
            if not args.quiet:
                announce(client)
            yield client
    else:
        yield None


def _gpus(text: str | None):
    """--gpus: "auto", or a count."""
    if text is None or text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise DasktrainError(f"--gpus takes 'auto' or a number of GPUs, not {text!r}") from None


def _merge_job(args, keys: set[str], command_name: str, required: Sequence[str]) -> dict:
    """Parameters from --job, overridden by any flag given; check the required ones are there."""
    from ._jobs import read_job

    params = read_job(args.job, keys, command_name) if args.job else {}
    for key in keys:
        value = getattr(args, key, None)
        if value is not None and value is not False:
            params[key] = value
    if "version" in params:  # a number, or "latest" (= None) from a flag or a job file
        params["version"] = None if params["version"] in (None, "latest") else _version(params["version"])
    missing = [k for k in required if params.get(k) is None]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise DasktrainError(f"missing {flags} (or the same keys in --job)")
    return params


# -- segments, load, demo -----------------------------------------------------------------------


def _segments_arguments(p):
    p.add_argument("table", help="table name, optionally schema-qualified")
    p.add_argument("-n", type=int, help="plain PostgreSQL tables: number of block ranges (default: CPUs)")
    p.add_argument("--exact", action="store_true", help="count each segment's rows (default: catalog estimates)")


@command(
    "segments",
    "list a table's segments (the units read and scored in parallel)",
    "dasktrain segments fashion_mnist_train",
)(_segments_arguments)
def _segments(args) -> int:
    from . import connect, segments

    db = connect(args.dsn)
    found = segments(db, args.table, args.n, exact=args.exact)  # before the header: an error prints nothing else
    print(f"{'segment':>7}  {'rows':>10}  {'host':<20}  relation")
    for seg in found:
        print(f"{seg.id:>7}  {seg.rows:>10}  {seg.host or '-':<20}  {seg.relation}")
    return 0


def _load_arguments(p):
    p.add_argument("loader", choices=["idx", "cifar10", "images", "digits"], help="which loader program")
    p.add_argument("loader_args", nargs=argparse.REMAINDER, help="its options (see python -m loaders.NAME --help)")


@command(
    "load",
    "load raw data into a table spread over segments (the loaders programs)",
    "dasktrain load idx --split test --table fashion_mnist_test",
)(_load_arguments)
def _load(args) -> int:
    import importlib

    module = importlib.import_module(f"loaders.{args.loader}")
    extra = ["--dsn", args.dsn] if args.dsn and "--dsn" not in args.loader_args else []
    extra += ["--quiet"] if args.quiet and "--quiet" not in args.loader_args else []
    return module.main([*args.loader_args, *extra])


def _demo_arguments(p):
    from .strategies import STRATEGIES

    p.add_argument(
        "--strategy", default="slowmo", type=str.lower, choices=sorted(STRATEGIES), help="how replicas' models merge"
    )
    p.add_argument("--segments", type=int, default=4, help="segments to load the data into (default: 4)")
    p.add_argument("--iterations", type=int, default=3, help="training rounds (default: 3)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default: 2)")
    p.add_argument("--plot", default="dasktrain_demo.png", help="where to write the learning curve PNG")
    p.add_argument("--data-dir", help="folder of Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)")


@command(
    "demo",
    "load Fashion-MNIST into segments, train a CNN on a local cluster, save it, score it",
    "dasktrain demo --strategy easgd --iterations 5",
)(_demo_arguments)
def _demo(args) -> int:
    from ._demo import demo

    demo(
        dsn=args.dsn,
        strategy=args.strategy,
        segments=args.segments,
        iterations=args.iterations,
        workers=args.workers,
        gpus=_gpus(args.gpus) if args.gpus is not None else None,
        workers_per_gpu=args.workers_per_gpu or 1,
        dashboard_address=args.dashboard,
        plot=args.plot,
        data_dir=args.data_dir,
        progress=not args.quiet,
    )
    return 0


# -- fit, predict, evaluate ------------------------------------------------------------------------


def _replicas_flag(text: str):
    from .train._replicas import parse_replicas

    try:
        return parse_replicas(text)
    except DasktrainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fit_arguments(p):
    from .strategies import STRATEGIES

    p.add_argument("--job", help="YAML file with the parameters of dasktrain.fit (flags override it)")
    p.add_argument("--data", help="training table")
    p.add_argument("--model-arch-table", help="architecture table (see 'dasktrain architectures')")
    p.add_argument("--model-id", type=int, help="architecture id in --model-arch-table")
    p.add_argument("--x", help="feature column (default: x)")
    p.add_argument("--y", help="label column (default: y)")
    p.add_argument("--compile", help="Keras compile parameters, e.g. \"optimizer='adam', loss='mse'\"")
    p.add_argument("--fit", help='Keras fit parameters, e.g. "batch_size=128, epochs=1"')
    p.add_argument("--iterations", type=int, help="training rounds")
    p.add_argument("--strategy", type=str.lower, choices=sorted(STRATEGIES), help="how models merge")
    p.add_argument(
        "--strategy-params",
        help='the strategy\'s parameters, e.g. "momentum=0.8, lr_scaling=None" for slowmo (see its docs)',
    )
    p.add_argument("--alpha", type=float, help="EASGD alpha (default 0.01); only with --strategy easgd")
    p.add_argument("--beta", type=float, help="EASGD beta (default 0.9); only with --strategy easgd")
    p.add_argument("--validation", help="validation table")
    p.add_argument("--metrics-every", type=int, help="evaluate validation every k iterations (default 1)")
    p.add_argument("--sync-every", type=int, help="make a round k minibatches per replica")
    p.add_argument(
        "--replicas",
        type=_replicas_flag,
        help="models trained in parallel: a number, or 'segments' for one per segment (default: one per worker)",
    )
    p.add_argument("--normalizing-const", type=float, help="divide features by it (e.g. 255)")
    p.add_argument("--model-table", help="model table to save the result in (checked before training starts)")
    p.add_argument("--name", help="model name (default: model)")
    p.add_argument("--description", help="free text saved with the model")
    p.add_argument("--checkpoint-every", type=int, help="save a checkpoint version in --model-table every k iterations")
    p.add_argument("--checkpoint-keep", type=int, help="checkpoint versions to keep (default 2)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of --name")
    p.add_argument("--retries", type=int, help="times a round may be retried after losing workers (default 2)")


@command(
    "fit",
    "train a model on a table's segments and save it as a new version",
    "dasktrain fit --data digits --model-arch-table arch --model-id 1 --iterations 5 --model-table models "
    "--name digits_mlp --compile \"optimizer='adam', loss='sparse_categorical_crossentropy', "
    "metrics=['accuracy']\" --normalizing-const 16",
)(_fit_arguments)
def _fit(args) -> int:
    from . import connect, fit, save_model
    from ._jobs import FIT_KEYS
    from ._params import parse_params
    from .models._model_store import check_model_table
    from .strategies import strategy_named
    from .train._replicas import parse_replicas

    params = _merge_job(
        args, FIT_KEYS, "fit", ["data", "model_arch_table", "model_id", "compile", "iterations", "model_table"]
    )
    # Any name parses here; strategy_named refuses (naming it) what the chosen strategy does not take.
    strategy_params = parse_params(params.get("strategy_params"), what="strategy", allowed=None)
    strategy_params.update({k: params[k] for k in ("alpha", "beta") if params.get(k) is not None})
    strategy = strategy_named(params.get("strategy", "slowmo"), **strategy_params)
    db = connect(args.dsn)
    check_model_table(db, params["model_table"])  # before training, not after it
    every = params.get("checkpoint_every")
    checkpoint = (db, params["model_table"], params.get("name") or "model") if every or params.get("resume") else None
    with _client(args) as client:
        result = fit(
            params["data"],
            (params["model_arch_table"], params["model_id"]),
            x=params.get("x", "x"),
            y=params.get("y", "y"),
            compile=params["compile"],
            fit=params.get("fit"),
            iterations=params["iterations"],
            strategy=strategy,
            validation=params.get("validation"),
            metrics_every=params.get("metrics_every", 1),
            sync_every=params.get("sync_every"),
            replicas=parse_replicas(params.get("replicas")),
            normalizing_const=params.get("normalizing_const", 1.0),
            early_stopping=params.get("early_stopping"),
            checkpoint=checkpoint,
            checkpoint_every=every or 1,
            checkpoint_keep=params.get("checkpoint_keep", 2),
            resume=bool(params.get("resume")),
            retries=params.get("retries", 2),
            cache=params.get("cache", "auto"),
            db=db,
            client=client,
            progress=not args.quiet,
        )
    version = save_model(
        db, params["model_table"], result, name=params.get("name"), description=params.get("description")
    )
    last = result.history[-1]
    print(
        f"trained {len(result.history)} iterations: " + ", ".join(f"{k}={v:.4f}" for k, v in last["training"].items())
    )
    if last.get("validation"):
        print("validation: " + ", ".join(f"{k}={v:.4f}" for k, v in last["validation"].items()))
    print(f"saved {params['model_table']}: name {params.get('name') or 'model'}, version {version}")
    return 0


def _predict_arguments(p):
    p.add_argument("--job", help="YAML scoring job (same keys as dasktrain.predict_table; flags override it)")
    p.add_argument("--model-table", help="model table (from 'dasktrain fit' or dasktrain.save_model)")
    p.add_argument("--name", help="model name (default: the only one in the table)")
    p.add_argument("--version", help="model version, or 'latest' (default)")
    p.add_argument("--source", dest="source_table", help="table to score")
    p.add_argument("--output", dest="output_table", help="table to write the predictions to")
    p.add_argument("--pred-type", help="response (default), prob, an integer k (top k) or a threshold in (0, 1)")
    p.add_argument("--id", help="unique integer id column of --source (default: id)")
    p.add_argument("--x", help="feature column (default: the model's)")
    p.add_argument("--batch-size", type=int, help="rows per prediction batch (default 1024)")
    p.add_argument("--replace", action="store_true", help="replace --output atomically if it exists")
    p.add_argument("--skip-nonfinite", action="store_true", help="skip (and count) rows with NaN or infinite features")


@command(
    "predict",
    "score a table into another, segment by segment, in parallel",
    "dasktrain predict --model-table models --name fashion_cnn --source fashion_mnist_test "
    "--output fashion_scores --pred-type 3 --replace",
)(_predict_arguments)
def _predict(args) -> int:
    from . import connect, predict_table
    from ._jobs import PREDICT_KEYS
    from .score._scoring import parse_pred_type

    params = _merge_job(args, PREDICT_KEYS, "predict", ["model_table", "source_table", "output_table"])
    if isinstance(params.get("pred_type"), str):
        params["pred_type"] = parse_pred_type(params["pred_type"])
    db = connect(args.dsn)
    with _client(args) as client:
        rows = predict_table(
            db,
            params.pop("model_table"),
            params.pop("source_table"),
            params.pop("output_table"),
            client=client,
            progress=not args.quiet,
            **params,
        )
    print(f"wrote {rows} prediction rows")
    return 0


def _version(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DasktrainError(f"--version takes a number or 'latest'. Received: {value!r}") from None


def _evaluate_arguments(p):
    p.add_argument("--job", help="YAML file with the parameters of dasktrain.evaluate")
    p.add_argument("--model-table", help="model table")
    p.add_argument("--name", help="model name")
    p.add_argument("--version", help="model version, or 'latest' (default)")
    p.add_argument("--table", help="table with features and labels")
    p.add_argument("--x", help="feature column (default: the model's)")
    p.add_argument("--y", help="label column (default: the model's)")
    p.add_argument("--output-table", help="write loss and metric to this table")
    p.add_argument("--replace", action="store_true", help="replace --output-table if it exists")
    p.add_argument(
        "--skip-nonfinite", action="store_true", help="leave out (and count) rows with NaN or infinite features"
    )


@command(
    "evaluate",
    "loss and metrics of a stored model over a whole table",
    "dasktrain evaluate --model-table models --name fashion_cnn --table fashion_mnist_test",
)(_evaluate_arguments)
def _evaluate(args) -> int:
    from . import connect, evaluate
    from ._jobs import EVALUATE_KEYS

    params = _merge_job(args, EVALUATE_KEYS, "evaluate", ["model_table", "table"])
    db = connect(args.dsn)
    with _client(args) as client:
        result = evaluate(
            db, params.pop("model_table"), params.pop("table"), client=client, progress=not args.quiet, **params
        )
    for key, value in result.items():
        print(f"{key}: {_number(value) if isinstance(value, float) else value}")
    return 0


# -- models, architectures --------------------------------------------------------------------------


def _models_arguments(p):
    p.add_argument("action", choices=["list", "show", "delete"])
    p.add_argument("--model-table", required=True, help="model table")
    p.add_argument("--name", help="model name (show, delete)")
    p.add_argument("--version", type=int, help="version (show: default latest; delete: default all versions)")


@command(
    "models", "list, show or delete stored models", "dasktrain models show --model-table models --name fashion_cnn"
)(_models_arguments)
def _models(args) -> int:
    from . import connect, delete_model, list_models, model_summary
    from .models._model_store import load_members

    db = connect(args.dsn)
    if args.action == "list":
        _print_models(list_models(db, args.model_table))
    elif args.action == "show":
        summary = model_summary(db, args.model_table, args.name, args.version)
        _print_summary(summary)
        _print_layers(load_members(db, args.model_table, summary["name"], summary["version"])[0])
    else:
        if not args.name:
            raise DasktrainError("models delete needs --name")
        print(f"deleted {delete_model(db, args.model_table, args.name, args.version)} version(s)")
    return 0


def _number(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_models(models: list[dict]) -> None:
    metric = next((m["metrics_type"][0] for m in models if m["metrics_type"]), "metric")[:10]
    print(f"{'name':<24} {'version':>7} {'status':<10} {'strategy':<9} {'iters':>5} {'train loss':>10} "
          f"{'train ' + metric:>16} {'val loss':>9} {'val ' + metric:>14}  created")  # fmt: skip
    for m in models:
        print(
            f"{m['name']:<24} {m['version']:>7} {m['status']:<10} {m['strategy'] or '-':<9} {m['num_iterations']:>5} "
            f"{_number(m['training_loss_final']):>10} {_number(m['training_metrics_final']):>16} "
            f"{_number(m['validation_loss_final']):>9} {_number(m['validation_metrics_final']):>14}  "
            f"{m['created_at']:%Y-%m-%d %H:%M}"
        )


def _print_summary(summary: dict) -> None:
    """One line per field, floats rounded; the per-iteration lists are shortened to their ends."""
    for key, value in summary.items():
        if key in ("history",):
            continue
        if isinstance(value, float):
            value = _number(value)
        elif isinstance(value, list) and value and all(isinstance(v, float) for v in value):
            shown = [_number(v) for v in value]
            value = "[" + ", ".join(shown if len(shown) <= 6 else [*shown[:3], "...", *shown[-2:]]) + "]"
        print(f"{key}: {value}")


def _print_layers(architecture: str) -> None:
    """The layers as Keras's summary lists them: name (type), output shape, parameters."""
    from ._model_spec import build_model

    model = build_model(architecture)
    print(f"\n{'layer (type)':<36} {'output shape':<22} {'params':>10}")
    for layer in model.layers:
        shape = str(tuple(getattr(layer, "output", None).shape)) if hasattr(layer, "output") else "?"
        print(f"{layer.name + ' (' + type(layer).__name__ + ')':<36} {shape:<22} {layer.count_params():>10,}")
    print(f"{'total':<36} {'':<22} {model.count_params():>10,}")


def _architectures_arguments(p):
    p.add_argument("action", choices=["load", "list", "delete"])
    p.add_argument("--table", required=True, help="architecture table")
    p.add_argument("--json", help="load: file with the Keras model JSON (model.to_json()) or a .keras file")
    p.add_argument("--name", help="load: a name for it")
    p.add_argument("--description", help="load: free text")
    p.add_argument("--model-id", type=int, help="delete: which architecture")


@command(
    "architectures",
    "load, list or delete model architectures (MADlib's model_arch tables)",
    "dasktrain architectures load --table model_arch --json cnn.json --name cnn",
)(_architectures_arguments)
def _architectures(args) -> int:
    from pathlib import Path

    from . import connect, delete_architecture, list_architectures, load_architecture

    db = connect(args.dsn)
    if args.action == "load":
        if not args.json:
            raise DasktrainError("architectures load needs --json FILE")
        weights = None
        if args.json.endswith(".keras"):
            from .score._scoring import load_keras_file

            model = load_keras_file(args.json)
            architecture, weights = model.to_json(), model.get_weights()
        else:
            architecture = Path(args.json).read_text()
        model_id = load_architecture(
            db, args.table, architecture, name=args.name, description=args.description, weights=weights
        )
        print(f"model_id {model_id}")
    elif args.action == "list":
        print(f"{'model_id':>8}  {'weights':<7}  {'name':<20}  description")
        for a in list_architectures(db, args.table):
            print(
                f"{a['model_id']:>8}  {'yes' if a['has_weights'] else 'no':<7}  {a['name'] or '-':<20}  "
                f"{a['description'] or ''}"
            )
    else:
        if args.model_id is None:
            raise DasktrainError("architectures delete needs --model-id")
        delete_architecture(db, args.table, args.model_id)
        print(f"deleted model_id {args.model_id}")
    return 0


# -- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dasktrain",
        description="Train Keras models with Dask on data in Greenplum and PostgreSQL.",
        epilog="example:\n  dasktrain demo\n  dasktrain predict --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dasktrain {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="database (default: $DASKTRAIN_DSN, else the embedded server)")
    common.add_argument(
        "--scheduler", help="Dask scheduler ADDRESS (default: $DASK_SCHEDULER_ADDRESS, else a local cluster)"
    )
    common.add_argument(
        "--gpus", metavar="N|auto", help="local cluster: GPU workers on N GPUs, or on all (default: all, if any)"
    )
    common.add_argument("--workers-per-gpu", type=int, metavar="K", help="local cluster: K workers share each GPU")
    common.add_argument(
        "--dashboard", metavar="[HOST]:PORT", help="local cluster: where its Dask dashboard listens (default :8787, "
        "or a free port when 8787 is taken)"
    )  # fmt: skip
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, example, add_arguments, run) in _COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dasktrain`` console script; returns the exit status."""
    import os

    import psycopg2

    from .io._database import DSN_ENV, redact_text

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DasktrainError, OSError, ValueError, TypeError, psycopg2.Error) as exc:
        if args.debug:  # the traceback too, and still the status of a user error
            import traceback

            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        message = redact_text(in_command_words(message), args.dsn, os.environ.get(DSN_ENV))
        print(f"dasktrain {args.command}: error: {message}", file=sys.stderr)
        return 2


#: How the library's messages name Python calls, and what a command-line user types instead.
_COMMAND_WORDS = [
    ("Pass replace=True (--replace) to replace it", "Pass --replace to replace it"),
    ("Pass replace=True to replace it", "Pass --replace to replace it"),
    ("create it with load_architecture()", "create it with 'dasktrain architectures load'"),
    ("see list_models()", "see 'dasktrain models list'"),
    ("pass name= to choose one", "pass --name to choose one"),
    ("or pass dsn=None to use the embedded server", "or leave out --dsn and DASKTRAIN_DSN to use the embedded server"),
    ("pass checkpoint=(db, table, name) to keep progress", "pass --checkpoint-every to keep progress"),
    ("or pass use_gpus=False", "or start a cluster without GPU workers"),
]


def in_command_words(message: str) -> str:
    """``message`` with Python calls replaced by the commands and flags that do the same.

    >>> in_command_words("Output table 'x' already exists. Pass replace=True to replace it.")
    "Output table 'x' already exists. Pass --replace to replace it."
    """
    for python, command in _COMMAND_WORDS:
        message = message.replace(python, command)
    return message


if __name__ == "__main__":
    sys.exit(main())
