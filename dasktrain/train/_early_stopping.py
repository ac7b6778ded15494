"""``EarlyStopping``: end the "while not converged" loop when the monitored loss stops improving."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from ..errors import DataError


@dataclass
class EarlyStopping:
    """Stop when the loss has not improved by more than ``min_delta`` for ``patience`` iterations.

    Parameters
    ----------
    patience : int, default 3
        Iterations without improvement before stopping.
    min_delta : float, default 0.0
        Smallest decrease that counts as an improvement.
    monitor : {"validation_loss", "training_loss"}, optional
        Default: the validation loss when validation data is given, else the training loss.

    Examples
    --------
    >>> stop = EarlyStopping(patience=1)
    >>> [stop.update(loss) for loss in (1.0, 0.5, 0.6)]
    [False, False, True]
    """

    patience: int = 3
    min_delta: float = 0.0
    monitor: str | None = None

    def __post_init__(self):
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise DataError(f"EarlyStopping expects a positive integer patience. Received: patience={self.patience!r}")
        if not isinstance(self.min_delta, int | float) or self.min_delta < 0:
            raise DataError(f"EarlyStopping expects min_delta >= 0. Received: min_delta={self.min_delta!r}")
        if self.monitor not in (None, "validation_loss", "training_loss"):
            raise DataError(
                f"EarlyStopping monitors 'validation_loss' or 'training_loss'. Received: monitor={self.monitor!r}"
            )
        self._best = float("inf")
        self._waited = 0

    @classmethod
    def of(cls, value) -> EarlyStopping | None:
        """Accept None, an :class:`EarlyStopping`, a dict of its parameters, or a whole number (its patience).

        >>> EarlyStopping.of(2)
        EarlyStopping(patience=2, min_delta=0.0, monitor=None)
        """
        if value is None or isinstance(value, EarlyStopping):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(patience=value)
        if isinstance(value, Mapping):
            known = [f.name for f in fields(cls)]
            unknown = sorted(set(value) - set(known))
            if unknown:
                raise DataError(
                    f"early_stopping has no parameter {', '.join(map(repr, unknown))}. Known: {', '.join(known)}."
                )
            return cls(**value)
        raise TypeError(
            f"Expected early_stopping as EarlyStopping, a dict or a patience. Received: {type(value).__name__}"
        )

    def update(self, loss: float) -> bool:
        """Record one iteration's loss; return True when training should stop."""
        if loss < self._best - self.min_delta:
            self._best, self._waited = loss, 0
            return False
        self._waited += 1
        return self._waited >= self.patience

    def reason(self, monitor: str) -> str:
        """Why training stopped, in words, for the ``monitor`` that was followed.

        >>> stop = EarlyStopping(patience=2, min_delta=0.01)
        >>> stop.reason("validation_loss")
        'validation loss did not improve by more than 0.01 for 2 iterations'
        """
        by = f" by more than {self.min_delta:g}" if self.min_delta else ""
        count = max(self._waited, self.patience)
        return f"{monitor.replace('_', ' ')} did not improve{by} for {count} iteration{'s' if count != 1 else ''}"
