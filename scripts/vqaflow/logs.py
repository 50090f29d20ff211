"""The rule's log: a rule script run with its output (and any traceback) in it, and lines that
reach the terminal too."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout

from .backends.base import FatalBackendError
from .inputs.specs import InputError


def run_logged(log_path: str, main: Callable[[], object]) -> None:
    """Run ``main`` with stdout and stderr going to the log.

    Errors meant for the user (bad input, a fatal backend error) are written to the log
    and, in one line, to the job's own stderr, so the cause shows on the terminal. Any
    other error leaves its full traceback in the log and its last line on the terminal.
    """
    with open(log_path, "w", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
        try:
            main()
        except (InputError, FatalBackendError) as err:
            print(f"ERROR: {err}", file=log)
            print(f"vqaflow: {err}", file=sys.__stderr__)
            raise SystemExit(1) from None
        except SystemExit as done:
            if done.code not in (None, 0):
                print(f"ERROR: {done.code}", file=log)
            raise
        except BaseException as err:
            traceback.print_exc(file=log)
            print(f"vqaflow: {type(err).__name__}: {err} (traceback in {log_path})", file=sys.__stderr__)
            raise SystemExit(1) from None


def tell(message: str) -> None:
    """One line to the log and one to the terminal, each in one write (the progress lines
    come from another thread, and several jobs share the terminal)."""
    sys.stderr.write(f"{message}\n")
    if sys.stderr is not sys.__stderr__:
        sys.__stderr__.write(f"vqaflow: {message}\n")
        sys.__stderr__.flush()
