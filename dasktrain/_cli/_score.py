"""``dasktrain predict`` and ``dasktrain evaluate``: score a table with a stored model, or measure it."""

from __future__ import annotations

from dasktrain._cli._base import client_for, command, merge_job, number


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
    from dasktrain import connect, predict_table
    from dasktrain._jobs import PREDICT_KEYS
    from dasktrain.score._scoring import parse_pred_type

    params = merge_job(args, PREDICT_KEYS, "predict", ["model_table", "source_table", "output_table"])
    if isinstance(params.get("pred_type"), str):
        params["pred_type"] = parse_pred_type(params["pred_type"])
    db = connect(args.dsn)
    output = params["output_table"]
    args.on_interrupt = lambda exc: f"interrupted; {output!r} was left as it was (its new rows are written at the end)"
    with client_for(args) as client:
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
    from dasktrain import connect, evaluate
    from dasktrain._jobs import EVALUATE_KEYS

    params = merge_job(args, EVALUATE_KEYS, "evaluate", ["model_table", "table"])
    db = connect(args.dsn)
    with client_for(args) as client:
        result = evaluate(
            db, params.pop("model_table"), params.pop("table"), client=client, progress=not args.quiet, **params
        )
    for key, value in result.items():
        print(f"{key}: {number(value) if isinstance(value, float) else value}")
    return 0
