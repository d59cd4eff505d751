"""Traffic control over real sockets: rate-limit, quota and spike-arrest exact over a window, on
requests and on published messages; counters in memory, on Redis shared by two workers, in async
mode synced to Redis, and in memory again while Redis is down (the node's health says so)."""

import time

import pytest
import requests

from support.apis import mqtt_api, proxy_api
from support.http_backends import url
from support.mosquitto import shared_broker, unique_topic
from support.streams import read_sse, sse_messages

JSON = {"Accept": "application/json"}


@pytest.fixture
def server(shared_server):
    return shared_server


def limited(policy, name, limit, period=1, unit="SECONDS", add_headers=True, phase="request", mode=False, **extra):
    step = {
        "name": policy,
        "policy": policy,
        "configuration": {
            name: {"limit": limit, "periodTime": period, "periodTimeUnit": unit, **extra},
            "addHeaders": add_headers,
            "async": mode,
        },
    }
    return [{"name": "limit", "selectors": [], phase: [step]}]


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


def test_spike_arrest_allows_one_request_per_slice_of_the_period_and_answers_as_gravitee(server, http_backends):
    api = proxy_api([url(http_backends[0])], path="/spike")
    api["flows"] = limited("spike-arrest", "spike", 2, period=1)  # one request per 500 ms
    server.deploy_api(api)
    with requests.Session() as s:
        answers = [s.get(server.gateway + "/spike", headers=JSON, timeout=10) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    refused = answers[1]
    assert refused.json() == {
        "message": "Spike limit exceeded! You reached the limit of 1 requests per 500 ms.",
        "http_status_code": 429,
    }
    assert refused.headers["X-Spike-Arrest-Limit"] == "1" and refused.headers["X-Spike-Arrest-Slice-Period"] == "500ms"
    assert "X-Rate-Limit-Limit" not in refused.headers and refused.headers["Retry-After"] == "1"
    reset = int(refused.headers["X-Spike-Arrest-Reset"]) / 1000
    time.sleep(max(0, reset - time.time()) + 0.05)
    assert requests.get(server.gateway + "/spike", timeout=10).status_code == 200


def test_spike_arrest_slices_thinner_than_100_ms_are_grouped_as_gravitee_groups_them(server, http_backends):
    api = proxy_api([url(http_backends[0])], path="/spike-fast")
    api["flows"] = limited("spike-arrest", "spike", 100, period=1)  # 10 ms a request: 10 per 100 ms
    server.deploy_api(api)
    answer = requests.get(server.gateway + "/spike-fast", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["X-Spike-Arrest-Limit"] == "10" and answer.headers["X-Spike-Arrest-Slice-Period"] == "100ms"


def test_a_rate_limit_in_the_publish_phase_counts_each_published_message(server):
    """http-post -> Mosquitto -> SSE: the third message of the minute is refused and never published."""
    topic = unique_topic("limited")
    api = mqtt_api(shared_broker(), topic, path="/mqtt-limited")
    api["flows"] = limited("rate-limit", "rate", 2, unit="MINUTES", phase="publish")
    server.deploy_api(api)
    with requests.get(server.gateway + "/mqtt-limited", headers={"Accept": "text/event-stream"}, stream=True) as sse:
        read_sse(sse, 1)  # the retry hint: subscribed
        posts = [
            requests.post(server.gateway + "/mqtt-limited", data=f"m{i}", headers=JSON, timeout=10) for i in range(3)
        ]
        assert [p.status_code for p in posts] == [202, 202, 429]
        assert posts[2].json()["message"] == "Rate limit exceeded ! You reach the limit of 2 requests per 1 minutes"
        assert [m["data"] for m in sse_messages(sse, 3, timeout=3)] == ["m0", "m1"]


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


def test_two_nodes_on_one_database_and_redis_share_the_limit_and_a_quota_resets_with_its_window(
    tmp_path, postgres_url, http_backends
):
    """Two `gatehouse serve` (nodes of one PostgreSQL database) count on one Redis: the limit holds
    for both together. The quota's window (an hour) is ended on Redis, as time would end it: the
    next request starts a new one."""
    import redis

    from support.gatehouse import launch

    env = {
        "GATEHOUSE_WORKERS": "1",
        "GATEHOUSE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEHOUSE_SECRET_KEY": "k" * 40,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = launch(tmp_path / "a", postgres_url, **env)
    try:
        b = launch(tmp_path / "b", postgres_url, **env)
        try:
            api = proxy_api([url(http_backends[0])], path="/nodes")
            api["flows"] = limited("quota", "quota", 4, unit="HOURS")
            api_id = a.deploy_api(api)
            b.wait_serving(api_id, 1, timeout=15)
            answers = [requests.get(node.gateway + "/nodes", timeout=10) for node in (a, b, a, b, a, b)]
            assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429]
            assert [r.headers["X-Quota-Remaining"] for r in answers] == ["3", "2", "1", "0", "0", "0"]
            assert answers[4].json()["message"] == "Quota exceeded ! You reach the limit of 4 requests per 1 hours"
            shared = redis.Redis.from_url(env["GATEHOUSE_REDIS_URL"])
            (key,) = shared.keys(f"gatehouse:count:{api_id}:*")
            shared.pexpire(key, 1)
            deadline = time.monotonic() + 5
            while shared.exists(key):  # Redis ends it within a millisecond or so
                assert time.monotonic() < deadline
                time.sleep(0.01)
            again = requests.get(b.gateway + "/nodes", timeout=10)
            assert again.status_code == 200 and again.headers["X-Quota-Remaining"] == "3"
        finally:
            b.stop()
    finally:
        a.stop()


def test_a_burst_at_once_on_redis_gets_exactly_the_limit_each_request_its_own_count(start_server, http_backends):
    """Hits that wait for the same round trip are counted together: none may share a count, and the
    burst cannot pass the limit, whichever of the two workers takes each request."""
    from concurrent.futures import ThreadPoolExecutor

    server = start_server(GATEHOUSE_WORKERS="2", GATEHOUSE_REDIS_URL="redis://127.0.0.1:6379/0")
    api = proxy_api([url(http_backends[0])], path="/burst")
    api["flows"] = limited("rate-limit", "rate", 25, unit="MINUTES")
    server.deploy_api(api)

    def call(_):
        return requests.get(server.gateway + "/burst", headers={"Connection": "close"}, timeout=10)

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(call, range(40)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 25 + [429] * 15, statuses
    remaining = sorted(int(a.headers["X-Rate-Limit-Remaining"]) for a in answers if a.status_code == 200)
    assert remaining == list(range(25)), remaining


def private_redis(port, workdir):
    """A redis-server of this test's own on `port`, once it accepts connections."""
    import socket
    import subprocess

    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the private redis-server did not start") from None
            time.sleep(0.05)


def test_with_redis_stopped_the_gateway_serves_on_counters_of_its_own_and_health_says_so(
    start_server, http_backends, tmp_path
):
    import redis as redis_client

    from support.gatehouse import restartable_port

    port = restartable_port()
    redis = private_redis(port, tmp_path)
    try:
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
    health = requests.get(server.portal + "/_node/health", timeout=10)
    assert health.status_code == 500
    assert health.json()["database"] == {"healthy": True} and health.json()["gateway"] == {"healthy": True}
    assert health.json()["redis"]["healthy"] is False
    assert f"Redis at redis://127.0.0.1:{port}/0 cannot be reached" in health.json()["redis"]["message"]
    assert "each process counts alone" in health.json()["redis"]["message"]
    only_database = requests.get(server.portal + "/_node/health?probes=database", timeout=10)
    assert only_database.status_code == 200 and only_database.json() == {"database": {"healthy": True}}
    unknown = requests.get(server.portal + "/_node/health?probes=disk", timeout=10)
    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("No such probe: disk. This node has: api:")
    assert unknown.json()["message"].endswith(", database, gateway, redis.")
    # Back, empty and without the script: health says so, and counting goes there again.
    redis = private_redis(port, tmp_path)
    try:
        assert requests.get(server.portal + "/_node/health", timeout=10).status_code == 200
        api = proxy_api([url(http_backends[0])], path="/back")
        api["flows"] = limited("rate-limit", "rate", 100, period=1, unit="MINUTES")
        api_id = server.deploy_api(api)
        deadline = time.monotonic() + 5
        shared = redis_client.Redis(port=port)
        while not shared.keys(f"gatehouse:count:{api_id}:*"):  # once the retry pause after the failure is over
            assert time.monotonic() < deadline, "counting did not go back to Redis"
            assert requests.get(server.gateway + "/back", timeout=10).status_code == 200
            time.sleep(0.1)
    finally:
        redis.terminate()
        redis.wait(10)


def test_async_counts_here_at_once_and_adds_them_to_redis_in_the_background(start_server, http_backends):
    import redis

    server = start_server(GATEHOUSE_WORKERS="1", GATEHOUSE_REDIS_URL="redis://127.0.0.1:6379/0")
    assert requests.get(server.portal + "/_node/health?probes=database,redis", timeout=10).json() == {
        "database": {"healthy": True},
        "redis": {"healthy": True},
    }
    api = proxy_api([url(http_backends[0])], path="/async")
    api["flows"] = limited("rate-limit", "rate", 3, unit="MINUTES", mode=True)
    api_id = server.deploy_api(api)
    statuses = [requests.get(server.gateway + "/async", timeout=10).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429], statuses
    shared = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    deadline = time.monotonic() + 5
    while True:
        keys = shared.keys(f"gatehouse:count:{api_id}:*")
        counted = [int(shared.get(k) or 0) for k in keys]
        if counted == [5] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counted == [5], "the five requests reach Redis in the background"
