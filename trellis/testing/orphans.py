"""Processes a test starts (agents, Envoys, etcd) die with the test run (shell).

Fixtures stop what they start by PID, but only when they run: a test run killed hard
(SIGKILL, a CI timeout, a closed terminal) used to leave agents and etcd servers running,
holding ports and CPU. ``guarded(cmd)`` prefixes a command with a tiny interpreter that asks
the kernel to send it SIGTERM when the starting thread dies (Linux ``PR_SET_PDEATHSIG``)
and then becomes the command (``execvp``: same PID, and the setting survives the exec, so
an Envoy that ``trellis connect envoy`` execs inherits it too).

Rules:
1. Only on Linux, and only from the main thread: the signal follows the thread that
   started the child, and a helper thread may end long before its process does.
2. The prefix is a fresh single-threaded interpreter, so nothing runs between fork and
   exec in the test process (``preexec_fn`` is unsafe there: the tests run threads).
3. If the test run is already gone when the prefix starts, the command is not run.
"""

from __future__ import annotations

import os
import sys
import threading

_PREFIX_CODE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def guarded(cmd: list[str]) -> list[str]:
    """``cmd``, made to receive SIGTERM when the calling test process dies (rules 1-3)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return cmd
    return [sys.executable, "-S", "-c", _PREFIX_CODE, str(os.getpid()), *cmd]
