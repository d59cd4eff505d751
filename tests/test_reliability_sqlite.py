"""A second process locking the SQLite database: the gateway keeps serving, the portal keeps
answering its pages and finishes its writes once the lock ends (in `gatehouse serve` and in
gunicorn's gevent workers), or answers 503 when the lock outlasts the busy timeout; the webhook
loop logs one line and resumes, and with no push subscription does not write at all."""

import itertools
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from gateway_runtime.database import LOCKED_OUT, SQLITE_BUSY_TIMEOUT_MS
from support.apis import mock_api
from support.gatehouse import ADMIN_PASSWORD, launch_gunicorn
from support.webhook import ALLOW_PRIVATE, hook, mock_group, push_subscribe, webhook_api

pytestmark = pytest.mark.slow  # locks databases for longer than their busy timeouts

# The other process: takes the write lock, says so on stdout, holds it until told on stdin.
LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
print("released", flush=True)
"""
ANSWER_S = 1.0  # what every gateway request and portal page must answer within during the lock


class Lock:
    """`BEGIN EXCLUSIVE` on the instance's database, held by another process."""

    def __init__(self, server):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(server.workdir / "instance/gatehouse.db")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline() == "locked\n"

    def release(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "released\n"
        self.proc.wait(5)


class Stream:
    """An SSE stream read in a thread: the arrival time of each message."""

    def __init__(self, url):
        self.arrivals = []
        self.done = threading.Event()
        self.response = requests.get(url, headers={"Accept": "text/event-stream"}, stream=True, timeout=30)
        assert self.response.status_code == 200
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with self.response:
            for line in self.response.iter_lines(decode_unicode=True):
                if self.done.is_set():  # a message every 100 ms: the stream ends soon after close()
                    return
                if line.startswith("data:"):
                    self.arrivals.append(time.monotonic())

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            assert time.monotonic() < deadline, f"{len(self.arrivals)} SSE messages within {timeout} s"
            time.sleep(0.05)

    def largest_gap(self, start, end):
        times = [start] + [t for t in self.arrivals if start <= t <= end] + [end]
        return max(b - a for a, b in itertools.pairwise(times))

    def close(self):
        self.done.set()
        self.thread.join(5)


def timed_get(url, **kwargs):
    """(status or the exception's name, seconds)."""
    started = time.monotonic()
    try:
        status = requests.get(url, timeout=ANSWER_S * 3, **kwargs).status_code
    except requests.RequestException as exc:
        status = type(exc).__name__
    return status, time.monotonic() - started


@pytest.fixture(params=["serve", "gunicorn"])
def sqlite_server(request, start_server, tmp_path):
    """A `gatehouse serve` process, or gunicorn with two gevent workers, on the default SQLite file."""
    if request.param == "serve":
        yield start_server()
        return
    server = launch_gunicorn(tmp_path)
    yield server
    server.stop()


def served_everywhere(server, url, times=10, timeout=10):
    """Until `times` requests in a row answer 200: every worker serves the API."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < times:
        assert time.monotonic() < deadline, f"{url} not served by every worker within {timeout} s"
        streak = streak + 1 if requests.get(url, timeout=5).status_code == 200 else 0


def test_a_lock_held_by_another_process_freezes_neither_the_gateway_nor_the_portal_pages(sqlite_server):
    server = sqlite_server
    api_id = server.import_api(
        mock_api(path="/ticks", content="tick", interval=100, entrypoints=[{"type": "sse"}, {"type": "http-get"}])
    )
    server.start_api(api_id)
    served_everywhere(server, server.gateway + "/ticks?limit=1")
    stream = Stream(server.gateway + "/ticks")
    stream.wait_for(3)  # a steady stream before the lock
    write = {}

    def portal_write():  # management call: creates an application (a row written)
        started = time.monotonic()
        response = server.mgmt("POST", "/applications", json={"name": "During the lock", "description": "x"})
        write.update(status=response.status_code, body=response.text, seconds=time.monotonic() - started)

    lock = Lock(server)
    locked_at = time.monotonic()
    writer = threading.Thread(target=portal_write)
    writer.start()
    answers = []
    try:
        while time.monotonic() - locked_at < 6:
            answers.append(("gateway http-get",) + timed_get(server.gateway + "/ticks?limit=1"))
            answers.append(("gateway unknown path",) + timed_get(server.gateway + "/nothing-here"))
            answers.append(("portal login page",) + timed_get(server.portal + "/login"))
            answers.append(("portal static file",) + timed_get(server.portal + "/static/gatehouse.css"))
        lock_seconds = time.monotonic() - locked_at
        gap = stream.largest_gap(locked_at, time.monotonic())
    finally:
        lock.release()
        released_at = time.monotonic()
        writer.join(30)
        stream.close()
    slow = [a for a in answers if a[2] > ANSWER_S or a[1] not in (200, 404)]
    print(
        f"lock held {lock_seconds:.1f} s: {len(answers)} requests, largest SSE gap {gap:.2f} s, "
        f"slow or failed: {slow}; portal write: {write.get('status')} after {write.get('seconds', 0):.1f} s"
    )
    assert gap < ANSWER_S, f"the SSE stream stopped for {gap:.1f} s while the database was locked"
    assert not slow, f"{len(slow)} of {len(answers)} requests were slow or failed during the lock: {slow}"
    assert len(answers) >= 20
    # The write waited for the lock (SQLite's busy timeout, 10 s, is longer), then went through.
    assert write.get("status") == 201, write
    assert write["seconds"] >= released_at - locked_at - 0.5
    assert "During the lock" in [a["name"] for a in server.mgmt("GET", "/applications").json()["data"]]
    assert "Traceback" not in server.log


def test_with_no_push_subscription_the_webhook_loop_writes_nothing_and_wakes_for_a_new_one(start_server, receiver):
    """A lock held longer than the busy timeout: a write tried meanwhile would give up and be logged."""
    server = start_server(**ALLOW_PRIVATE)
    api_id = server.deploy_api(webhook_api([mock_group(1000, content="pushed", interval=100)]))
    lock = Lock(server)
    locked_at = time.monotonic()
    try:
        # Polled, not slept: any write attempt gives up at the busy timeout and logs "database is locked".
        while time.monotonic() - locked_at < SQLITE_BUSY_TIMEOUT_MS / 1000 + 1.5:
            assert not gave_up(server), gave_up(server)
            time.sleep(0.25)
    finally:
        lock.release()
    assert not gave_up(server), gave_up(server)
    assert "webhook" not in server.log, server.log
    # Idle is not asleep: a new push subscription is delivered to within a couple of ticks.
    target = receiver()
    push_subscribe(server, api_id, hook(target.url + "/hook"))
    subscribed_at = time.monotonic()
    target.wait(lambda calls: calls, timeout=5)
    print(f"first delivery {target.calls[0].at - subscribed_at:.2f} s after the subscription")
    assert target.calls[0].at - subscribed_at < 2


def test_a_lock_longer_than_the_busy_timeout_answers_503_and_logs_one_line_and_push_delivery_resumes(
    start_server, receiver
):
    server = start_server(**ALLOW_PRIVATE)
    api_id = server.deploy_api(webhook_api([mock_group(100_000, content="pushed", interval=100)]))
    target = receiver()
    push_subscribe(server, api_id, hook(target.url + "/hook"))
    target.wait(lambda calls: len(calls) >= 3)
    browser = requests.Session()
    token = re.search(
        r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', browser.get(server.portal + "/login").text
    ).group(1)
    answers = {}

    def write(name, call):
        answers[name] = call()

    writes = [
        threading.Thread(target=write, args=args)
        for args in (
            (
                "management",
                lambda: server.mgmt("POST", "/applications", json={"name": "Locked out", "description": "x"}),
            ),
            (
                "login page",
                lambda: browser.post(
                    server.portal + "/login",
                    data={  # a login writes its session
                        "csrf_token": token,
                        "username": "admin",
                        "password": ADMIN_PASSWORD,
                    },
                    allow_redirects=False,
                    timeout=30,
                ),
            ),
        )
    ]
    lock = Lock(server)
    locked_at = time.monotonic()
    try:
        for thread in writes:
            thread.start()
        # Each waits out the busy timeout (in a thread of its own), then says so.
        while not gave_up(server) or len(answers) < len(writes):
            assert time.monotonic() - locked_at < SQLITE_BUSY_TIMEOUT_MS / 1000 + 5, server.log
            time.sleep(0.25)
    finally:
        lock.release()
    released_at = time.monotonic()
    calls = target.wait(lambda calls: calls[-1].at > released_at, timeout=10, what="a delivery after the lock")
    lines = [line for line in server.log.splitlines() if "webhook" in line or "Database busy" in line]
    print("\n".join(lines), f"\ndeliveries resumed {calls[-1].at - released_at:.2f} s after the lock ended")
    management, page = answers["management"], answers["login page"]
    assert (management.status_code, management.json()["message"], management.headers.get("Retry-After")) == (
        503,
        LOCKED_OUT,
        "5",
    )
    assert page.status_code == 503 and LOCKED_OUT in page.text
    assert len(gave_up(server)) == 1, lines
    assert "reading and writing webhook leases failed: " in gave_up(server)[0]
    assert gave_up(server)[0].endswith("database is locked; retrying")
    assert sum("Database busy" in line for line in lines) == 2, lines
    assert "Traceback" not in server.log
    assert any("reading and writing webhook leases works again" in line for line in lines), lines
    assert "Locked out" not in [a["name"] for a in server.mgmt("GET", "/applications").json()["data"]]


def gave_up(server):
    return [line for line in server.log.splitlines() if "database is locked" in line or "retrying" in line]
