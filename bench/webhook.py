"""Webhook delivery benchmark: deliveries/s from Kafka to a local receiver, the gateway against a
plain Python loop doing the same work with the same HTTP client.

    python bench/webhook.py [--records 20000] [--concurrency 5] [--runs 1] [--py-spy DIR]

Starts a Tansu broker (memory storage; the tests' `Tansu`), pre-fills a 1-partition topic with
--records records of 1 KB, each with one header `X-Seq: <n>`, and starts a receiver in its own
process: a gevent server on raw sockets answering every POST `200` with an empty body at once,
counting per path the distinct sequence numbers, the duplicates and the calls that came after a
higher sequence number (out of order). Then, for qos `auto` (the entrypoint's
`maxConcurrentConnections` = --concurrency) and `at-least-once` (forced to 1, in order):

  baseline  a separate, gevent-patched process: kafka-python's KafkaConsumer in a group of its own
            (earliest, fetch_max_wait_ms 20, poll(max_records=64), offsets committed after each
            batch for at-least-once and auto-committed for auto, as the gateway's Kafka endpoint
            does) and urllib3 (the gateway's HTTP client before its own): a PoolManager with the Caller's options,
            `urlopen("POST", url, body=value, headers=<the record's headers>, redirect=False)` and
            the answer read. Concurrency 1 is a plain `for` loop over each batch; more runs each
            batch through a gevent Pool's imap (in order, as many at once as the gateway).
  gateway   a real `gatehouse serve` (temp SQLite, free ports, GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true
            so that it may call 127.0.0.1): a webhook API with the Kafka endpoint and a push plan,
            an application and a push subscription whose callbackUrl is the receiver, all made
            through the management API; the subscription's delivery state must stay `active`.

Both sides read the records from Kafka (nothing is held in memory ahead). The rate is counted by
the receiver, the same way for both: deliveries from its first to its last call on that run's path
(so neither the gateway's lease and group join nor the baseline's start-up is counted). The CPU
a delivery is the delivering process's CPU over the same span (read from /proc when the receiver
reports the first call and the last). Every record must arrive; at-least-once also in order.
--py-spy DIR records a py-spy profile (raw, collapsed stacks) of the gateway during each of its
first runs, as DIR/gateway-<qos>.txt.
The exit status is 1 when a check fails, or when the gateway's CPU a delivery is above 0.6 of
the plain loop's (urllib3: the gateway's own client until gateway_runtime/http_client.py).
"""

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    BODY_1K,
    ROOT,
    Gatehouse,
    JsonLines,
    Processes,
    cpu_seconds,
    load_average,
    median,
    raise_nofile,
)
from mqtt import run_queue_seconds  # noqa: E402

# bench/ holds kafka.py: with it on sys.path, `import kafka` would import that, not kafka-python.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT / "tests"))
from support.tansu import Tansu  # noqa: E402
from support.webhook import ALLOW_PRIVATE, PUSH_PLAN, hook, kafka_group, webhook_api  # noqa: E402

QOS = ("auto", "at-least-once")
BATCH = 64  # gateway_runtime.webhook.delivery.BATCH: messages asked of next_batch at a time
FETCH_MAX_WAIT_MS = 500  # gateway_runtime.endpoints.kafka.FETCH_MAX_WAIT_MS
CPU_TARGET = 0.6  # the gateway's CPU a delivery / the plain loop's
SESSION_TIMEOUT_MS, HEARTBEAT_MS = 6000, 1000  # the endpoint's group settings
CONNECT_S, READ_S = 3.0, 10.0  # the entrypoint's default http timeouts
RUN_TIMEOUT_S = 180


# ---------------------------------------------------------------- receiver (its own process)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
SEQ = re.compile(rb"\r\nx-seq: *(\d+)", re.IGNORECASE)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def receiver(records):
    """Prints {"port"}, then per path {"path", "first"} at its first call, {"path", "count"} each
    second while calls come, and {"path", "done", ...} once every one of `records` sequence numbers
    has come."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent.server import StreamServer

    paths = {}

    def emit(**fields):
        print(json.dumps(fields), flush=True)

    def arrived(path, seq):
        st = paths.get(path)
        if st is None:
            st = paths[path] = {
                "seen": bytearray(records),
                "count": 0,
                "duplicates": 0,
                "disorder": 0,
                "top": -1,
                "first": time.perf_counter(),
                "reported": 0,
                "done": False,
            }
            emit(path=path, first=True)
        if st["seen"][seq]:
            st["duplicates"] += 1
        else:
            st["seen"][seq] = 1
            st["count"] += 1
        if seq < st["top"]:
            st["disorder"] += 1
        st["top"] = max(st["top"], seq)
        if st["count"] == records and not st["done"]:
            st["done"] = True
            emit(
                path=path,
                done=True,
                count=st["count"],
                duplicates=st["duplicates"],
                disorder=st["disorder"],
                seconds=time.perf_counter() - st["first"],
            )

    def handle(sock, address):
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            answers = 0
            while True:  # every complete request in the buffer, answered in one send
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end]
                length = CONTENT_LENGTH.search(head)
                stop = end + 4 + (int(length.group(1)) if length else 0)
                if len(buf) < stop:
                    break
                path = head[head.index(b" ") + 1 : head.index(b" HTTP/")].decode()
                arrived(path, int(SEQ.search(head).group(1)))
                buf = buf[stop:]
                answers += 1
            if answers:
                sock.sendall(OK * answers)

    def progress():
        while True:
            gevent.sleep(1)
            for path, st in paths.items():
                if not st["done"] and st["count"] != st["reported"]:
                    st["reported"] = st["count"]
                    emit(path=path, count=st["count"])

    server = StreamServer(("127.0.0.1", 0), handle, backlog=128)
    server.start()
    emit(port=server.server_port)
    gevent.spawn(progress)
    server.serve_forever()


# ---------------------------------------------------------------- baseline (its own process)
def baseline(bootstrap, topic, url, concurrency, qos, records):
    """kafka-python + urllib3 as the gateway uses them, without the gateway; delivers `records`
    records and exits."""
    from gevent import monkey

    monkey.patch_all()
    import urllib3
    from gevent.pool import Pool
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=qos == "auto",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    http = urllib3.PoolManager(
        num_pools=4,
        maxsize=concurrency,
        block=True,
        retries=False,
        timeout=urllib3.Timeout(connect=CONNECT_S, read=READ_S),
    )

    def post(record):
        headers = {name: (raw or b"").decode("utf-8", "replace") for name, raw in record.headers}
        response = http.urlopen("POST", url, body=record.value, headers=headers, redirect=False)
        response.data  # noqa: B018 - read as the gateway reads it (its snippet)
        return response.status

    pool = Pool(concurrency)
    delivered = 0
    while delivered < records:
        for items in consumer.poll(timeout_ms=250, max_records=BATCH).values():
            statuses = [post(r) for r in items] if concurrency == 1 else list(pool.imap(post, items))
            assert set(statuses) == {200}, statuses
            delivered += len(items)
            if qos == "at-least-once":
                consumer.commit()
    consumer.close()
    return 0


# ---------------------------------------------------------------- the runs
def prefill(bootstrap, topic, records):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 << 10)
    start = time.perf_counter()
    for seq in range(records):
        producer.send(topic, BODY_1K, headers=[("X-Seq", b"%d" % seq)])
    producer.flush()
    producer.close()
    return records / (time.perf_counter() - start)


def wait_delivered(receiver_lines, path, pid, records, label):
    """Follow the receiver's reports on `path` until every record came; the rate, and between the
    first call and the last: the CPU of `pid` (the delivering process) a delivery, the share of
    the time it waited, runnable, for a CPU (other work on the machine), and the receiver's share
    of a core (near 100 % it would be what limits the rate)."""
    cpu0 = receiver_cpu0 = queue0 = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        line = receiver_lines.line(max(1.0, deadline - time.monotonic()))
        if line.get("path") != path:
            continue
        if line.get("first"):
            cpu0, receiver_cpu0 = cpu_seconds(pid), cpu_seconds(receiver_lines.proc.pid)
            queue0 = run_queue_seconds(pid)
        elif line.get("done"):
            cpu = cpu_seconds(pid) - cpu0
            receiver_cpu = cpu_seconds(receiver_lines.proc.pid) - receiver_cpu0
            line.update(
                rate=records / line["seconds"],
                cpu_us=cpu / records * 1e6,
                cpu_share=cpu / line["seconds"],
                receiver_share=receiver_cpu / line["seconds"],
                queued=(run_queue_seconds(pid) - queue0) / line["seconds"],
            )
            print(
                f"  {label:<36} {line['rate']:>7,.0f} deliveries/s ({line['seconds']:.2f} s, "
                f"{line['cpu_us']:.0f} µs CPU a delivery, {line['cpu_share']:.0%} of a core, waited for a CPU "
                f"{line['queued']:.0%} of the time; receiver "
                f"{line['receiver_share']:.0%}; duplicates {line['duplicates']}, out of order {line['disorder']})",
                flush=True,
            )
            return line
        else:
            print(f"    {label}: {line['count']:,}/{records:,}", flush=True)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: not every record came within {RUN_TIMEOUT_S} s")


def run_baseline(procs, workdir, broker, topic, receiver_lines, url, qos, args, label):
    concurrency = 1 if qos == "at-least-once" else args.concurrency
    proc = procs.start(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--baseline",
            broker.bootstrap,
            topic,
            url,
            str(concurrency),
            qos,
            str(args.records),
        ],
        workdir,
    )
    result = wait_delivered(receiver_lines, urlpath(url), proc.pid, args.records, label)
    if proc.wait(30) != 0:
        raise RuntimeError(f"the baseline failed: {proc.log_path.read_text()[-2000:]}")
    return result


def run_gateway(procs, workdir, gateway, receiver_lines, broker, topic, url, qos, args, label, py_spy=None):
    api_id = gateway.deploy(
        webhook_api(
            [kafka_group(broker.bootstrap, topic)],
            qos=qos,
            name=f"Bench {qos}",
            configuration={"http": {"maxConcurrentConnections": args.concurrency}},
        )
    )
    application = gateway.http.post(
        f"{gateway.portal}/applications",
        timeout=30,
        json={"name": f"Bench {uuid.uuid4().hex[:6]}", "description": "bench"},
    )
    assert application.status_code == 201, application.text
    subscription = gateway.http.post(
        f"{gateway.portal}/apis/{api_id}/subscriptions",
        timeout=30,
        json={"applicationId": application.json()["id"], "planId": PUSH_PLAN["id"], "consumerConfiguration": hook(url)},
    )
    assert subscription.status_code == 201, subscription.text
    spy = None
    if py_spy:
        spy = procs.start(
            ["py-spy", "record", "-r", "100", "-f", "raw", "-o", py_spy, "--pid", str(gateway.pid)], workdir
        )
    result = wait_delivered(receiver_lines, urlpath(url), gateway.pid, args.records, label)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted (SIGTERM would lose it)
        spy.wait(30)
    state = gateway.http.get(
        f"{gateway.portal}/apis/{api_id}/subscriptions/{subscription.json()['id']}", timeout=30
    ).json()["gatehouse"]["webhook"]
    result["state"] = state["state"]
    response = gateway.http.post(f"{gateway.portal}/apis/{api_id}/_stop", timeout=30)  # its consumer stops polling
    assert response.status_code == 204, response.text
    return result


def urlpath(url):
    return "/" + url.split("/", 3)[3]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="1 KB records delivered per run (default 20,000)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=5,
        help="maxConcurrentConnections for qos auto, and the baseline's (default 5)",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat each pair of runs, report medians")
    parser.add_argument("--py-spy", metavar="DIR", help="record a py-spy profile of the gateway in its first runs")
    parser.add_argument("--receiver", type=int, metavar="RECORDS", help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline", nargs=6, metavar=("BOOTSTRAP", "TOPIC", "URL", "CONCURRENCY", "QOS", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.receiver:
        return receiver(args.receiver)
    if args.baseline:
        bootstrap, topic, url, concurrency, qos, records = args.baseline
        return baseline(bootstrap, topic, url, int(concurrency), qos, int(records))

    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    nofile = raise_nofile()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, RLIMIT_NOFILE {nofile}, "
        f"load average {load_average()}",
        flush=True,
    )
    procs = Processes()
    results = {(side, qos): [] for side in ("baseline", "gateway") for qos in QOS}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-webhook-") as tmp:
        workdir = Path(tmp)
        broker = Tansu(workdir)
        try:
            broker.start()
            topic = f"bench-webhook-{uuid.uuid4().hex[:8]}"
            rate = prefill(broker.bootstrap, topic, args.records)
            print(f"{args.records:,} records of 1 KB pre-filled at {rate:,.0f}/s in a 1-partition topic", flush=True)
            receiver_lines = JsonLines(
                procs,
                workdir,
                [sys.executable, str(Path(__file__).resolve()), "--receiver", str(args.records)],
                "the receiver",
            )
            base_url = f"http://127.0.0.1:{receiver_lines.line(30)['port']}"
            gateway = Gatehouse(procs, workdir, env=ALLOW_PRIVATE)
            for run in range(args.runs):
                for qos in QOS:
                    concurrency = 1 if qos == "at-least-once" else args.concurrency
                    print(f"\nrun {run + 1}/{args.runs}, qos {qos}, {concurrency} at a time", flush=True)
                    results["baseline", qos].append(
                        run_baseline(
                            procs,
                            workdir,
                            broker,
                            topic,
                            receiver_lines,
                            f"{base_url}/py-{qos}-{run}",
                            qos,
                            args,
                            "plain loop (kafka-python + urllib3)",
                        )
                    )
                    spy = str(Path(args.py_spy) / f"gateway-{qos}.txt") if args.py_spy and run == 0 else None
                    results["gateway", qos].append(
                        run_gateway(
                            procs,
                            workdir,
                            gateway,
                            receiver_lines,
                            broker,
                            topic,
                            f"{base_url}/gw-{qos}-{run}",
                            qos,
                            args,
                            "gateway",
                            spy,
                        )
                    )
            gateway.stop()
        finally:
            procs.stop_all()
            broker.stop()

    print(
        f"\nsummary (load average {load_average()}), {args.records:,} records of 1 KB from Kafka"
        + (f", medians of {args.runs} runs" if args.runs > 1 else "")
    )
    print(f"  {'':<46}{'gateway':>10}{'plain loop':>12}{'ratio':>8}   CPU µs a delivery: gateway / plain loop")
    ok = checked = True
    for qos in QOS:
        gw, py = results["gateway", qos], results["baseline", qos]
        for r in gw + py:
            checked &= r["count"] == args.records and (qos != "at-least-once" or r["disorder"] == 0)
        checked &= all(r["state"] == "active" for r in gw)
        rate_gw, rate_py = median([r["rate"] for r in gw]), median([r["rate"] for r in py])
        concurrency = 1 if qos == "at-least-once" else args.concurrency
        cpu_gw, cpu_py = median([r["cpu_us"] for r in gw]), median([r["cpu_us"] for r in py])
        met = cpu_gw / cpu_py <= CPU_TARGET
        ok &= met
        print(
            f"  {f'qos {qos} ({concurrency} at a time), deliveries/s':<46}{rate_gw:>10,.0f}{rate_py:>12,.0f}"
            f"{rate_gw / rate_py:>8.2f}   {cpu_gw:.0f} / {cpu_py:.0f} = {cpu_gw / cpu_py:.2f} "
            f"(target <= {CPU_TARGET}: {'met' if met else 'missed'})"
        )
    print("  every record delivered, at-least-once in order, subscriptions active: " + ("yes" if checked else "NO"))
    return 0 if ok and checked else 1


if __name__ == "__main__":
    sys.exit(main())
