"""`gatehouse serve --workers N` (issue 17): a supervisor binds the ports once and forks workers
that all accept on them; a worker that dies is replaced, later each time when workers keep dying
soon after their start; a deployment reaches every worker (each polls the database); SIGTERM
refuses new connections and lets every worker finish its requests in flight, then the supervisor
exits 0; a wrong worker count stops the start naming the setting.

Which worker served a connection is what the portal's /_runtime says (its `pid`): each worker
runs its own portal and gateway, accepting on the same inherited listening sockets."""

import os
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support.apis import proxy_api
from support.gatehouse import environment, refused, refused_start, runtime, serving_pids, until
from support.http_backends import ANSWER, start_slow_backend, url

pytestmark = pytest.mark.slow  # starts and stops supervisors of several workers

WORKERS = ("--workers", "2")


def served(server, api_id):
    """(pid, the revision of the API it serves) of the worker answering a new connection."""
    answer = runtime(server)
    return answer["pid"], answer["apis"].get(api_id)


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


def test_two_workers_answer_on_the_same_ports_and_the_ports_are_printed_once(start_server):
    server = start_server(args=WORKERS)  # the flag wins over the tests' GATEHOUSE_WORKERS=1
    pids = serving_pids(server)
    assert {parent_of(pid) for pid in pids} == {server.proc.pid}, "forked by the supervisor"
    assert server.proc.pid not in pids, "the supervisor serves nothing"
    # Whichever worker is free accepts first: an even spread is not promised, idle workers may split 50/50 or 90/10.
    spread = Counter(runtime(server)["pid"] for _ in range(100))
    print(f"100 new connections over the workers: {dict(spread)}")
    assert set(spread) <= pids
    for line in ("Gatehouse portal:", "Gatehouse gateway:", "Gatehouse TCP:"):
        assert server.log.count(line) == 1


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(start_server):
    server = start_server(args=WORKERS)
    killed, kept = sorted(serving_pids(server))
    os.kill(killed, signal.SIGKILL)
    pids = set()
    until(lambda: pids.add(runtime(server)["pid"]) or len(pids - {killed, kept}) == 1, 15)
    assert killed not in pids
    assert f"worker {killed} was killed by SIGKILL" in server.log
    assert len(serving_pids(server)) == 2


def test_workers_dying_soon_after_their_start_again_and_again_are_started_later_each_time(start_server):
    server = start_server(args=WORKERS)
    for _ in range(2):
        for pid in serving_pids(server, timeout=30):
            os.kill(pid, signal.SIGKILL)
    serving_pids(server, timeout=30)
    assert re.findall(r"starting another in ([\d.]+) s", server.log) == ["0.5", "1", "2", "4"]


def test_a_deployment_reaches_both_workers_within_a_second(start_server):
    server = start_server(args=WORKERS)
    pids = serving_pids(server)
    api_id = server.import_api(proxy_api(["http://127.0.0.1:9"], path="/reach"))
    server.start_api(api_id)  # its first deployment: revision 1
    time.sleep(1.0)  # the promise is about this moment: 1 s after the start was answered
    answers = set()
    until(lambda: answers.add(served(server, api_id)) or {pid for pid, _ in answers} == pids, 10)
    assert answers == {(pid, 1) for pid in pids}, "every answer since that moment serves revision 1"


def test_sigterm_refuses_new_connections_lets_every_request_in_flight_finish_then_the_supervisor_exits_0(start_server):
    backend = start_slow_backend()
    try:
        server = start_server(args=WORKERS, GATEHOUSE_SHUTDOWN_GRACE_SECONDS="30")
        pids = serving_pids(server)
        api_id = server.deploy_api(proxy_api([url(backend)], path="/slow"))
        seen = set()  # the worker that answered the deploy serves it; the other one, once it polled
        until(lambda: seen.add(served(server, api_id)) or {(pid, 1) for pid in pids} <= seen, 10)
        with ThreadPoolExecutor(20) as pool:
            # A new connection each: they spread over both workers.
            answers = [pool.submit(requests.get, server.gateway + "/slow/x?seconds=3", timeout=30) for _ in range(20)]
            until(lambda: len(backend.arrivals) == 20, 10)
            server.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            until(lambda: refused(server.gateway_port), 3)  # the supervisor's copy of the socket closed too
            results = [answer.result() for answer in answers]
        assert [(r.status_code, r.content == ANSWER) for r in results] == [(200, True)] * 20
        assert server.proc.wait(timeout=15) == 0
        print(
            f"20 requests in flight answered; the supervisor exited {time.monotonic() - signalled:.1f} s after SIGTERM"
        )
        assert "Traceback" not in server.log
    finally:
        backend.shutdown()
        backend.server_close()


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [({"GATEHOUSE_WORKERS": "zero"}, (), "GATEHOUSE_WORKERS"), ({}, ("--workers", "0"), "--workers")],
)
def test_a_wrong_worker_count_stops_the_start_naming_it(tmp_path, env, args, named):
    given = env.get("GATEHOUSE_WORKERS") or args[1]
    refused = refused_start(tmp_path, environment(tmp_path, **env), args=args)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"{named} must be a whole number greater than 0, not {given!r}"
    assert "Gatehouse portal" not in refused.stdout


def test_a_start_that_cannot_work_fails_once_with_the_first_workers_status(tmp_path):
    env = environment(tmp_path, GATEHOUSE_SHUTDOWN_GRACE_SECONDS="soon")
    refused = refused_start(tmp_path, env, args=WORKERS)
    assert refused.returncode == 2
    assert refused.stderr.count("GATEHOUSE_SHUTDOWN_GRACE_SECONDS must be") == 1, refused.stderr
    assert "Gatehouse portal" not in refused.stdout


def test_sighup_reaches_every_worker_and_the_supervisor_keeps_serving(start_server):
    server = start_server(args=WORKERS)
    serving_pids(server)
    server.proc.send_signal(signal.SIGHUP)
    until(lambda: server.log.count("SIGHUP: nothing to reload") == 2, 5)
    assert server.proc.poll() is None
    assert len(serving_pids(server)) == 2
