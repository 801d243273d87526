"""Where the calling thread's wall time went: on a CPU (and of that, in the kernel: page faults,
system calls), runnable but waiting for one (other processes, such as Ray's daemons beside the
workers, held the cores), or blocked (a lock such as Python's GIL held by another thread, I/O, a
collective waiting on another rank, or time the hypervisor took). A step that got slower without
getting more expensive shows up in the last two; one that got more expensive in the kernel, in
the system share."""
from __future__ import annotations

import os
import time
from typing import NamedTuple, Optional

_SCHEDSTAT = "/proc/thread-self/schedstat"  # Linux: "<ns on cpu> <ns waiting in the run queue> <slices>"
_STAT = "/proc/thread-self/stat"  # fields 14-15: user and system time in clock ticks
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Times(NamedTuple):
    on_cpu: float  # seconds on a CPU since the thread started
    waiting: float  # seconds runnable but waiting for a CPU
    system: float  # seconds of on_cpu spent in the kernel (clock-tick resolution)


def thread_times() -> Optional[Times]:
    """This thread's `Times`; None where the kernel does not expose them (non-Linux; a kernel
    without scheduler statistics reads "0 0 0", and a running thread has always had some CPU)."""
    try:
        with open(_SCHEDSTAT) as f:
            on_cpu, waiting = (int(v) for v in f.read().split()[:2])
        with open(_STAT) as f:  # the name in parentheses may hold spaces: split after it
            system = int(f.read().rsplit(")", 1)[1].split()[12])
    except (OSError, ValueError, IndexError):
        return None
    return Times(on_cpu / 1e9, waiting / 1e9, system / _TICK) if on_cpu > 0 else None


class Shares(NamedTuple):
    elapsed: float  # seconds of wall time
    cpu_wait: Optional[float]  # share of it runnable without a CPU; None where unknown
    blocked: Optional[float]  # share neither on a CPU nor waiting for one; None where unknown
    system: Optional[float]  # share on a CPU in the kernel; None where unknown


class Window:
    """Wall time since it was made, split as in `Shares`. Make and close it on the thread being
    measured."""

    def __init__(self):
        self._t, self._times = time.perf_counter(), thread_times()

    def close(self) -> Shares:
        elapsed, now = time.perf_counter() - self._t, thread_times()
        if now is None or self._times is None or elapsed <= 0:
            return Shares(elapsed, None, None, None)
        on_cpu, wait, system = ((a - b) / elapsed for a, b in zip(now, self._times))
        return Shares(elapsed, wait, max(0.0, 1.0 - on_cpu - wait), min(system, on_cpu))
