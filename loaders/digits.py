"""Load scikit-learn's digits (1,797 8×8 images, always available offline) into a table.

Run ``python -m loaders.digits --help``.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _cli


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``uint8`` images of shape (1797, 8, 8) and ``uint8`` labels.

    >>> x, y = read_digits()
    >>> x.shape, int(x.max()), sorted(set(y.tolist()))[:3]
    ((1797, 8, 8), 16, [0, 1, 2])
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(
        "python -m loaders.digits",
        "Load scikit-learn's digits data set into a table spread over segments.",
        "digits",
        "python -m loaders.digits --table digits --segments 2 --replace",
    )
    args = p.parse_args(argv)

    def read():
        x, y = read_digits()
        return x, y, None

    return _cli.run(args, read, source="sklearn.datasets.load_digits")


if __name__ == "__main__":
    sys.exit(main())
