"""The topic settings of connectors to brokers with topic hierarchies (MQTT, Solace), checked at save."""

from collections.abc import Callable, Mapping
from typing import Any

# (topic, wildcards allowed) -> what is wrong with it in the broker's grammar, or None
TopicProblem = Callable[[str, bool], str | None]


def topic_errors(values: Mapping[str, Any], key: str, problem: TopicProblem) -> dict[str, str]:
    """{field: message} for the producer's and the consumer's topics under `key` (one topic, or a list of them,
    each then named), the consumer's with wildcards, and for the producer's response topic."""
    errors = {}
    for side, wildcards in (("producer", False), ("consumer", True)):
        part = values.get(side) or {}
        if not part.get("enabled"):
            continue
        value = part.get(key)
        for topic in value if isinstance(value, list) else [value] if value else []:
            found = problem(topic, wildcards)
            if found:
                errors[f"{side}.{key}"] = f"Topic '{topic}': {found}" if isinstance(value, list) else f"Topic: {found}"
                break
    producer = values.get("producer") or {}
    response = producer.get("responseTopic")
    found = problem(response, False) if producer.get("enabled") and response else None
    if found:
        errors["producer.responseTopic"] = f"Response topic: {found}"
    return errors
