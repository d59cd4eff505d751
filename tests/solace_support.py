"""Helpers of the Solace tests: a gateway whose Solace worker runs the test double
(solace_double.py) or the real library, API definitions, and the worker process of a gateway."""
import os
import time
from pathlib import Path

from conftest import ROOT
from message_clients import clients_for

poll, post, sse, ws_connect = clients_for("/solace")

DOUBLE_URL = "tcp://solace-double:55555"
TESTS = Path(__file__).resolve().parent


def double_env():
    """Environment for start_server: the worker imports the double instead of the library."""
    return {"GATEHOUSE_SOLACE_API": "solace_double", "PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS)))}


def solace_api(url=DOUBLE_URL, topics=("orders/eu",), consumer_topics=None, path="/solace", qos="auto",
               producer=None, shared=None, vpn="default", get_count=10, get_duration_ms=800, name=None):
    config = {"consumer": {"enabled": True, "topics": list(consumer_topics or topics)},
              "producer": {"enabled": True, "topics": list(topics), **(producer or {})},
              "security": {"auth": {"username": "admin", "password": "admin"}}, **(shared or {})}
    return {
        "name": name or f"Solace {path}", "apiVersion": "1", "definitionVersion": "4.0.0", "type": "message",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": [
            {"type": "http-get", "qos": "auto" if qos == "none" else qos, "configuration": {
                "messagesLimitCount": get_count, "messagesLimitDurationMs": get_duration_ms,
                "headersInPayload": True, "metadataInPayload": True}},
            {"type": "http-post", "qos": "none" if qos == "none" else "auto",
             "configuration": {"requestHeadersToMessage": True}},
            {"type": "sse", "qos": qos, "configuration": {"headersAsComment": True, "metadataAsComment": True}},
            {"type": "websocket", "qos": "none" if qos == "none" else "auto"}]}],
        "endpointGroups": [{"name": "solace", "type": "solace", "sharedConfiguration": config, "endpoints": [
            {"name": "broker", "type": "solace", "inheritConfiguration": True,
             "configuration": {"url": url, "vpnName": vpn}}]}],
    }


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
