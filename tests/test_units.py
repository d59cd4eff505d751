"""Pure pieces: routing, client identity, the settings declarations, definition spellings."""

import importlib

import pytest

from gateway_runtime import http
from gateway_runtime.definition.forms import read_document, to_management_form
from gateway_runtime.definition.slots import SECRET_MASK
from gateway_runtime.gateway import Routes
from gateway_runtime.settings import Field, Settings
from portal.connector_forms import from_form


class FakeApi:
    def __init__(self, name, *paths):
        self.name, self.paths, self.sni_hosts = name, list(paths), []


def test_routes_prefer_host_then_longest_path():
    routes = Routes(
        [
            FakeApi("root", (None, "/")),
            FakeApi("orders", (None, "/orders")),
            FakeApi("eu-orders", ("eu.example", "/orders")),
            FakeApi("deep", (None, "/orders/archive")),
        ]
    )
    assert routes.match(None, "/orders").name == "orders"
    assert routes.match("eu.example", "/orders/1").name == "eu-orders"
    assert routes.match(None, "/orders/archive/2024").name == "deep"
    assert routes.match(None, "/ordersx").name == "root"
    assert Routes([FakeApi("a", (None, "/a"))]).match(None, "/b") is None


def test_client_identifier_trusts_only_configured_proxies(monkeypatch):
    monkeypatch.setenv("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8")
    importlib.reload(http)
    try:
        behind = {"REMOTE_ADDR": "10.1.1.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.2.2.2"}
        direct = {"REMOTE_ADDR": "203.0.113.9"}
        spoofed = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
        assert http.client_address(behind) == "203.0.113.9"
        assert http.client_identifier(behind) == http.client_identifier(direct)
        assert http.client_address(spoofed) == "198.51.100.7"
        suffixed = dict(direct, HTTP_X_GRAVITEE_CLIENT_IDENTIFIER="tab-2")
        assert http.client_identifier(suffixed) == http.client_identifier(direct) + "-tab-2"
    finally:
        monkeypatch.delenv("GATEHOUSE_TRUSTED_PROXIES")
        importlib.reload(http)


SETTINGS = Settings(
    fields=(
        Field("protocol", "enum", "Protocol", default="PLAIN", choices=("PLAIN", "SSL")),
        Field("ssl.trustStore.path", "path", "Trust store path", when=("protocol", ("SSL",)), required=True),
        Field("auth.password", "secret", "Password"),
        Field("producer.enabled", "boolean", "Producer", default=False),
        Field("producer.topic", "string", "Topic", when=("producer.enabled", (True,)), required=True),
    )
)


def test_conditional_sections_are_required_only_when_on():
    assert SETTINGS.validate({"protocol": "PLAIN"})[1] == {}
    assert SETTINGS.validate({"protocol": "SSL"})[1] == {"ssl.trustStore.path": "Trust store path is required"}
    assert SETTINGS.validate({"producer": {"enabled": "true"}})[1] == {"producer.topic": "Topic is required"}
    values, errors = from_form(SETTINGS, {"x.protocol": "PLAIN", "x.producer.topic": "t"}, "x.")
    assert errors == {} and values == {"protocol": "PLAIN", "producer": {"enabled": False}}  # hidden field dropped


def test_store_paths_must_lie_under_the_certs_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEHOUSE_CERTS_DIR", raising=False)
    assert (
        "set GATEHOUSE_CERTS_DIR"
        in SETTINGS.validate({"protocol": "SSL", "ssl": {"trustStore": {"path": "a.pem"}}})[1]["ssl.trustStore.path"]
    )
    monkeypatch.setenv("GATEHOUSE_CERTS_DIR", str(tmp_path))
    inside = {"protocol": "SSL", "ssl": {"trustStore": {"path": str(tmp_path / "ca.pem")}}}
    assert SETTINGS.validate(inside)[1] == {}
    outside = {"protocol": "SSL", "ssl": {"trustStore": {"path": "../../etc/passwd"}}}
    assert "must lie under GATEHOUSE_CERTS_DIR" in SETTINGS.validate(outside)[1]["ssl.trustStore.path"]


def test_secrets_are_masked_and_a_masked_value_keeps_the_old_one():
    masked = SETTINGS.mask_secrets({"auth": {"password": "s3cret"}})
    assert masked == {"auth": {"password": SECRET_MASK}}
    assert SETTINGS.restore_secrets(masked, {"auth": {"password": "s3cret"}}) == {"auth": {"password": "s3cret"}}
    values, _ = from_form(SETTINGS, {"x.auth.password": ""}, "x.", previous={"auth": {"password": "old"}})
    assert values["auth"]["password"] == "old"  # an empty password field leaves it unchanged


@pytest.mark.parametrize(
    "document",
    [
        {
            "api": {
                "definitionVersion": "V4",
                "type": "MESSAGE",
                "listeners": [{"type": "HTTP", "entrypoints": [{"type": "sse", "qos": "AT_LEAST_ONCE"}]}],
            },
            "plans": [{"id": "p", "security": {"type": "KEY_LESS"}, "mode": "STANDARD"}],
        },
        {
            "gravitee": "4.0.0",
            "type": "message",
            "listeners": [{"type": "http", "entrypoints": [{"type": "sse", "qos": "at-least-once"}]}],
            "plans": {"p": {"security": {"type": "key-less"}, "mode": "standard"}},
        },
    ],
)
def test_both_spellings_read_the_same(document):
    api = read_document(document)
    assert api["type"] == "message" and api["definitionVersion"] == "4.0.0"
    assert api["listeners"][0]["entrypoints"][0]["qos"] == "at-least-once"
    assert api["plans"] == [{"id": "p", "security": {"type": "key-less"}, "mode": "standard"}]
    management, plans = to_management_form(api)
    assert management["listeners"][0]["entrypoints"][0]["qos"] == "AT_LEAST_ONCE"
    assert plans[0]["security"]["type"] == "KEY_LESS" and management["definitionVersion"] == "V4"


def test_status_conditions_compare_the_response_status():
    from gateway_runtime.conditions import ResponseCondition
    from gateway_runtime.expressions import ExpressionError

    at_least_500 = ResponseCondition("{#response.status >= 500}", "test")
    assert [at_least_500(s) for s in (200, 499, 500, 503)] == [False, False, True, True]
    either = ResponseCondition(
        "{#response.status == 429 || #response.status >= 500 && #response.status != 501}", "test"
    )
    assert [either(s) for s in (429, 500, 501, 404)] == [True, True, False, False]
    # the whole expression language: headers (any case), the content of a health check's answer
    retry = ResponseCondition("{#response.headers['retry-after'] != null}", "test")
    assert retry(503, [("Retry-After", "5")]) and not retry(503, [("X-Other", "1")])
    up = ResponseCondition("{#jsonPath(#response.content, '$.status') == 'UP'}", "test")
    assert up(200, [], '{"status": "UP"}') and not up(200, [], '{"status": "DOWN"}')
    # what cannot be evaluated against an answer does not pass (and is logged once)
    assert ResponseCondition("{#request.headers['x'][0] == 'y'}", "test")(500) is False
    with pytest.raises(ExpressionError) as refused:
        ResponseCondition("{#response.status >= }", "test")
    assert str(refused.value).startswith("Expression error at position ")


def test_circuit_breaker_opens_after_max_failures_and_lets_one_trial_through(monkeypatch):
    from gateway_runtime import failover

    now = [100.0]
    monkeypatch.setattr(failover.time, "monotonic", lambda: now[0])
    breaker = failover.CircuitBreaker(max_failures=2, open_seconds=10)
    breaker.record(False)
    breaker.record(True)  # a success resets the count: failures must come in a row
    breaker.record(False)
    assert breaker.allow()
    breaker.record(False)
    assert not breaker.allow()
    now[0] += 10
    assert breaker.allow() and not breaker.allow()  # one trial call at a time
    breaker.record(False)  # the trial failed: open again
    assert not breaker.allow()
    now[0] += 10
    assert breaker.allow()
    breaker.record(True)
    assert breaker.allow() and breaker.allow()


def test_next_after_goes_round_the_endpoints_that_are_up():
    from gateway_runtime.failover import Balancer

    balancer = Balancer("random", [("a", 1, False), ("b", 1, False), ("c", 1, False), ("s", 1, True)])
    assert [balancer.next_after(c) for c in "abc"] == ["b", "c", "a"]
    balancer.set_up("b", False)
    assert balancer.next_after("a") == "c" and balancer.next_after("b") == "a"


def test_failover_settings_are_checked_at_import_and_deploy():
    from gateway_runtime.definition.checks import blocking_parts, validate
    from gateway_runtime.definition.forms import DefinitionError

    api = {
        "name": "a",
        "type": "proxy",
        "listeners": [{"type": "http", "paths": [{"path": "/a"}], "entrypoints": [{"type": "http-proxy"}]}],
        "endpointGroups": [
            {
                "name": "g",
                "type": "http-proxy",
                "endpoints": [{"name": "e", "type": "http-proxy", "configuration": {"target": "http://127.0.0.1:1"}}],
            }
        ],
    }
    with pytest.raises(DefinitionError) as refused:
        validate({**api, "failover": {"enabled": True, "maxRetries": "many"}})
    assert refused.value.errors == [{"field": "failover.maxRetries", "message": "Max retries: must be a number"}]
    headers = {"enabled": True, "failureCondition": "{#response.headers['x'] != null}"}
    assert blocking_parts(validate({**api, "failover": headers})) == []  # the expression language, not only statuses
    condition = {"enabled": True, "failureCondition": "{#response.status >= }"}
    assert blocking_parts(validate({**api, "failover": condition})) == [
        "failover: Failure condition: Expression error at position 21: unexpected end of expression"
    ]
    assert blocking_parts(validate({**api, "failover": {**condition, "enabled": False}})) == []


def test_the_runtime_greenlet_count_leaves_out_the_sqlite_pool_s_threads():
    import time

    import gevent
    from gevent.threadpool import ThreadPool

    from gateway_runtime.gateway import _live_greenlets

    gevent.sleep(0)  # this thread's hub is running
    before = _live_greenlets()
    pool = ThreadPool(3)
    try:
        gevent.joinall([gevent.spawn(pool.apply, time.sleep, (0.05,)) for _ in range(3)])
        assert pool.size == 3  # three threads, each with a hub of its own
        assert _live_greenlets() == before
        waiting = gevent.spawn(gevent.sleep, 5)
        gevent.sleep(0)
        assert _live_greenlets() == before + 1  # a greenlet of this hub still counts
        waiting.kill()
    finally:
        pool.kill()


def test_a_subscription_through_flows_acknowledges_what_it_left_out_with_the_next_delivered_unless_told_not_to():
    """What the connector is told, in order: a message left out is acknowledged with the next one
    delivered (an at-least-once commit never passes an undelivered message); with
    ackFilteredMessage false it is never acknowledged; transformed messages are acknowledged as the
    objects the connector gave."""
    from gateway_runtime.flows.compiled import FlowSet
    from gateway_runtime.flows.exchange import Exchange
    from gateway_runtime.flows.serve import FlowSubscription
    from gateway_runtime.messages import Message, Subscription

    def flows(ack_filtered):
        keep_odd = {
            "policy": "message-filtering",
            "configuration": {"filter": "{#message.id matches '\\d*[13579]'}", "ackFilteredMessage": ack_filtered},
        }
        mark = {
            "policy": "transform-headers",
            "configuration": {"addHeaders": [{"name": "X", "value": "{#message.id}"}]},
        }
        return FlowSet({"id": "a", "type": "message", "flows": [{"subscribe": [keep_odd, mark]}]})

    class Recorded(Subscription):
        def __init__(self):
            self.given = [Message(b"m", str(i)) for i in range(6)]
            self.acknowledged = []

        def next_batch(self, timeout, max_messages):
            batch, self.given = self.given[:3], self.given[3:]
            return batch

        def acknowledge(self, messages):
            self.acknowledged += [m.id for m in messages]

    for ack_filtered, wanted in ((True, ["0", "1", "2", "3"]), (False, ["1", "3"])):
        inner = Recorded()
        flow_set = flows(ack_filtered)
        exchange = Exchange(None, flow_set, None, None, "sse", frozenset({"SUBSCRIBE"}))
        flow_set.start(exchange)
        subscription = FlowSubscription(inner, flow_set, exchange)
        first = subscription.next_batch(1, 3)
        assert [(m.id, m.headers) for m in first] == [("1", {"X": ["1"]})]
        subscription.acknowledge(first)
        second = subscription.next_batch(1, 3)
        assert [m.id for m in second] == ["3", "5"]
        subscription.acknowledge(second[:1])
        assert inner.acknowledged == wanted
