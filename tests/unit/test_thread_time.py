"""Where a thread's wall time went, as the worker logs it beside images/s: a sleeping thread, or
one waiting on a lock, is blocked; a thread outnumbered by busy processes waits for a CPU."""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time

import pytest

from gan_core import thread_time
from gan_core.thread_time import Window

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux's")


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@linux
def test_sleeping_thread_is_blocked_not_waiting():
    window = Window()
    time.sleep(0.5)
    elapsed, wait, blocked, system = window.close()
    assert elapsed >= 0.5 and 0 <= wait < 0.05 and blocked > 0.9 and system < 0.05


@linux
def test_thread_waiting_on_a_lock_is_blocked():
    lock = threading.Lock()
    lock.acquire()
    holder = threading.Timer(0.5, lock.release)
    holder.start()
    window = Window()
    lock.acquire()  # sleeps until the other thread lets go, as for the GIL
    _spin(0.5)
    elapsed, wait, blocked, system = window.close()
    holder.join()
    # the timer starts before the window opens, so the wait inside it is a little under 0.5 s
    assert elapsed >= 0.95 and 0.4 < blocked < 0.6


@linux
def test_thread_outnumbered_by_busy_processes_waits_a_large_share():
    # twice as many spinners as cores: each runnable thread gets at most about a third of a core
    cores = len(os.sched_getaffinity(0))
    procs = [mp.get_context("fork").Process(target=_spin, args=(3.0,)) for _ in range(2 * cores)]
    for p in procs:
        p.start()
    try:
        time.sleep(0.3)  # let them all become runnable
        window = Window()
        _spin(1.5)
        elapsed, wait, blocked, system = window.close()
    finally:
        for p in procs:
            p.join()
    assert elapsed >= 1.5 and wait > 0.3 and blocked < 0.1


@linux
def test_kernel_work_is_system_time_and_python_work_is_not():
    def share(work) -> float:
        window = Window()
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            work()
        return window.close().system

    with open("/dev/zero", "rb", buffering=0) as zero:  # the kernel fills each buffer
        in_kernel = share(lambda: zero.read(1 << 20))
    in_python = share(lambda: sum(range(1000)))
    assert in_kernel > 0.5 and in_python < 0.1


@pytest.mark.parametrize("content", [None, "0 0 0\n", "garbage\n"])
def test_unknown_without_schedstat(monkeypatch, tmp_path, content):
    # no file (not Linux), a kernel without scheduler statistics, an unreadable line
    path = tmp_path / "schedstat"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(thread_time, "_SCHEDSTAT", str(path))
    assert thread_time.thread_times() is None
    assert Window().close()[1:] == (None, None, None)
