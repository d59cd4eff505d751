"""The node's health probes (Gravitee's /_node/health, and live / ready for Kubernetes) over real
sockets: a started API's broker stopped and started again, the database unreachable at start
(through a forwarder to the local PostgreSQL that the test closes and opens)."""

import time

import requests

from support.apis import mqtt_api
from support.forwarder import Forwarder
from support.gatehouse import launch
from support.mosquitto import auth, unique_topic


def health(server, **params):
    return requests.get(server.portal + "/_node/health", params=params, timeout=10)


def until_status(server, status, timeout=15):
    deadline = time.monotonic() + timeout
    while (got := health(server)).status_code != status:
        assert time.monotonic() < deadline, got.text
        time.sleep(0.2)
    return got


def test_a_started_api_whose_broker_stops_makes_the_node_unhealthy_naming_it_and_healthy_when_back(
    server, private_broker
):
    definition = mqtt_api(("127.0.0.1", private_broker.port), unique_topic("probe"), path="/probed", shared=auth())
    api_id = server.deploy_api(definition)
    up = health(server)
    assert up.status_code == 200, up.text
    assert up.json() == {
        "database": {"healthy": True},
        "gateway": {"healthy": True},
        f"api:{api_id}": {"healthy": True},
    }
    private_broker.stop()
    down = until_status(server, 500).json()
    assert down["database"] == {"healthy": True}
    assert down[f"api:{api_id}"]["healthy"] is False
    assert down[f"api:{api_id}"]["message"].startswith("endpoint ")  # the endpoint named, then what is wrong
    assert str(private_broker.port) in down[f"api:{api_id}"]["message"]
    assert health(server, probes="database,gateway").status_code == 200  # asked about those alone
    private_broker.start()
    assert until_status(server, 200).json()[f"api:{api_id}"] == {"healthy": True}
    assert requests.get(server.portal + "/_node/health/live", timeout=10).json() == {"status": "UP"}


def test_without_its_database_at_start_the_node_is_live_not_ready_and_says_why_until_it_is_back(tmp_path, postgres_url):
    forwarder = Forwarder().start()
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")
    forwarder.stop()  # a node that has never reached its database: no last-known deployments either
    node = launch(tmp_path, url)
    try:
        assert requests.get(node.portal + "/_node/health/live", timeout=10).status_code == 200
        ready = requests.get(node.portal + "/_node/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "DOWN"
        assert ready.json()["message"] == "the gateway has not loaded its deployments yet"
        down = health(node)
        assert down.status_code == 500
        assert down.json()["database"]["healthy"] is False
        assert "The database is unreachable" in down.json()["database"]["message"]
        assert down.json()["gateway"]["healthy"] is False
        forwarder.start()
        deadline = time.monotonic() + 20
        while requests.get(node.portal + "/_node/health/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the node did not become ready once its database was back"
            time.sleep(0.2)
        assert until_status(node, 200).json() == {"database": {"healthy": True}, "gateway": {"healthy": True}}
    finally:
        node.stop()
        forwarder.stop()
