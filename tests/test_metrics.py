"""Prometheus metrics over real sockets (issue 20, begun): after a known mix of traffic, /metrics
carries exactly those counts with their labels, in one process and summed over two workers; the
scrape needs the metrics token or an admin."""

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from support.apis import mock_api, proxy_api
from support.gatehouse import free_port, serving_pids
from support.http_backends import url

TOKEN = "a-metrics-token-for-the-scraper"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


def samples(server, name):
    """[(labels, value)] of a metric's samples, as a scraper reads them."""
    answer = requests.get(server.portal + "/metrics", headers=SCRAPER, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == name
    ]


def total(server, name, **labels):
    return sum(value for found, value in samples(server, name) if all(found.get(k) == v for k, v in labels.items()))


def until_total(server, name, expected, timeout=5, **labels):
    deadline = time.monotonic() + timeout
    while (got := total(server, name, **labels)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_a_known_mix_of_traffic_is_counted_exactly_with_its_labels(start_server, http_backends):
    server = start_server(GATEHOUSE_WORKERS="1", GATEHOUSE_METRICS_TOKEN=TOKEN)
    mock = server.deploy_api(mock_api(path="/counted", count=2, interval=10))
    down = server.deploy_api(proxy_api([f"http://127.0.0.1:{free_port()}/"], path="/down"))
    limited = proxy_api([url(http_backends[0])], path="/limited")
    step = {
        "policy": "rate-limit",
        "configuration": {"rate": {"limit": 1, "periodTime": 1, "periodTimeUnit": "MINUTES"}},
    }
    limited["flows"] = [{"name": "limit", "selectors": [], "request": [step]}]
    limited_id = server.deploy_api(limited)

    for i in range(5):
        assert requests.post(server.gateway + "/counted", data=f"m{i}", timeout=10).status_code == 202
    with requests.get(server.gateway + "/counted", headers={"Accept": "text/event-stream"}, stream=True) as sse:
        assert b"hello" in b"".join(sse.iter_content(None))  # the Mock's two messages, then the stream ends
    for _ in range(4):
        assert requests.get(server.gateway + "/nowhere", timeout=10).status_code == 404
    assert requests.get(server.gateway + "/down", timeout=10).status_code == 502
    assert [requests.get(server.gateway + "/limited", timeout=10).status_code for _ in range(2)] == [200, 429]

    requests_total = "gatehouse_requests_total"
    assert total(server, requests_total, api=mock, entrypoint="http-post", method="POST", status="2xx") == 5
    assert until_total(server, requests_total, 1, api=mock, entrypoint="sse", method="GET", status="2xx") == 1
    assert total(server, requests_total, api="", status="4xx") == 4  # no API took them
    assert total(server, requests_total, api=down, entrypoint="http-proxy", status="5xx") == 1
    assert total(server, requests_total, api=limited_id, status="2xx") == 1
    assert total(server, requests_total, api=limited_id, status="4xx") == 1
    assert total(server, "gatehouse_rate_limited_total", api=limited_id, policy="rate-limit") == 1
    durations = "gatehouse_request_duration_seconds_count"
    assert total(server, durations, api=mock, entrypoint="http-post") == 5
    # Bounded labels: no path and no client in them.
    labels = {key for found, _ in samples(server, requests_total) for key in found}
    assert labels == {"api", "entrypoint", "plan", "method", "status"}


def test_two_workers_answer_a_scrape_with_the_node_s_totals(start_server):
    server = start_server(GATEHOUSE_WORKERS="2", GATEHOUSE_METRICS_TOKEN=TOKEN)
    api_id = server.deploy_api(mock_api(path="/spread"))
    assert len(serving_pids(server, timeout=30)) == 2  # both workers up (slow to start on a loaded machine)
    for i in range(20):  # new connections: both workers take some
        posted = requests.post(server.gateway + "/spread", data=f"m{i}", headers={"Connection": "close"}, timeout=10)
        assert posted.status_code == 202
    scrapes = [total(server, "gatehouse_requests_total", api=api_id, status="2xx") for _ in range(6)]
    assert scrapes == [20] * 6, scrapes  # whichever worker answers the scrape


def test_a_scrape_without_the_token_is_refused(start_server):
    server = start_server(GATEHOUSE_WORKERS="1", GATEHOUSE_METRICS_TOKEN=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        for path in ("/metrics", "/_node/metrics/prometheus"):
            refused = requests.get(server.portal + path, headers=headers, timeout=10)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert "GATEHOUSE_METRICS_TOKEN" in refused.json()["message"]
            assert "gatehouse_requests" not in refused.text
    assert requests.get(server.portal + "/_node/metrics/prometheus", headers=SCRAPER, timeout=10).status_code == 200


def test_with_metrics_off_nothing_is_counted_and_a_wrong_switch_stops_the_start(start_server, tmp_path):
    from support.gatehouse import environment, refused_start

    server = start_server(GATEHOUSE_WORKERS="1", GATEHOUSE_METRICS_TOKEN=TOKEN, GATEHOUSE_METRICS="off")
    api_id = server.deploy_api(mock_api(path="/uncounted"))
    assert requests.post(server.gateway + "/uncounted", data=b"x", timeout=10).status_code == 202
    assert total(server, "gatehouse_requests_total", api=api_id) == 0
    done = refused_start(tmp_path, environment(tmp_path, GATEHOUSE_METRICS="sometimes"))
    assert done.returncode == 2
    assert "GATEHOUSE_METRICS must be on or off, not 'sometimes'" in done.stderr
