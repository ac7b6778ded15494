"""Load MNIST-format IDX files (Fashion-MNIST, MNIST) into a table.

Run ``python -m loaders.idx --help``. With no file arguments it reads Fashion-MNIST from
Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np

from . import _cli

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array of its stored shape.

    >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")[:3]  # doctest: +SKIP
    array([9, 2, 1], dtype=uint8)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}).")
    ndim = data[3]
    shape = struct.unpack_from(f">{ndim}i", data, 4)
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = offset + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(f"{path} holds {len(data)} bytes; its header says {expected} (shape {shape}).")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def find_split(directory: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """The images and labels files of ``split`` ('train' or 'test') in ``directory``, gzipped or not."""
    if split not in FILES:
        raise ValueError(f"Expected split 'train' or 'test'. Received: split={split!r}")
    found = []
    for stem in FILES[split]:
        candidates = [Path(directory) / stem, Path(directory) / f"{stem}.gz"]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(
                f"No {stem}[.gz] in {directory}. Install Debian's dataset-fashion-mnist package, "
                f"or pass --images and --labels."
            )
        found.append(path)
    return found[0], found[1]


def read_images_and_labels(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a pair of IDX files; check they hold the same number of records."""
    x, y = read_idx(images), read_idx(labels)
    if len(x) != len(y):
        raise ValueError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels.")
    return x, y


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(
        "python -m loaders.idx",
        "Load MNIST-format IDX image and label files into a table spread over segments.",
        "fashion_mnist_train",
        "python -m loaders.idx --split test --table fashion_mnist_test",
    )
    p.add_argument("--images", help="IDX images file (default: Fashion-MNIST's, from --dir)")
    p.add_argument("--labels", help="IDX labels file (default: Fashion-MNIST's, from --dir)")
    p.add_argument("--dir", default=str(FASHION_MNIST_DIR), help=f"folder of IDX files (default: {FASHION_MNIST_DIR})")
    p.add_argument("--split", default="train", choices=sorted(FILES), help="which files of --dir (default: train)")
    args = p.parse_args(argv)
    if args.split == "test" and args.table == "fashion_mnist_train":
        args.table = "fashion_mnist_test"

    def read():
        images, labels = args.images, args.labels
        if (images is None) != (labels is None):
            raise ValueError("Pass both --images and --labels, or neither.")
        if images is None:
            images, labels = find_split(args.dir, args.split)
        x, y = read_images_and_labels(images, labels)
        fashion = Path(images).resolve().parent == FASHION_MNIST_DIR.resolve()
        classes = FASHION_MNIST_CLASSES if fashion and set(np.unique(y)) <= set(range(10)) else None
        return x, y, classes

    return _cli.run(args, read, source=args.images or f"{args.dir} ({args.split})")


if __name__ == "__main__":
    sys.exit(main())
