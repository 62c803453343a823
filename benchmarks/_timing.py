"""Interleaved timing: every case runs in every round, in rotating order.

Interleaving spreads machine noise (another process, a frequency change) over
all cases alike, so the ratio between two cases stays meaningful even when the
absolute figures drift.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

Batch = Callable[[int], object]
"""Runs its operation the given number of times."""


@dataclass(frozen=True)
class Timing:
    """Per-operation times of one case, in nanoseconds, one sample per round."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        """Return the median sample."""
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        """Return the fastest sample."""
        return min(self.samples)

    def minus(self, baseline: Timing) -> Timing:
        """Return this case's overhead over *baseline*, round by round."""
        return Timing(tuple(ours - base for ours, base in zip(self.samples, baseline.samples, strict=True)))


class NullStream:
    """A stream that drops what it is given, so only the logging path is measured."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def only_to(name: str, handler: logging.Handler) -> Iterator[None]:
    """Send logger *name*'s INFO records only to *handler* for the block; then restore it."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def measure(cases: Mapping[str, Batch], *, number: int, rounds: int) -> dict[str, Timing]:
    """Time each case ``rounds`` times for ``number`` operations, interleaved."""
    names = list(cases)
    for name in names:  # warm-up: caches, lazy imports, first-call paths
        cases[name](max(1, number // 10))
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter_ns()
                cases[name](number)
                samples[name].append((time.perf_counter_ns() - start) / number)
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: Timing(tuple(values)) for name, values in samples.items()}


@dataclass(frozen=True)
class Verdict:
    """One target: ``ours / peer <= bound``, on medians; no bound: reported only."""

    label: str
    ours: float
    peer: float
    bound: float | None

    @property
    def ratio(self) -> float:
        """Return ours divided by peer."""
        return self.ours / self.peer

    @property
    def met(self) -> bool:
        """Return whether the ratio is within the bound."""
        return self.bound is None or self.ratio <= self.bound

    def line(self) -> str:
        """Render as one report line."""
        mark = "    " if self.bound is None else "ok  " if self.met else "MISS"
        target = "reported, no target yet" if self.bound is None else f"target <= {self.bound:g}x"
        return f"{mark} {self.label:<58} {self.ours:10.0f} ns / {self.peer:10.0f} ns = {self.ratio:5.2f}x ({target})"


def report(title: str, timings: Mapping[str, Timing]) -> None:
    """Print every case's median and minimum."""
    print(f"\n## {title}")
    for name, timing in timings.items():
        print(f"     {name:<58} median {timing.median:10.0f} ns   min {timing.minimum:10.0f} ns")
