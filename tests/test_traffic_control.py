"""Traffic control over real sockets: rate-limit and quota, exact over a window (issue 19, work in
progress: counters in one process's memory)."""

import time

import pytest
import requests

from support.apis import proxy_api
from support.http_backends import url

JSON = {"Accept": "application/json"}


@pytest.fixture
def server(start_server):
    return start_server(GATEHOUSE_WORKERS="1")


def limited(policy, name, limit, period=1, unit="SECONDS", add_headers=True, **extra):
    step = {
        "name": policy,
        "policy": policy,
        "configuration": {
            name: {"limit": limit, "periodTime": period, "periodTimeUnit": unit, **extra},
            "addHeaders": add_headers,
        },
    }
    return [{"name": "limit", "selectors": [], "request": [step]}]


def test_a_rate_limit_allows_n_per_window_refuses_the_next_with_gravitee_s_answer_and_resets(server, http_backends):
    api = proxy_api([url(http_backends[0])], path="/limited")
    api["flows"] = limited("rate-limit", "rate", 3, period=2)
    server.deploy_api(api)
    with requests.Session() as s:
        answers = [s.get(server.gateway + "/limited", headers=JSON, timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[3]
    assert refused.json() == {
        "message": "Rate limit exceeded ! You reach the limit of 3 requests per 2 seconds",
        "http_status_code": 429,
    }
    assert refused.headers["X-Rate-Limit-Limit"] == "3" and 1 <= int(refused.headers["Retry-After"]) <= 2
    reset = int(refused.headers["X-Rate-Limit-Reset"]) / 1000
    time.sleep(max(0, reset - time.time()) + 0.1)
    assert requests.get(server.gateway + "/limited", timeout=10).status_code == 200


def test_a_quota_counts_each_client_apart(server, http_backends):
    api = proxy_api([url(http_backends[0])], path="/quota")
    api["flows"] = limited("quota", "quota", 2, unit="HOURS")
    server.deploy_api(api)

    def call(client):
        return requests.get(server.gateway + "/quota", headers={"X-Gravitee-Client-Identifier": client}, timeout=10)

    assert [call("a").status_code for _ in range(3)] == [200, 200, 429]
    assert call("b").status_code == 200
    assert call("a").json()["message"] == "Quota exceeded ! You reach the limit of 2 requests per 1 hours"


def test_two_worker_processes_on_redis_share_one_counter(start_server, http_backends):
    """Requests on new connections, which both workers take: on Redis the limit holds for the whole
    server, not per process."""
    server = start_server(GATEHOUSE_WORKERS="2", GATEHOUSE_REDIS_URL="redis://127.0.0.1:6379/0")
    api = proxy_api([url(http_backends[0])], path="/shared")
    api["flows"] = limited("rate-limit", "rate", 5, period=1, unit="MINUTES")
    server.deploy_api(api)
    statuses = [
        requests.get(server.gateway + "/shared", headers={"Connection": "close"}, timeout=10).status_code
        for _ in range(12)
    ]
    assert statuses.count(200) == 5 and statuses[5:] == [429] * 7, statuses


def test_with_redis_stopped_the_gateway_serves_on_counters_of_its_own(start_server, http_backends, tmp_path):
    import socket
    import subprocess

    from support.gatehouse import free_port

    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)
        server = start_server(GATEHOUSE_WORKERS="1", GATEHOUSE_REDIS_URL=f"redis://127.0.0.1:{port}/0")
        api = proxy_api([url(http_backends[0])], path="/fallback")
        api["flows"] = limited("rate-limit", "rate", 3, period=1, unit="MINUTES")
        server.deploy_api(api)
        assert requests.get(server.gateway + "/fallback", timeout=10).status_code == 200
    finally:
        redis.terminate()
        redis.wait(10)
    # Redis gone: the limit still holds, counted by the process alone, and serving goes on.
    statuses = [requests.get(server.gateway + "/fallback", timeout=10).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429], statuses
    assert "counting requests on Redis" in server.log and "failed" in server.log
