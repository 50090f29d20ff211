"""Running a rule script with its output in the rule's log."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout

from .backends.base import FatalBackendError
from .records import InputError


def run_logged(log_path: str, main: Callable[[], object]) -> None:
    """Run ``main`` with stdout and stderr going to the log.

    Errors meant for the user (bad input, a fatal backend error) are also printed to
    the job's own stderr, so the cause shows on the terminal, not only in the log.
    """
    with open(log_path, "w", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
        try:
            main()
        except (InputError, FatalBackendError) as err:
            print(f"ERROR: {err}", file=log)
            print(f"vqaflow: {err}", file=sys.__stderr__)
            raise SystemExit(1) from None
