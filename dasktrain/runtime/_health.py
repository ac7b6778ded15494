"""``python -m dasktrain.runtime._health [PORT]``: exit 0 when the Dask server on this host answers ``/health``.

The image's ``HEALTHCHECK`` (Docker, Podman): schedulers serve ``/health`` on their dashboard port
(8787), workers on theirs (8788). Kubernetes probes ask ``/health`` over HTTP themselves.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def healthy(port: int, timeout: float = 4.0) -> bool:
    """Whether ``http://127.0.0.1:PORT/health`` answers ``ok``.

    >>> healthy(1, timeout=0.5)
    False
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    port = int(argv[0]) if argv else int(os.environ.get("DASK_HEALTH_PORT", "8787"))
    return 0 if healthy(port) else 1


if __name__ == "__main__":
    sys.exit(main())
