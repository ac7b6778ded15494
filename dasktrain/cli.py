"""The ``dasktrain`` command line: each subcommand is a thin layer over one API function.

Run ``dasktrain --help`` and ``dasktrain SUBCOMMAND --help``. Errors print one line on stderr
and exit with status 2 (``--debug`` shows the traceback); Ctrl-C prints one line and exits with
status 130. The subcommands live in ``dasktrain._cli``.
"""

from __future__ import annotations

import sys

from ._cli import build_parser, in_command_words, main
from ._cli._base import COMMAND_WORDS as _COMMAND_WORDS  # noqa: F401  (its name before the split; tests read it)

__all__ = ["build_parser", "in_command_words", "main"]

if __name__ == "__main__":
    sys.exit(main())
