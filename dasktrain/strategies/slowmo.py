from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .base import Strategy, Weights

LR_SCALINGS = ("sqrt", "linear", None)


class SlowMo(Strategy):
    """Averaging with an outer optimizer: momentum on each round's change of the merged model.

    Each round the replicas train from the center; the row-weighted mean of their models gives a
    pseudo-gradient ``g = center − mean``, and the center takes a step of SGD with momentum on it::

        v ← momentum · v + g
        center ← center − outer_lr · (g + momentum · v)     (nesterov=True)
        center ← center − outer_lr · v                      (nesterov=False)

    This is SlowMo (Wang et al., ICLR 2020); with Nesterov momentum it is the outer optimizer of
    DiLoCo (Douillard et al., 2023). ``SlowMo(outer_lr=1, momentum=0, lr_scaling=None)`` is exactly
    :class:`Averaging`.
    The momentum ``v`` is kept with the center, and saved in checkpoints.

    Each replica takes 1/k of the optimizer steps of one process per epoch (k replicas), so the
    replicas' learning rate is scaled up: by k (``lr_scaling="linear"``, the default) or √k
    (``"sqrt"``), reached linearly over the first ``warmup`` rounds (the linear scaling rule with
    gradual warm-up of Goyal et al., 2017). ``lr_scaling=None`` keeps the compiled rate; learning-rate
    schedules are left alone. Measured on Fashion-MNIST (``benchmarks/time_to_accuracy.py``), the
    linear rule matched one process's accuracy per epoch at 4 and 8 replicas, better than √k. The
    rule counts replicas, not segments: a table's layout does not change it.

    Parameters
    ----------
    outer_lr : float, default 0.7
    momentum : float, default 0.9
        In [0, 1).
    nesterov : bool, default True
    lr_scaling : {"linear", "sqrt", None}, default "linear"
    warmup : int, default 2
        Rounds over which the scaled learning rate is reached (0: from the first round).

    Examples
    --------
    >>> SlowMo()
    SlowMo(outer_lr=0.7, momentum=0.9, nesterov=True, lr_scaling='linear', warmup=2)
    >>> [round(SlowMo().inner_learning_rate(0.001, replicas=4, iteration=i), 6) for i in (1, 2, 3)]
    [0.002, 0.003, 0.004]
    """

    name = "slowmo"

    def __init__(
        self,
        outer_lr: float = 0.7,
        momentum: float = 0.9,
        nesterov: bool = True,
        lr_scaling: str | None = "linear",
        warmup: int = 2,
    ):
        self.outer_lr = outer_lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.lr_scaling = lr_scaling
        self.warmup = warmup

    def validate(self) -> None:
        if isinstance(self.outer_lr, bool) or not isinstance(self.outer_lr, int | float) or not self.outer_lr > 0:
            raise DataError(f"SlowMo expects a positive outer_lr. Received: outer_lr={self.outer_lr!r}")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, int | float) or not 0 <= self.momentum < 1:
            raise DataError(f"SlowMo expects momentum in [0, 1). Received: momentum={self.momentum!r}")
        if not isinstance(self.nesterov, bool):
            raise DataError(f"SlowMo expects nesterov=True or False. Received: nesterov={self.nesterov!r}")
        if self.lr_scaling not in LR_SCALINGS:
            raise DataError(f"SlowMo expects lr_scaling 'sqrt', 'linear' or None. Received: {self.lr_scaling!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise DataError(f"SlowMo expects warmup as a whole number of rounds >= 0. Received: {self.warmup!r}")

    def update(self, previous: Weights, mean: Weights, state) -> tuple[Weights, Weights]:
        velocity = state if state is not None else [np.zeros_like(p, dtype=np.float32) for p in previous]
        center, new_velocity = [], []
        for p, m, v in zip(previous, mean, velocity, strict=True):
            g = p.astype(np.float64) - m
            v = self.momentum * v.astype(np.float64) + g
            step = g + self.momentum * v if self.nesterov else v
            center.append((p - self.outer_lr * step).astype(np.float32))
            new_velocity.append(v.astype(np.float32))
        return center, new_velocity

    def inner_learning_rate(self, base: float, replicas: int, iteration: int) -> float:
        factor = {"sqrt": math.sqrt(replicas), "linear": float(replicas), None: 1.0}[self.lr_scaling]
        if self.warmup and iteration <= self.warmup:
            factor = 1.0 + (factor - 1.0) * iteration / (self.warmup + 1)
        return base * factor

    def params(self) -> dict:
        return {
            "outer_lr": self.outer_lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "lr_scaling": self.lr_scaling,
            "warmup": self.warmup,
        }
