"""When the local control plane counts one of its processes as ended (devtools.localcluster)."""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
import time

import pytest

from devtools.localcluster.cluster import pid_alive, process_state

pytestmark = pytest.mark.unit

#: exit(2) of the calling thread only (not exit_group): the main thread ends, the others run on.
SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(platform.machine())

MAIN_THREAD_ENDS_FIRST = f"""
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(60,)).start()
time.sleep(0.2)
ctypes.CDLL(None).syscall({SYS_EXIT}, 0)
"""


@pytest.mark.skipif(SYS_EXIT is None, reason=f"exit(2)'s number unknown on {platform.machine()}")
def test_a_zombie_main_thread_with_threads_left_is_still_alive():
    """Between a kill and the end of its last thread, a process shows a zombie main thread while
    the others still hold its sockets; only when they are gone has it ended."""
    proc = subprocess.Popen([sys.executable, "-c", MAIN_THREAD_ENDS_FIRST])
    try:
        deadline = time.monotonic() + 10
        while process_state(proc.pid)[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_state(proc.pid)[0] == "Z"  # the main thread has ended, one thread sleeps on
        assert pid_alive(proc.pid)
        proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_alive(proc.pid)  # a zombie of one thread, not yet reaped: ended
    finally:
        proc.kill()
        proc.wait()
