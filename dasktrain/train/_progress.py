"""Progress of a fit: a bar that moves as each replica of a round finishes, as Keras's moves per batch.

On a terminal it redraws at most twice a second; written to a file or a pipe (a batch job's log)
it writes a line at most every 30 seconds, so logs stay short. A fit that stops early ends its bar
at the iteration it stopped at, saying so; a fit interrupted with Ctrl-C says in which iteration.
"""

from __future__ import annotations

import sys
import threading
import time


class FitProgress:
    """``fit  45%|████▌     | 9/20 replicas [00:12<00:14, iteration=3/5, rows/s=9,812, loss=0.41, accuracy=0.86]``.

    >>> progress = FitProgress(iterations=2, done=0, replicas=4, rows=400, enabled=False)
    >>> progress.round_done({"iteration": 1, "training": {"loss": 0.5}})
    >>> progress.bar.n
    4
    """

    def __init__(self, iterations: int, done: int, replicas: int, rows: int, enabled: bool):
        from tqdm.auto import tqdm

        self.iterations, self.replicas, self.rows = iterations, replicas, rows
        interactive = sys.stderr.isatty()
        self.bar = tqdm(
            total=iterations * replicas,
            initial=done * replicas,
            desc="fit",
            unit="replica",
            disable=not enabled,
            leave=True,
            mininterval=0.5 if interactive else 30.0,
        )
        self._lock = threading.Lock()
        self._round_started = time.perf_counter()
        self._finished = done * replicas
        self.done = done  # iterations finished

    def set_replicas(self, replicas: int) -> None:
        """The rounds from now on train ``replicas`` models (workers joined or left)."""
        with self._lock:
            rounds = self._finished // self.replicas
            self.replicas = replicas
            self._finished = rounds * replicas
            self.bar.total = self.iterations * replicas
            self.bar.n = self._finished

    def replica_done(self, future) -> None:
        """A training future's callback: one more replica of the round is trained."""
        if future.status != "finished":
            return
        with self._lock:
            if self.bar.n < self._finished + self.replicas:  # a retried round does not count twice
                self.bar.update(1)

    def round_done(self, entry: dict) -> None:
        """Set the bar to the round's end and show its speed and metrics."""
        seconds = time.perf_counter() - self._round_started
        with self._lock:
            self.done = entry["iteration"]
            self._finished = entry["iteration"] * self.replicas
            self.bar.n = self._finished
            postfix = {"iteration": f"{entry['iteration']}/{self.iterations}"}
            if seconds > 0 and self.rows:
                postfix["rows/s"] = f"{self.rows / seconds:,.0f}"
            postfix.update(_metrics(entry))
            self.bar.set_postfix(postfix, refresh=True)
        self._round_started = time.perf_counter()

    def close(self) -> None:
        """Close the bar; called as the fit ends, in a ``finally`` clause.

        Ended without an error before its last iteration, the fit stopped early: the bar ends
        there (at 100 %, not frozen part way) and says so. Interrupted by Ctrl-C, the
        ``KeyboardInterrupt`` gets a note saying in which iteration (:pep:`678`).
        """
        # In a finally clause, sys.exc_info() is the exception on its way out (None on a normal end).
        exc = sys.exc_info()[1]
        if exc is None and self.done < self.iterations:
            with self._lock:
                self.bar.total = self.bar.n = self._finished
                postfix = getattr(self.bar, "postfix", None)  # a disabled bar has none
                self.bar.set_postfix_str(", ".join(filter(None, [postfix, "stopped early"])), refresh=False)
        elif isinstance(exc, KeyboardInterrupt):
            exc.add_note(f"{INTERRUPTED} {self.done + 1} of {self.iterations}")
        self.bar.close()


#: How the note on a fit's KeyboardInterrupt begins (the command line repeats it).
INTERRUPTED = "fit: interrupted in iteration"


def _metrics(entry: dict) -> dict:
    out = {}
    for part, prefix in (("training", ""), ("validation", "val_")):
        for name, value in list((entry.get(part) or {}).items())[:2]:
            out[prefix + name] = f"{value:.4f}"
    return out
