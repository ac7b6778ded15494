"""Load Fashion-MNIST into 4 segments and read it back as a Dask DataFrame, one partition per segment.

    python examples/read_fashion_mnist.py

Uses the embedded PostgreSQL server (or $DASKTRAIN_DSN) and a local cluster of 2 worker processes.
Falls back to scikit-learn's digits when Debian's dataset-fashion-mnist package is not installed.
"""

from distributed import Client, LocalCluster

import dasktrain
import loaders
from loaders.idx import FASHION_MNIST_DIR, find_split, read_images_and_labels

if __name__ == "__main__":
    db = dasktrain.connect()
    try:
        x, y = read_images_and_labels(*find_split(FASHION_MNIST_DIR, "train"))
    except FileNotFoundError:
        print("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): using digits")
        x, y = loaders.read_digits()
    loaders.write_arrays(db, "example_images", x, y, segments=4, if_exists="replace", progress=True)

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
        ddf = dasktrain.read_table(db, "example_images").persist()
        print(f"{ddf.npartitions} partitions, rows per partition: {ddf.map_partitions(len).compute().tolist()}")
        X, labels = dasktrain.to_arrays(ddf.partitions[0].compute(), x="x", y="y")
        print(f"partition 0: X {X.shape} {X.dtype}, y {labels.shape} {labels.dtype}")
