"""``dasktrain demo``: the whole product on the embedded database, in one command."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import DataError
from .strategies import strategy_named

COMPILE = "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"


def seed_cnn(input_shape: tuple[int, ...], classes: int):
    """The seed's one-layer CNN: Conv2D 32 3×3 relu, MaxPool 2×2, Dropout 0.25, Flatten, Dense softmax.

    >>> seed_cnn((28, 28, 1), 10).count_params()
    54410
    """
    import keras

    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def demo_data(say=print, directory=None):
    """Fashion-MNIST (train, test) from ``directory``; without one, Debian's package, else scikit-learn's digits.

    A ``directory`` given that holds no Fashion-MNIST files is an error naming the files looked for.
    """
    from loaders.digits import read_digits
    from loaders.idx import FASHION_MNIST_DIR, FILES, find_split, read_images_and_labels

    try:
        train = read_images_and_labels(*find_split(directory or FASHION_MNIST_DIR, "train"))
        test = read_images_and_labels(*find_split(directory or FASHION_MNIST_DIR, "test"))
        say(f"data: Fashion-MNIST from {directory or FASHION_MNIST_DIR} ({len(train[0]):,} train, "
            f"{len(test[0]):,} test images)")  # fmt: skip
        return "fashion_mnist", train, test, 255.0
    except FileNotFoundError:
        if directory is not None:
            names = [name for pair in FILES.values() for name in pair]
            raise DataError(
                f"--data-dir {directory} holds no Fashion-MNIST files: looked for {', '.join(names)} "
                f"(each may end in .gz)."
            ) from None
        x, y = read_digits()
        say(
            "data: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist), "
            "so the demo uses scikit-learn's digits instead"
        )
        return "digits", (x[:1500], y[:1500]), (x[1500:], y[1500:]), 16.0


def demo(
    *,
    dsn: str | None = None,
    strategy: str = "slowmo",
    segments: int = 4,
    iterations: int = 3,
    workers: int = 2,
    gpus: int | str | None = None,
    workers_per_gpu: int = 1,
    dashboard_address: str | None = None,
    plot: str = "dasktrain_demo.png",
    data_dir: str | None = None,
    progress: bool = True,
    say=print,
) -> dict:
    """Load data into segments, train the seed CNN on a local cluster, save it, report test accuracy.

    ``workers`` CPU worker processes, or with ``gpus`` (a count or "auto") ``workers_per_gpu`` on
    each GPU. ``data_dir`` is a folder of Fashion-MNIST IDX files (default: Debian's package). Returns a dict
    with ``accuracy``, ``model_table``, ``name``, ``version`` and ``plot``.

    Examples
    --------
    >>> dasktrain.demo(iterations=1)["accuracy"] > 0.5  # doctest: +SKIP
    True
    """
    import numpy as np
    from distributed import Client

    import loaders

    from . import connect, fit, load_model, save_model
    from ._params import positive_int
    from .runtime._cluster import cluster
    from .runtime._guard import cluster_workers

    chosen = strategy_named(strategy)
    for label, value in (("segments", segments), ("iterations", iterations), ("workers", workers)):
        positive_int(value, label)
    started = time.perf_counter()
    name, (x, y), (x_test, y_test), normalizing_const = demo_data(say, data_dir)
    db = connect(dsn)
    say(f"database: {db!r}")
    train_table, test_table = f"demo_{name}_train", f"demo_{name}_test"
    loaders.write_arrays(db, train_table, x, y, segments=segments, if_exists="replace", progress=progress)
    loaders.write_arrays(db, test_table, x_test, y_test, segments=segments, if_exists="replace", progress=progress)
    if db.dialect.distributed:  # the cluster's segments, whatever was asked for
        from .io._segments import greenplum_segment_count

        with db.cursor() as cur:
            segments = greenplum_segment_count(cur)
    say(f"loaded {train_table} and {test_table}, {segments} segments each")

    model = seed_cnn(x.shape[1:] + (1,), 10)
    shape = {"gpus": gpus, "workers_per_gpu": workers_per_gpu} if gpus else {"n_workers": workers}
    if dashboard_address is not None:
        shape["dashboard_address"] = dashboard_address
    with cluster(**shape) as local_cluster, Client(local_cluster) as client:
        count = len(cluster_workers(client))
        kind = f"GPU worker processes ({workers_per_gpu} per GPU)" if gpus else "worker processes"
        say(f"cluster: {count} {kind}; dashboard: {client.dashboard_link}")
        say(f"training with {chosen!r} for {iterations} iterations")
        result = fit(
            train_table,
            model,
            x="x",
            y="y",
            db=db,
            compile=COMPILE,
            fit={"batch_size": 128 if name == "fashion_mnist" else 16},  # digits: 1,500 rows in all
            iterations=iterations,
            strategy=chosen,
            validation=test_table,
            normalizing_const=normalizing_const,
            client=client,
            progress=progress,
        )
    version = save_model(db, "demo_models", result, name=f"{name}_cnn", description="dasktrain demo")
    trained = load_model(db, "demo_models", f"{name}_cnn", version)
    features = (x_test.astype(np.float32) / normalizing_const)[..., np.newaxis]
    accuracy = float(np.mean(trained.predict(features, batch_size=512, verbose=0).argmax(axis=1) == y_test))
    plot_path = str(Path(result.plot(plot)).resolve())
    say(f"test accuracy: {accuracy:.4f} on {len(y_test):,} test images")
    say(f"model: table demo_models, name {name}_cnn, version {version} (summary in demo_models_summary)")
    say(f"learning curve: {plot_path}")
    say(f"total time: {time.perf_counter() - started:.0f} s")
    return {
        "accuracy": accuracy,
        "model_table": "demo_models",
        "name": f"{name}_cnn",
        "version": version,
        "plot": plot_path,
    }
