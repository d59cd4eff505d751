"""Contract tests against a real Solace PubSub+ broker, with the real library in the real worker.

They run when SOLACE_URL, SOLACE_VPN, SOLACE_USERNAME and SOLACE_PASSWORD name a broker (e.g. the
`solace/solace-pubsub-standard` container: tcp://localhost:55555, VPN default, admin/admin; the
user may create durable queues), and are skipped otherwise: no broker can run on the machines
this project is built on, so they are the only check of what the test double (support/solace_double.py)
claims the library and broker do. Each run uses topics and client identifiers of its own.
"""

import os
import uuid

import pytest
import requests

from support.apis import solace_api
from support.solace import poll, post, sse
from support.streams import next_message

SETTINGS = ("SOLACE_URL", "SOLACE_VPN", "SOLACE_USERNAME", "SOLACE_PASSWORD")
pytestmark = pytest.mark.skipif(
    not all(os.environ.get(name) for name in SETTINGS), reason="no Solace broker: set " + ", ".join(SETTINGS)
)


def broker_api(path, topic, qos="auto", password=None):
    return solace_api(
        url=os.environ["SOLACE_URL"],
        vpn=os.environ["SOLACE_VPN"],
        topics=[topic],
        path=path,
        qos=qos,
        get_count=5,
        get_duration_ms=1500,
        shared={
            "security": {
                "auth": {
                    "username": os.environ["SOLACE_USERNAME"],
                    "password": password or os.environ["SOLACE_PASSWORD"],
                }
            }
        },
    )


@pytest.fixture
def run():
    return uuid.uuid4().hex[:10]


def test_publish_subscribe_round_trip_with_user_properties_and_metadata(server, run):
    topic = f"gatehouse/contract/{run}/orders"
    server.deploy_api(broker_api("/round-trip", topic))
    client = f"rt-{run}"
    assert poll(server, "/round-trip", client)["items"] == []  # the client's durable queue now attracts the topic
    post(server, "ünïcode".encode(), "/round-trip", **{"X-Trace": "t-1"})
    [item] = poll(server, "/round-trip", client)["items"]
    assert item["content"] == "ünïcode" and item["headers"]["x-trace"] == ["t-1"]
    metadata = item["metadata"]
    assert metadata["destinationName"] == topic
    assert metadata["isRedelivered"] is False and metadata["isCached"] is False
    assert metadata["senderId"] and int(metadata["senderTimestamp"]) > 0


def test_persistent_queue_redelivers_what_was_not_written(server, run):
    topic = f"gatehouse/contract/{run}/jobs"
    server.deploy_api(broker_api("/redelivery", topic, qos="at-least-once"))
    client = f"rd-{run}"
    poll(server, "/redelivery", client)
    post(server, b"one", "/redelivery")
    post(server, b"two", "/redelivery")
    first = poll(server, "/redelivery", client, limit=1)["items"]
    assert [(i["content"], i["metadata"]["isRedelivered"]) for i in first] == [("one", False)]
    again = poll(server, "/redelivery", client)["items"]
    assert [(i["content"], i["metadata"]["isRedelivered"]) for i in again] == [("two", True)]
    assert poll(server, "/redelivery", client)["items"] == []


def test_direct_subscription_for_qos_none(server, run):
    topic = f"gatehouse/contract/{run}/prices"
    server.deploy_api(broker_api("/direct", topic, qos="none"))
    with sse(server, "/direct") as stream:  # the direct receiver has started
        post(server, b"live", "/direct")
        assert next_message(stream)["data"] == "live"


def test_wrong_password_is_authentication_failed(server, run):
    server.deploy_api(broker_api("/wrong-password", f"gatehouse/contract/{run}/x", password=f"wrong-{run}"))
    response = requests.post(server.gateway + "/wrong-password", data=b"x", timeout=30)
    assert response.status_code == 502
    assert response.json()["message"].startswith(
        f"The endpoint failed: Authentication failed at {os.environ['SOLACE_URL']}"
    )


def test_unknown_vpn_is_named(server, run):
    api = broker_api("/no-vpn", f"gatehouse/contract/{run}/x")
    api["endpointGroups"][0]["endpoints"][0]["configuration"]["vpnName"] = f"no-such-vpn-{run}"
    server.deploy_api(api)
    response = requests.post(server.gateway + "/no-vpn", data=b"x", timeout=30)
    assert response.status_code == 502
    message = response.json()["message"]
    # Which of the two a broker answers for a VPN it does not have is what this test finds out.
    assert f"no-such-vpn-{run}" in message and ("VPN not found" in message or "Authentication failed" in message)
