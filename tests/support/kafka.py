"""Kafka clients beside the gateway: producing to a topic and reading it back from its start."""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


# ----- talking to the gateway and the broker -----
def produce(bootstrap, topic, *values, key=None, headers=()):
    """Each value (text is sent as UTF-8), acknowledged by the broker before the next."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in values:
        producer.send(
            topic, value=value.encode() if isinstance(value, str) else value, key=key, headers=list(headers)
        ).get(10)
    producer.close()


def consume(bootstrap, topic, count, timeout=10, settle=0.5):
    """The records of a topic from its start: once `count` came, whatever more comes within
    `settle` seconds too (to see that nothing unexpected was published)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records, deadline, settling = [], time.monotonic() + timeout, False
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
            if len(records) >= count and not settling:
                deadline, settling = min(deadline, time.monotonic() + settle), True
        return records
    finally:
        consumer.close()
