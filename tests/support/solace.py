"""Helpers of the Solace tests: a gateway whose Solace worker runs the test double
(support/solace_double.py) instead of the library, clients of a Solace API, and the worker
processes of a gateway."""

import os
import time
from pathlib import Path

from support.gatehouse import ROOT
from support.message_clients import clients_for

poll, post, sse, ws_connect = clients_for("/solace")

DOUBLE_URL = "tcp://solace-double:55555"
TESTS = Path(__file__).resolve().parents[1]


def double_env():
    """Environment for start_server: the worker imports the double instead of the library."""
    return {"GATEHOUSE_SOLACE_API": "support.solace_double", "PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS)))}


def worker_pids(server):
    """The Solace worker processes started by this gateway process (its children)."""
    pids = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"gateway_runtime.endpoints.solace.worker" in cmdline:
                pids.append(int(pid))
    return pids


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.05)
    return False
