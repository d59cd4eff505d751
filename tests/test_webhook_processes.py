"""Webhook delivery across gateway processes: a restart during retries loses nothing for
at-least-once (Kafka), and on one PostgreSQL database each subscription is delivered by exactly
one of two processes, moving to the other within 10 s when that one is killed."""

import time

import psycopg
import pytest

from support.kafka import produce
from support.webhook import ALLOW_PRIVATE, hook, kafka_group, mock_group, push_subscribe, wait_state, webhook_api

pytestmark = pytest.mark.slow  # restarts and kills gateways


def test_a_restart_during_retries_delivers_every_message_at_least_once(start_server, receiver, tansu, new_topic):
    healthy = {"now": False}
    target = receiver(lambda n, body, headers: 200 if healthy["now"] else 500)
    first = start_server(**ALLOW_PRIVATE)
    topic = new_topic()
    api_id = first.deploy_api(webhook_api([kafka_group(tansu.bootstrap, topic)], qos="at-least-once"))
    subscription = push_subscribe(first, api_id, hook(target.url + "/hook", retry=("LINEAR", 100, 0.2, 0.2)))
    produce(tansu.bootstrap, topic, "a", "b", "c")
    target.wait(lambda calls: len(calls) >= 3, timeout=30)  # retrying the first message
    assert wait_state(first, api_id, subscription["id"], "retrying")["detail"].endswith("got HTTP 500")
    first.stop()
    healthy["now"] = True
    second = start_server(**ALLOW_PRIVATE)  # the same instance folder: the same database
    target.wait(lambda calls: {"a", "b", "c"} <= set(target.accepted()), timeout=30)
    assert target.accepted()[:3] == ["a", "b", "c"]
    wait_state(second, api_id, subscription["id"], "active")


def holders(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        return dict(connection.execute("SELECT subscription_id, holder FROM webhook_states").fetchall())


def test_two_processes_on_postgresql_deliver_each_subscription_once_and_take_over_within_10s(
    start_server, receiver, postgres_url
):
    target = receiver()
    a = start_server(postgres_url, **ALLOW_PRIVATE)
    b = start_server(postgres_url, **ALLOW_PRIVATE)
    api_id = a.deploy_api(webhook_api([mock_group(None, interval=50)], qos="at-least-once"))
    b.wait_serving(api_id, 1)
    subscriptions = [push_subscribe(a, api_id, hook(f"{target.url}/s{i}"))["id"] for i in range(4)]
    target.wait(lambda calls: all(len([c for c in calls if c.path == f"/s{i}"]) >= 10 for i in range(4)))

    pids = {a.runtime()["pid"]: a, b.runtime()["pid"]: b}
    held = holders(postgres_url)
    assert sorted(held) == sorted(subscriptions)
    for sid in subscriptions:
        log = wait_state(a, api_id, sid, "active", lambda s: len(s["deliveries"]) >= 10)["deliveries"]
        assert {d["gateway"] for d in log} == {held[sid]}  # one process delivers it, always the same
        assert int(held[sid].split(":")[1]) in pids

    victim = pids[int(held[subscriptions[0]].split(":")[1])]
    survivor = b if victim is a else a
    victim.proc.kill()
    victim.proc.wait()
    killed_at = time.monotonic()
    taken = {}
    for i, sid in enumerate(subscriptions):
        before = len(target.calls)
        target.wait(lambda calls, i=i, before=before: any(c.path == f"/s{i}" for c in calls[before:]), timeout=12)
        taken[sid] = time.monotonic() - killed_at
    assert max(taken.values()) < 10, taken
    survivor_holder = {h for h in holders(postgres_url).values()}
    assert len(survivor_holder) == 1 and int(survivor_holder.pop().split(":")[1]) == survivor.runtime()["pid"]
