"""RabbitMQ endpoint benchmarks: the gateway against pika used directly, in the same run.

    python bench/rabbitmq.py [--only post,consume] [--duration 10] [--records 50000] [--runs 1]

Uses the local RabbitMQ broker (127.0.0.1:5672, guest/guest; shared, so everything made here has
a name of its own and is removed afterwards) and a fresh `gatehouse serve` (temp SQLite, free
ports). What is measured:

  post     http-post -> RabbitMQ with publisher confirms (qos auto): `wrk -t2 -c32` POSTing a 1 KB
           body for --duration seconds; afterwards a queue of the bench's own, bound to the
           exchange, must hold as many messages as wrk counted 202 responses. Then pika alone as
           the gateway drives it: one connection, confirm mode, publish + wait for the confirm per
           message, for --duration seconds, in a separate process.
  consume  SSE events/s to ONE client: the client's queue (the name and arguments the gateway
           declares) is pre-filled with --records 1 KB messages; one raw-socket SSE client (qos
           auto: acknowledged after each write) reads them all through the gateway. Then pika
           alone: basic_consume with the gateway's prefetch, one multiple-ack per 256 messages.
           Both clocks start at the first message.
"""

import argparse
import importlib.util
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
# The gateways started here run this checkout's code, whichever checkout `pip install -e` named.
os.environ["PYTHONPATH"] = str(HERE.parent)
from common import Gatehouse, Processes, median, read_headers, recv_some  # noqa: E402

# bench/kafka.py holds the wrk driver and the request builders; loaded by path (its name is kafka-python's).
_spec = importlib.util.spec_from_file_location("kafka_bench", HERE / "kafka.py")
kafka_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kafka_bench)
BODY_1K, MOCK_GROUP, api, sse_request, wrk_post = (
    kafka_bench.BODY_1K,
    kafka_bench.MOCK_GROUP,
    kafka_bench.api,
    kafka_bench.sse_request,
    kafka_bench.wrk_post,
)

from gateway_runtime.endpoints import rabbitmq as connector  # noqa: E402
from gateway_runtime.http import client_identifier  # noqa: E402
from gateway_runtime.messages import ClientContext  # noqa: E402

EVENT = b"event: message\n"


def rabbit_group(exchange, produce=False, consume=False):
    side = {"enabled": True, "routingKey": "bench", "exchange": {"name": exchange, "type": "topic"}}
    shared = {"producer": side} if produce else {"consumer": {**side, "routingKey": "#"}}
    if produce and consume:
        shared["consumer"] = {**side, "routingKey": "#"}
    return {
        "name": "rabbit",
        "type": "rabbitmq",
        "sharedConfiguration": shared,
        "endpoints": [
            {
                "name": "broker",
                "type": "rabbitmq",
                "inheritConfiguration": True,
                "configuration": {"serverHost": "127.0.0.1", "serverPort": 5672},
            }
        ],
    }


def channel():
    import pika

    connection = pika.BlockingConnection(
        pika.ConnectionParameters("127.0.0.1", 5672, client_properties={"connection_name": "gatehouse-bench"})
    )
    return connection, connection.channel()


def pika_publish(exchange, seconds):
    """Separate process: pika as the gateway's producer uses it; prints messages/s."""
    connection, ch = channel()
    ch.exchange_declare(exchange, "topic")
    ch.confirm_delivery()
    count, stop = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop:
        ch.basic_publish(exchange, "bench", BODY_1K)
        count += 1
    print(json.dumps({"rate": count / (time.perf_counter() - started)}))
    connection.close()


def bench_post(procs, workdir, duration, names):
    exchange = names("post")
    connection, ch = channel()
    ch.exchange_declare(exchange, "topic")
    tap = ch.queue_declare(names("post-tap")).method.queue
    ch.queue_bind(tap, exchange, "#")
    gateway = Gatehouse(procs, workdir)
    gateway.deploy(
        api(
            "post",
            "/post",
            rabbit_group(exchange, produce=True),
            [{"type": "http-post", "configuration": {"requestHeadersToMessage": False}}],
        )
    )
    gateway.deploy(api("noop", "/noop", MOCK_GROUP, [{"type": "http-post"}]))
    noop = wrk_post(gateway.port, "/noop", duration, 32, workdir)
    through = wrk_post(gateway.port, "/post", duration, 32, workdir)
    landed = ch.queue_declare(tap, passive=True).method.message_count
    gateway.stop()
    assert landed >= through["accepted"], f"{through['accepted']} accepted but {landed} in the queue"
    ch.queue_purge(tap)
    probe = procs.start(
        [sys.executable, __file__, "--pika-publish", exchange, "--duration", str(duration)], workdir, stdout=-1
    )
    out, _ = probe.communicate(timeout=duration + 60)
    direct = json.loads(out.decode().strip().splitlines()[-1])["rate"]
    ch.queue_delete(tap)
    ch.exchange_delete(exchange)
    connection.close()
    return {
        "gateway": through["rate"],
        "noop": noop["rate"],
        "pika": direct,
        "landed": landed,
        "accepted": through["accepted"],
        "p99_ms": through["p99_ms"],
    }


def fill(ch, queue, exchange, records):
    ch.exchange_declare(exchange, "topic")
    ch.queue_declare(queue, durable=True, arguments={"x-expires": connector.DEFAULT_EXPIRY_S * 1000})
    ch.queue_bind(queue, exchange, "#")
    for _ in range(records):
        ch.basic_publish(exchange, "bench", BODY_1K)
    while ch.queue_declare(queue, passive=True).method.message_count < records:
        time.sleep(0.05)


def sse_read(port, path, client_id, records):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(sse_request(port, path, client_id))
    _, rest = read_headers(sock)
    seen, first, carry = 0, None, rest
    while seen < records:
        data = carry + recv_some(sock)
        if first is None and EVENT in data:
            first = time.perf_counter()
        seen += data.count(EVENT)
        carry = data[-(len(EVENT) - 1) :]
        seen -= carry.count(EVENT)  # counted again with the next read
    sock.close()
    return seen / (time.perf_counter() - first)


def pika_consume(ch, queue, records):
    got, first = 0, None
    ch.basic_qos(prefetch_count=connector.PREFETCH)
    for method, _, _ in ch.consume(queue):
        first = first or time.perf_counter()
        got += 1
        if got % 256 == 0 or got == records:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got == records:
            break
    rate = got / (time.perf_counter() - first)
    ch.cancel()
    return rate


def bench_consume(procs, workdir, records, names):
    exchange = names("consume")
    connection, ch = channel()
    gateway = Gatehouse(procs, workdir)
    api_id = gateway.deploy(
        api(
            "consume",
            "/consume",
            rabbit_group(exchange, consume=True),
            [{"type": "sse", "configuration": {"heartbeatIntervalInMs": 2000}}],
        )
    )
    client = "bench-" + uuid.uuid4().hex[:8]
    identifier = client_identifier({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GRAVITEE_CLIENT_IDENTIFIER": client})
    queue = connector.queue_name(ClientContext(api_id, identifier, "auto"))
    fill(ch, queue, exchange, records)
    through = sse_read(gateway.port, "/consume", client, records)
    gateway.stop()
    direct_queue = names("consume-direct")
    fill(ch, direct_queue, exchange + "-direct", records)
    direct = pika_consume(ch, direct_queue, records)
    for name in (queue, direct_queue, connector.directory_name(api_id)):
        ch.queue_delete(name)
    for name in (exchange, exchange + "-direct"):
        ch.exchange_delete(name)
    connection.close()
    return {"gateway": through, "pika": direct}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="post,consume")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--pika-publish")
    args = parser.parse_args()
    if args.pika_publish:
        return pika_publish(args.pika_publish, args.duration)
    run_id = uuid.uuid4().hex[:6]

    def names(label):
        return f"gh-bench-{run_id}-{label}"

    procs = Processes()
    results = {"post": [], "consume": []}
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for _ in range(args.runs):
                if "post" in args.only:
                    results["post"].append(bench_post(procs, workdir, args.duration, names))
                    print("post", json.dumps(results["post"][-1]), flush=True)
                if "consume" in args.only:
                    results["consume"].append(bench_consume(procs, workdir, args.records, names))
                    print("consume", json.dumps(results["consume"][-1]), flush=True)
    finally:
        procs.stop_all()
    for kind, runs in results.items():
        if runs:
            gateway, direct = median([r["gateway"] for r in runs]), median([r["pika"] for r in runs])
            print(f"{kind}: gateway {gateway:,.0f}/s, pika {direct:,.0f}/s, ratio {gateway / direct:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
