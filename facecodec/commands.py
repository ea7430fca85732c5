"""What every command line does with a user's error: one clear line, no traceback, exit status 2.

A user's error is a bad argument or value (ValueError), a missing file (FileNotFoundError), a file
that would be overwritten (FileExistsError), a missing optional package (ImportError, whose message
says what to install or which flag goes without it), or a failure the program can name
(RuntimeError, which `client.ClientError` is too): `facecodec`,
`facecodec-client`, `python -m facecodec.serving`, the demo and the `export/` tools all end that way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ImportError, RuntimeError)
EXIT_USER_ERROR = 2


def run_command(command: Callable[[], int], log: logging.Logger) -> int:
    """`command()`'s exit status, or EXIT_USER_ERROR after logging a user's error in one line."""
    try:
        return command()
    except USER_ERRORS as err:
        log.error("%s", err)
        return EXIT_USER_ERROR
