"""Flows on message APIs over real sockets: channel selectors (channel, operator, operations,
entrypoints), the connection's request and response phases, and the publish and subscribe phases on
each message: the Mock through SSE, http-get and webhooks; http-post -> Mosquitto -> SSE for both
message phases at once."""

import json
import time

import pytest
import requests

from support.apis import mock_api, mqtt_api
from support.gatehouse import launch
from support.mosquitto import shared_broker, unique_topic
from support.streams import read_sse, sse_messages
from support.webhook import ALLOW_PRIVATE, Receiver, hook, mock_group, push_subscribe, webhook_api

JSON = {"Accept": "application/json"}
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("flows"), **ALLOW_PRIVATE)
    yield server
    server.stop()


@pytest.fixture
def server(module_server):
    yield module_server
    module_server.delete_all_apis()


def step(policy, configuration=None, **extra):
    return {"name": policy, "policy": policy, "enabled": True, "configuration": configuration or {}, **extra}


def channel_flow(channel="/", operator="STARTS_WITH", operations=(), entrypoints=(), **phases):
    selector = {
        "type": "channel",
        "channel": channel,
        "channelOperator": operator,
        "operations": list(operations),
        "entrypoints": list(entrypoints),
    }
    return {"name": channel, "enabled": True, "selectors": [selector], **{k: list(v) for k, v in phases.items()}}


def set_header(name, value, **extra):
    return step("transform-headers", {"addHeaders": [{"name": name, "value": value}]}, **extra)


def mock_with(flows, path="/demo", content="hello", count=None, interval=20, **extra):
    entrypoints = [
        {
            "type": "http-get",
            "configuration": {"messagesLimitCount": 4, "messagesLimitDurationMs": 3000, "headersInPayload": True},
        },
        {"type": "http-post"},
        {"type": "sse", "configuration": {"headersAsComment": True}},
    ]
    api = mock_api(path=path, content=content, count=count, interval=interval, entrypoints=entrypoints)
    api["flows"] = flows
    api.update(extra)
    return api


def sse(server, path="/demo", headers=None, count=3):
    with requests.get(server.gateway + path, headers={**SSE, **(headers or {})}, stream=True, timeout=10) as stream:
        assert stream.status_code == 200, stream.text
        return stream.headers, sse_messages(stream, count)


def comments(message):
    return [c.strip() for c in message.get("comments", [])]


def test_transform_headers_on_subscribe_with_a_condition_reaches_an_sse_client(server):
    flow = channel_flow(subscribe=[set_header("X-Studio", "yes", condition="{#request.headers['X-Want'] != null}")])
    server.deploy_api(mock_with([flow]))
    _, wanted = sse(server, headers={"X-Want": "1"})
    _, plain = sse(server)
    assert all("X-Studio: yes" in comments(m) for m in wanted) and len(wanted) == 3
    assert not any("X-Studio: yes" in comments(m) for m in plain) and len(plain) == 3


def test_message_expressions_read_the_message_and_a_message_condition_picks_messages(server):
    flow = channel_flow(
        subscribe=[
            step("policy-assign-content", {"body": "{#message.content}-{#message.id}"}),
            set_header("X-Even", "true", messageCondition="{#message.id matches '\\d*[02468]'}"),
        ]
    )
    server.deploy_api(mock_with([flow], count=4))
    _, got = sse(server, count=4)
    assert [m["data"] for m in got] == ["hello-0", "hello-1", "hello-2", "hello-3"]
    assert ["X-Even: true" in comments(m) for m in got] == [True, False, True, False]


def test_message_filtering_delivers_only_what_the_filter_holds_for_and_webhooks_too(server):
    keep_odd = step("message-filtering", {"filter": "{#message.id matches '\\d*[13579]'}"})
    server.deploy_api(mock_with([channel_flow(subscribe=[keep_odd])], count=8))
    _, got = sse(server, count=4)
    assert [m["id"] for m in got] == ["1", "3", "5", "7"]
    got = requests.get(server.gateway + "/demo", headers=JSON, timeout=10).json()
    assert [item["id"] for item in got["items"]] == ["1", "3", "5", "7"]
    receiver = Receiver()
    try:
        api = webhook_api([mock_group(6, content="w")], qos="at-least-once")
        api["flows"] = [channel_flow(subscribe=[keep_odd, set_header("X-Filtered", "{#message.id}")])]
        api_id = server.deploy_api(api)
        push_subscribe(server, api_id, hook(receiver.url + "/hook"))
        calls = receiver.wait(lambda calls: len(calls) >= 3)
        assert [c.headers.get("X-Filtered") for c in calls] == ["1", "3", "5"]
    finally:
        receiver.close()


def test_channel_selectors_by_channel_operation_and_entrypoint(server):
    flows = [
        channel_flow("/prices", subscribe=[set_header("X-Prices", "1")]),
        channel_flow("/", "EQUALS", subscribe=[set_header("X-Root", "1")]),
        channel_flow(operations=["PUBLISH"], subscribe=[set_header("X-Publish-Only", "1")]),
        channel_flow(entrypoints=["http-get"], subscribe=[set_header("X-Get-Only", "1")]),
    ]
    server.deploy_api(mock_with(flows, count=1))
    _, root = sse(server, count=1)
    _, prices = sse(server, "/demo/prices/eur", count=1)
    got = requests.get(server.gateway + "/demo", headers=JSON, timeout=10).json()["items"][0]["headers"]
    assert set(comments(root[0])) >= {"X-Root: 1"} and "X-Prices: 1" not in comments(root[0])
    assert "X-Prices: 1" in comments(prices[0]) and "X-Root: 1" not in comments(prices[0])
    assert not any("Publish-Only" in c or "Get-Only" in c for c in comments(root[0]) + comments(prices[0]))
    assert got.get("X-Get-Only") == ["1"] and "X-Publish-Only" not in got


def test_the_connection_s_request_and_response_phases(server):
    flow = channel_flow(
        request=[
            step(
                "policy-interrupt",
                {"errorKey": "NO", "message": "no {#request.params['who'][0]}"},
                condition="{#request.params['who'] != null}",
            )
        ],
        response=[set_header("X-Served-By", "{#api.properties['node']}")],
    )
    server.deploy_api(mock_with([flow], count=1, properties=[{"key": "node", "value": "gatehouse-1"}]))
    headers, got = sse(server, count=1)
    assert headers["X-Served-By"] == "gatehouse-1" and len(got) == 1
    refused = requests.get(server.gateway + "/demo?who=bob", headers=JSON, timeout=10)
    assert refused.status_code == 500 and refused.json() == {"message": "no bob", "http_status_code": 500}


def test_json_to_xml_on_each_message(server):
    flow = channel_flow(subscribe=[step("json-xml", {"rootElement": "price"})])
    server.deploy_api(mock_with([flow], content='{"symbol": "GATE", "value": 101.25}', count=2))
    _, got = sse(server, count=2)
    assert [m["data"] for m in got] == ["<price><symbol>GATE</symbol><value>101.25</value></price>"] * 2


def test_publish_and_subscribe_phases_through_a_broker(server):
    topic = unique_topic("flows")
    api = mqtt_api(shared_broker(), topic, path="/mqtt-flows")
    api["flows"] = [
        channel_flow(
            operations=["PUBLISH"],
            publish=[
                set_header("X-Published-As", "{#message.content.toUpperCase()}"),
                step("policy-assign-content", {"body": "[{#message.content}]"}),
            ],
        ),
        channel_flow(operations=["SUBSCRIBE"], subscribe=[set_header("X-Delivered", "yes")]),
    ]
    server.deploy_api(api)
    with requests.get(server.gateway + "/mqtt-flows", headers=SSE, stream=True, timeout=10) as stream:
        read_sse(stream, 1)  # the retry hint: the consumer is subscribed once the stream has started
        posted = requests.post(server.gateway + "/mqtt-flows", data=b"hello", timeout=10)
        assert posted.status_code == 202, posted.text
        got = sse_messages(stream, 1)
    assert got[0]["data"] == "[hello]"
    assert {"X-Published-As: HELLO", "X-Delivered: yes"} <= set(comments(got[0]))


def test_a_message_refused_in_the_publish_phase_is_answered_as_gravitee_does_and_not_published(server):
    topic = unique_topic("refused")
    api = mqtt_api(shared_broker(), topic, path="/mqtt-refused")
    api["flows"] = [channel_flow(publish=[step("interrupt-message-request-phase")])]
    server.deploy_api(api)
    with requests.get(server.gateway + "/mqtt-refused", headers=SSE, stream=True, timeout=10) as stream:
        read_sse(stream, 1)
        refused = requests.post(server.gateway + "/mqtt-refused", data=b"x", headers={"Accept": ""}, timeout=10)
        assert refused.status_code == 412 and refused.text == "An error occurred"
        as_json = requests.post(server.gateway + "/mqtt-refused", data=b"x", headers=JSON, timeout=10)
        assert as_json.json() == {"message": "An error occurred", "http_status_code": 412}
        assert sse_messages(stream, 1, timeout=1.5) == []


def test_import_refuses_a_flow_expression_that_cannot_be_read_naming_field_and_position(server):
    flow = channel_flow(subscribe=[set_header("X-Bad", "{#message.content ==}")])
    response = server.mgmt("POST", "/apis/_import/definition", json=mock_with([flow]))
    assert response.status_code == 400
    assert {
        "field": "flows[0].subscribe[0].configuration.addHeaders[0].value",
        "message": "Expression error at position 21: unexpected end of expression",
    } in response.json()["errors"], response.text
    unknown = mock_with([channel_flow(subscribe=[step("not-a-gatehouse-policy")])])
    assert server.assert_blocked(unknown, ["policy not-a-gatehouse-policy"])


def test_xml_to_json_on_each_message(server):
    flow = channel_flow(subscribe=[step("xml-json")])
    server.deploy_api(mock_with([flow], content="<price><symbol>GATE</symbol><value>101.25</value></price>", count=1))
    _, got = sse(server, count=1)
    assert json.loads(got[0]["data"]) == {"price": {"symbol": "GATE", "value": 101.25}}


def test_latency_holds_each_message(server):
    server.deploy_api(mock_with([channel_flow(subscribe=[step("latency", {"time": 300})])], count=2, interval=0))
    with requests.get(server.gateway + "/demo", headers=SSE, stream=True, timeout=10) as stream:
        read_sse(stream, 1)  # the retry hint, sent before the first message is asked for
        started = time.monotonic()
        got = sse_messages(stream, 2)
    assert [m["id"] for m in got] == ["0", "1"] and time.monotonic() - started >= 0.55


def test_transform_queryparams_changes_what_http_get_reads(server):
    flow = channel_flow(
        request=[step("transform-queryparams", {"addQueryParameters": [{"name": "limit", "value": "2"}]})]
    )
    server.deploy_api(mock_with([flow], count=10, interval=0))
    got = requests.get(server.gateway + "/demo?limit=4", headers=JSON, timeout=10).json()
    assert len(got["items"]) == 2


def test_message_attributes_are_read_by_later_steps(server):
    flow = channel_flow(
        subscribe=[
            step("assign-attributes", {"attributes": [{"name": "size", "value": "{#message.content.length()}"}]}),
            set_header("X-Size", "{#message.attributes['size']}"),
        ]
    )
    server.deploy_api(mock_with([flow], count=1))
    _, got = sse(server, count=1)
    assert "X-Size: 5" in comments(got[0])


def test_connector_to_header_and_url_rewriting_on_the_connection_s_answer(server):
    flow = channel_flow(
        response=[
            step("connector-to-header"),
            set_header("Link", "http://internal.example:8080/demo/next"),
            step(
                "url-rewriting", {"fromRegex": r"http://internal\.example:\d+", "toReplacement": "https://api.example"}
            ),
        ]
    )
    server.deploy_api(mock_with([flow], count=1))
    headers, _ = sse(server, count=1)
    assert headers["X-Entrypoint-Used"] == "sse" and headers["X-Endpoint-Used"] == "mock"
    assert headers["Link"] == "https://api.example/demo/next"
    as_json = requests.get(server.gateway + "/demo", headers=JSON, timeout=10)
    assert as_json.headers["X-Entrypoint-Used"] == "http-get"


def test_message_filtering_on_subscription_metadata_gives_each_subscriber_what_it_asked_for(server):
    """Two API keys of one plan, their subscriptions' metadata saying which messages each wants;
    a metadata change reaches the gateway without a redeploy."""
    from support.gatehouse import until
    from support.plans import plan

    wanted = "{(#message.id matches '\\d*[02468]') == (#subscription.metadata['parity'] == 'even')}"
    api = mock_with([channel_flow(subscribe=[step("message-filtering", {"filter": wanted})])], count=6)
    api["plans"] = [plan("gold", "API_KEY")]
    api_id = server.deploy_api(api)

    def subscribe(metadata):
        application = server.application()
        body = {"applicationId": application["id"], "planId": "gold", "metadata": metadata}
        created = server.mgmt("POST", f"/apis/{api_id}/subscriptions", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["metadata"] == metadata
        return created.json()

    even, odd = subscribe({"parity": "even"}), subscribe({"parity": "odd"})

    def ids(subscription):
        headers = {"X-Gravitee-Api-Key": subscription["apiKey"]}
        return [m["id"] for m in sse(server, headers=headers, count=3)[1]]

    until(
        lambda: (
            requests.get(
                server.gateway + "/demo", headers={**JSON, "X-Gravitee-Api-Key": odd["apiKey"]}, timeout=10
            ).status_code
            == 200
        ),
        5,
    )
    assert ids(even) == ["0", "2", "4"] and ids(odd) == ["1", "3", "5"]
    changed = server.mgmt("PUT", f"/apis/{api_id}/subscriptions/{odd['id']}", json={"metadata": {"parity": "even"}})
    assert changed.status_code == 200 and changed.json()["metadata"] == {"parity": "even"}
    until(lambda: ids(odd) == ["0", "2", "4"], 5)
    bad = server.mgmt("PUT", f"/apis/{api_id}/subscriptions/{odd['id']}", json={"metadata": {"parity": 2}})
    assert bad.status_code == 400 and "metadata.parity" in bad.text
    # Good metadata with webhook settings a key subscription cannot have: refused whole, nothing kept.
    mixed = {"metadata": {"parity": "odd"}, "consumerConfiguration": {}}
    refused = server.mgmt("PUT", f"/apis/{api_id}/subscriptions/{odd['id']}", json=mixed)
    assert refused.status_code == 400 and "webhook settings" in refused.text
    assert server.mgmt("GET", f"/apis/{api_id}/subscriptions/{odd['id']}").json()["metadata"] == {"parity": "even"}


@pytest.mark.parametrize(
    "path, api_flow, plan_flow",
    [
        ("/books", "/books", "/books"),
        ("/books/12", "/books", "/books/:bookId"),
        ("/books/12/chapters/3", "/books/:bookId/chapters/:chapterId", "/books/:bookId"),
        ("/books/12/chapters/3/pages/7", "/books/:bookId/chapters/:chapterId/pages/:pageId", "/books/:bookId"),
        ("/books/9999/chapters/3", "/books/9999/chapters", "/books/:bookId"),  # a literal beats a parameter
        ("/magazines", None, "/"),
    ],
)
def test_the_best_match_fixture_picks_one_api_flow_and_one_plan_flow(server, path, api_flow, plan_flow):
    """messages/bestmatch/api.json (Gravitee's own): BEST_MATCH on channels, for the API's flows and
    the key-less plan's flows apart, each flow naming itself in a header of the answer."""
    from support.fixtures import load

    server.deploy_api(load("messages/bestmatch/api.json"))
    got = requests.get(server.gateway + "/test" + path, headers=JSON, timeout=10)
    assert got.status_code == 200, got.text
    assert got.headers.get("X-Api-Flow-Selected") == api_flow
    assert got.headers.get("X-Plan-Flow-Selected") == plan_flow


def test_message_filtering_on_publish_and_on_messages_it_cannot_read(server):
    """Published messages the filter leaves out are accepted (202) and never reach the broker; with
    filterMessageOnFilteringError false, a message the filter cannot read (not JSON) is kept."""
    topic = unique_topic("filtered")
    api = mqtt_api(shared_broker(), topic, path="/mqtt-filtered")
    only_orders = "{#jsonPath(#message.content, '$.kind') == 'order'}"
    api["flows"] = [
        channel_flow(
            operations=["PUBLISH"],
            publish=[step("message-filtering", {"filter": only_orders, "filterMessageOnFilteringError": False})],
        )
    ]
    server.deploy_api(api)
    with requests.get(server.gateway + "/mqtt-filtered", headers=SSE, stream=True, timeout=10) as stream:
        read_sse(stream, 1)
        for body in (b'{"kind": "quote"}', b'{"kind": "order"}', b"not json"):
            assert requests.post(server.gateway + "/mqtt-filtered", data=body, timeout=10).status_code == 202
        got = sse_messages(stream, 2)
    assert [m["data"] for m in got] == ['{"kind": "order"}', "not json"]


def test_kafka_metadata_in_expressions_key_topic_partition_offset(server, tansu, new_topic):
    """A Kafka record's key, topic, partition and offset are #message.metadata; a filter on the key
    keeps one customer's records, a header names where each came from."""
    from support.apis import kafka_api
    from support.kafka import produce

    topic = new_topic()
    api = kafka_api(tansu.bootstrap, topic, path="/kafka-flows")
    api["listeners"][0]["entrypoints"] = [{"type": "sse", "configuration": {"headersAsComment": True}}]
    where = "{#message.metadata['topic']}/{#message.metadata['partition']}/{#message.metadata['offset']}"
    api["flows"] = [
        channel_flow(
            subscribe=[
                step("message-filtering", {"filter": "{#message.metadata['key'] == 'c-1'}"}),
                set_header("X-From", where),
            ]
        )
    ]
    server.deploy_api(api)
    produce(tansu.bootstrap, topic, "first", key=b"c-1")
    produce(tansu.bootstrap, topic, "other customer", key=b"c-2")
    produce(tansu.bootstrap, topic, "second", key=b"c-1")
    headers = {**SSE, "X-Gravitee-Client-Identifier": "flows-kafka"}
    with requests.get(server.gateway + "/kafka-flows", headers=headers, stream=True, timeout=30) as stream:
        got = sse_messages(stream, 2, timeout=20)
    assert [m["data"] for m in got] == ["first", "second"]
    assert [next(c for c in comments(m) if c.startswith("X-From")) for m in got] == [
        f"X-From: {topic}/0/0",
        f"X-From: {topic}/0/2",
    ]


def response_flows(server, path, **headers):
    got = requests.get(server.gateway + path, headers={**JSON, **headers}, timeout=10)
    assert got.status_code == 200, got.text
    return {name: value for name, value in got.headers.items() if name.startswith("X-Response-Flow")}


def test_gravitee_s_flow_fixtures_run_the_flows_their_names_say(server):
    """messages/flows/*.json: which of their flows (by channel, operator and condition) ran, as the
    answer's X-Response-Flow-* headers name them."""
    from support.fixtures import load

    server.deploy_api(load("messages/flows/api.json"))
    assert response_flows(server, "/test") == {"X-Response-Flow-0": "Flow /"}
    assert response_flows(server, "/test/products") == {
        "X-Response-Flow-0": "Flow /",
        "X-Response-Flow-1": "Flow /products",
    }
    server.delete_all_apis()

    server.deploy_api(load("messages/flows/api-flows-equals-and-starts-with.json"))
    assert response_flows(server, "/test") == {"X-Response-Flow-0": "Flow /", "X-Response-Flow-1": "Flow /products"}
    assert response_flows(server, "/test/products") == {"X-Response-Flow-1": "Flow /products"}  # not EQUALS /
    server.delete_all_apis()

    server.deploy_api(load("messages/flows/api-conditional-flows.json"))
    selection = "X-Condition-Flow-Selection"
    assert response_flows(server, "/test", **{selection: "root-condition"}) == {"X-Response-Flow-0": "Flow /"}
    assert response_flows(server, "/test", **{selection: "product-condition"}) == {
        "X-Response-Flow-1": "Flow /products"
    }
    assert response_flows(server, "/test") == {}
    server.delete_all_apis()

    # Its request step removes the header its condition reads: the flow chosen then still runs its
    # response phase (the flows of a request are chosen once, as Gravitee replays them).
    server.deploy_api(load("messages/flows/api-conditional-flows-double-evaluation-case.json"))
    assert response_flows(server, "/test-double-evaluation", **{selection: "root-condition"}) == {
        "X-Response-Flow-0": "Flow /"
    }


def test_the_all_entrypoints_fixture_names_its_connectors_in_every_answer(server):
    from support.fixtures import load

    server.deploy_api(load("messages/all-entrypoints-mock-endpoint.json"))
    got = requests.get(server.gateway + "/test", headers=JSON, timeout=10)
    assert (got.headers["X-Entrypoint-Used"], got.headers["X-Endpoint-Used"]) == ("http-get", "mock")
    posted = requests.post(server.gateway + "/test", data=b"x", timeout=10)
    assert posted.status_code == 202 and posted.headers["X-Entrypoint-Used"] == "http-post"
    headers, _ = sse(server, "/test", count=1)
    assert headers["X-Entrypoint-Used"] == "sse"
