"""Keep TensorFlow's start-up noise out of the user's terminal, in the client and in every worker.

Importing TensorFlow prints lines from C++ before its logging is set up (``oneDNN custom
operations are on``, ``Could not find cuda drivers``, ``rebuild TensorFlow with the appropriate
compiler flags``), and on a machine without GPUs its first device query logs ``failed call to
cuInit``. None of it means anything to a user, and ``TF_CPP_MIN_LOG_LEVEL`` cannot stop the first
kind. So the first ``import tensorflow`` in a process runs with file descriptor 2 sent to a
temporary file, and every line that is not such noise is written back to stderr afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

#: Lines TensorFlow writes while it loads: absl's INFO/WARNING lines and its CPU-feature advice.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)


def install() -> None:
    """Quiet the first ``import tensorflow`` of this process (a no-op if it already happened).

    Also sets ``TF_CPP_MIN_LOG_LEVEL`` unless the user did: 2 (errors only), or 3 on a machine
    without GPUs, where TensorFlow's one error line is ``failed call to cuInit``.
    """
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if _may_have_gpus() else "3"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


def _may_have_gpus() -> bool:
    """Cheaply, without running nvidia-smi at every import: GPUs listed, or an NVIDIA driver loaded."""
    from ._gpu import visible_gpus

    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return bool(visible_gpus())
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = NOISE):
    """Send file descriptor 2 to a temporary file meanwhile; then write back what is not ``noise``.

    >>> with filtered_stderr():
    ...     print("kept", file=sys.stderr)  # doctest: +SKIP
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(True) if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module is loaded as the real loader would; only its spec points back at it afterwards.
        module.__loader__ = module.__spec__.loader = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, through the other finders, and quiets the loading of it."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


install()
