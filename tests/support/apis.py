"""API definitions the tests deploy."""

import json

from support.solace import DOUBLE_URL


def mock_api(path="/demo", content="hello", interval=100, count=None, entrypoints=None, name="Demo"):
    configuration = {"messageInterval": interval, "messageContent": content}
    if count is not None:
        configuration["messageCount"] = count
    return {
        "name": name,
        "apiVersion": "1.0",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [
            {
                "type": "http",
                "paths": [{"path": path}],
                "entrypoints": entrypoints
                or [{"type": "http-get"}, {"type": "http-post"}, {"type": "sse"}, {"type": "websocket"}],
            }
        ],
        "endpointGroups": [
            {
                "name": "default",
                "type": "mock",
                "endpoints": [
                    {
                        "name": "mock",
                        "type": "mock",
                        "weight": 1,
                        "inheritConfiguration": False,
                        "configuration": configuration,
                    }
                ],
            }
        ],
    }


def pretty(obj):
    return json.dumps(obj, indent=2, sort_keys=True)


def proxy_api(targets, path="/shop", lb="round-robin", weights=None, http=None):
    endpoints = [
        {
            "name": f"e{i}",
            "type": "http-proxy",
            "weight": (weights or [1] * len(targets))[i],
            "inheritConfiguration": True,
            "configuration": {"target": target},
        }
        for i, target in enumerate(targets)
    ]
    return {
        "name": f"Proxy {path}",
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "proxy",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": [{"type": "http-proxy"}]}],
        "endpointGroups": [
            {
                "name": "backends",
                "type": "http-proxy",
                "loadBalancer": {"type": lb},
                "sharedConfiguration": {"http": http or {}},
                "endpoints": endpoints,
            }
        ],
    }


def tls_group(port, ssl_options, host="127.0.0.1"):
    return {
        "name": "tls",
        "type": "http-proxy",
        "sharedConfiguration": {"ssl": ssl_options},
        "endpoints": [
            {
                "name": "tls",
                "type": "http-proxy",
                "inheritConfiguration": True,
                "configuration": {"target": f"https://{host}:{port}"},
            }
        ],
    }


def tcp_api(hosts, *ports, secured=False, shared=None, name=None):
    return {
        "name": name or hosts[0],
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "proxy",
        "listeners": [{"type": "tcp", "hosts": hosts, "entrypoints": [{"type": "tcp-proxy", "configuration": {}}]}],
        "endpointGroups": [
            {
                "name": "backends",
                "type": "tcp-proxy",
                "loadBalancer": {"type": "round-robin"},
                "sharedConfiguration": shared or {},
                "endpoints": [
                    {
                        "name": f"backend-{i}",
                        "type": "tcp-proxy",
                        "inheritConfiguration": True,
                        "configuration": {"target": {"host": "127.0.0.1", "port": port, "secured": secured}},
                    }
                    for i, port in enumerate(ports)
                ],
            }
        ],
    }


def message_api(kind, path, entrypoints, shared, configuration, name, group):
    """A message API: the entrypoints on one HTTP path, in front of one endpoint of `kind` that
    inherits the group's shared configuration."""
    return {
        "name": name,
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": entrypoints}],
        "endpointGroups": [
            {
                "name": group,
                "type": kind,
                "sharedConfiguration": shared,
                "endpoints": [
                    {"name": "broker", "type": kind, "inheritConfiguration": True, "configuration": configuration}
                ],
            }
        ],
    }


def http_get(qos, count, duration_ms):
    """An HTTP GET entrypoint answering with up to `count` messages, headers and metadata in the payload."""
    return {
        "type": "http-get",
        "qos": qos,
        "configuration": {
            "messagesLimitCount": count,
            "messagesLimitDurationMs": duration_ms,
            "headersInPayload": True,
            "metadataInPayload": True,
        },
    }


def http_post(qos=None):
    """An HTTP POST entrypoint (request headers become message headers). It offers none and auto
    only: a qos of none stays none, any other is auto; without one the gateway's default holds."""
    entrypoint = {"type": "http-post", "configuration": {"requestHeadersToMessage": True}}
    if qos is not None:
        entrypoint["qos"] = "none" if qos == "none" else "auto"
    return entrypoint


def kafka_api(
    bootstrap, topic, path="/orders", qos="auto", consumer=None, producer=True, get_count=10, get_duration_ms=8000
):
    shared = {"consumer": {"enabled": True, "topics": [topic], "autoOffsetReset": "earliest", **(consumer or {})}}
    if producer:
        shared["producer"] = {"enabled": True, "topics": [topic]}
    # without a producer, no entrypoint publishes: Deploy would refuse it
    entrypoints = [
        http_get(qos, get_count, get_duration_ms),
        *([http_post()] if producer else []),
        {"type": "sse", "qos": qos},
        {"type": "websocket", "configuration": {"publisher": {"enabled": producer}}},
    ]
    return message_api("kafka", path, entrypoints, shared, {"bootstrapServers": bootstrap}, f"Kafka {path}", "kafka")


def mqtt_api(
    address,
    topic,
    path="/mqtt",
    qos="auto",
    producer=None,
    consumer=None,
    shared=None,
    get_count=10,
    get_duration_ms=800,
    consumer_topic=None,
):
    config = {
        "consumer": {"enabled": True, "topic": consumer_topic or topic, **(consumer or {})},
        "producer": {"enabled": True, "topic": topic, **(producer or {})},
        **(shared or {}),
    }
    entrypoints = [
        http_get(qos, get_count, get_duration_ms),
        http_post(qos),
        {"type": "sse", "qos": qos, "configuration": {"headersAsComment": True}},
        {"type": "websocket", "qos": qos},
    ]
    return message_api(
        "mqtt5", path, entrypoints, config, {"serverHost": address[0], "serverPort": address[1]}, f"MQTT {path}", "mqtt"
    )


def exchange(name, kind="topic", durable=False, auto_delete=False):
    return {"name": name, "type": kind, "durable": durable, "autoDelete": auto_delete}


def rabbit_api(
    consumer=None, producer=None, path="/orders", qos="auto", get_count=10, get_duration_ms=2000, consumer_extra=None
):
    shared = {"security": {"auth": {"username": "guest", "password": "guest"}}}
    if consumer:
        shared["consumer"] = {
            "enabled": True,
            "exchange": consumer[0],
            "routingKey": consumer[1],
            **(consumer_extra or {}),
        }
    if producer:
        shared["producer"] = {"enabled": True, "exchange": producer[0], "routingKey": producer[1]}
    # Only the entrypoints the sides serve: Deploy refuses an entrypoint that no side can serve.
    entrypoints = [
        e
        for e, side in (
            (http_get(qos, get_count, get_duration_ms), consumer),
            (http_post(qos), producer),
            (
                {"type": "sse", "qos": qos, "configuration": {"heartbeatIntervalInMs": 2000, "headersAsComment": True}},
                consumer,
            ),
            (
                {
                    "type": "websocket",
                    "qos": "none" if qos == "none" else "auto",
                    "configuration": {
                        "publisher": {"enabled": bool(producer)},
                        "subscriber": {"enabled": bool(consumer)},
                    },
                },
                True,
            ),
        )
        if side
    ]
    return message_api(
        "rabbitmq",
        path,
        entrypoints,
        shared,
        {"serverHost": "127.0.0.1", "serverPort": 5672},
        f"RabbitMQ {path}",
        "rabbit",
    )


def solace_api(
    url=DOUBLE_URL,
    topics=("orders/eu",),
    consumer_topics=None,
    path="/solace",
    qos="auto",
    producer=None,
    shared=None,
    vpn="default",
    get_count=10,
    get_duration_ms=800,
    name=None,
):
    config = {
        "consumer": {"enabled": True, "topics": list(consumer_topics or topics)},
        "producer": {"enabled": True, "topics": list(topics), **(producer or {})},
        "security": {"auth": {"username": "admin", "password": "admin"}},
        **(shared or {}),
    }
    entrypoints = [
        http_get("auto" if qos == "none" else qos, get_count, get_duration_ms),
        http_post(qos),
        {"type": "sse", "qos": qos, "configuration": {"headersAsComment": True, "metadataAsComment": True}},
        {"type": "websocket", "qos": "none" if qos == "none" else "auto"},
    ]
    return message_api(
        "solace", path, entrypoints, config, {"url": url, "vpnName": vpn}, name or f"Solace {path}", "solace"
    )


def kafka_group_api(shared=None, path="/orders"):
    """A Mock API whose one group is Kafka's (one endpoint, its shared configuration given): for the group page."""
    definition = mock_api(path=path)
    definition["endpointGroups"] = [
        {
            "name": "brokers",
            "type": "kafka",
            "sharedConfiguration": shared or {},
            "endpoints": [
                {
                    "name": "b1",
                    "type": "kafka",
                    "inheritConfiguration": True,
                    "configuration": {"bootstrapServers": "127.0.0.1:9092"},
                }
            ],
        }
    ]
    return definition
