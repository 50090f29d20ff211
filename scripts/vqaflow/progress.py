"""Progress lines of one shard's requests: how far a stage is, told in whole lines.

While a stage's requests run, a line every :data:`EVERY_S` seconds (the first after
:data:`FIRST_S`, so a rate shows early) says how many are done out of how many, how many
were answered, failed and retried (by kind: ``rate_limited`` is a 429, ``server_error`` a
5xx), the requests per second and the time left; when the stage ends, one line says how it
ended. While nothing moves (a batch waiting for hours), the gaps double, up to
:data:`QUIET_MAX_S`.

Lines, not a redrawn bar: several shard jobs share one terminal, and a cluster job's
terminal is its log file. tqdm formats the numbers (rate, elapsed, ETA); the lines go
through :func:`vqaflow.logs.tell`, to the job's log and to the terminal (or, under SLURM,
the job's log).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

from .logs import tell

FIRST_S = 5.0
EVERY_S = 10.0
QUIET_MAX_S = 300.0

RUNNING = "{desc}: {n}/{total} done{postfix}, {rate_noinv_fmt}, {elapsed} elapsed, ETA {remaining}"
ENDED = "{desc}: {postfix_end} {n}/{total}{postfix}, {rate_noinv_fmt}, in {elapsed}"


@dataclass
class Counts:
    """What a stage's requests have come to so far."""

    answered: int = 0
    failed: int = 0
    retried: Counter = field(default_factory=Counter)  # retries by kind

    @property
    def done(self) -> int:
        return self.answered + self.failed


def progress_line(label: str, counts: Counts, total: int, elapsed: float, ended: str | None = None) -> str:
    """One progress line; ``ended`` ("finished", "stopped") for the stage's last line."""
    retried = sum(counts.retried.values())
    postfix = f"{counts.answered} answered, {counts.failed} failed, {retried} retried"
    if retried:
        postfix += " (" + ", ".join(f"{kind} {n}" for kind, n in counts.retried.most_common()) + ")"
    form = RUNNING if ended is None else ENDED.replace("{postfix_end}", ended)
    return tqdm.format_meter(counts.done, total, elapsed, prefix=label, postfix=postfix, unit=" req",
                             unit_scale=True, bar_format=form)


class Progress:
    """The progress of ``total`` requests called ``label``, told in lines by ``write``
    from a background thread while it runs (``with Progress(...) as progress:``), and once
    more at the end. ``outcome`` and ``retry`` may be called from any thread."""

    def __init__(self, label: str, total: int, write: Callable[[str], None] = tell,
                 first_s: float = FIRST_S, every_s: float = EVERY_S, quiet_max_s: float = QUIET_MAX_S):
        self.label, self.total, self.write = label, total, write
        self.first_s, self.every_s, self.quiet_max_s = first_s, every_s, quiet_max_s
        self.counts = Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def outcome(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.counts.answered += 1
            else:
                self.counts.failed += 1

    def retry(self, kind: str) -> None:
        with self._lock:
            self.counts.retried[kind] += 1

    def line(self, ended: str | None = None) -> str:
        with self._lock:
            counts = Counts(self.counts.answered, self.counts.failed, Counter(self.counts.retried))
        return progress_line(self.label, counts, self.total, time.monotonic() - self._started, ended)

    def _tell_while_running(self) -> None:
        wait, told = self.first_s, None
        while not self._stop.wait(wait):
            with self._lock:
                now = (self.counts.done, sum(self.counts.retried.values()))
            self.write(self.line())
            wait = self.every_s if now != told else min(2 * wait, self.quiet_max_s)
            told = now

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._tell_while_running, name=f"progress {self.label}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.write(self.line("finished" if kind is None else "stopped at"))
