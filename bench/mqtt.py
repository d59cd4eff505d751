"""MQTT 5 endpoint benchmarks: the gateway against paho-mqtt publishing and subscribing directly.

    python bench/mqtt.py [--only post,sse,fanout] [--duration 8] [--connections 32] [--window 500]
                         [--clients 1000] [--rates 10,25,50,100,200,400,800] [--fanout-duration 5]
                         [--broker 127.0.0.1:1883] [--py-spy DIR]

Uses the machine's Mosquitto (shared: every topic is bench/<uuid>/...) and, per benchmark, a fresh
`gatehouse serve` (temp SQLite, free ports on 127.0.0.1) with the APIs it needs, imported and
started through the management API; every process started here is stopped on exit. Each gateway
figure is measured in the same run as paho-mqtt doing the same thing without the gateway:

  post    http-post -> MQTT at QoS 0 (entrypoint qos none) and QoS 1 (qos auto: the 202 waits for
          the PUBACK): `wrk -t2 -c<connections>` POSTing a 1 KB body for --duration seconds, against
          paho alone (a separate process, one client, non-threaded: publish() writes at once,
          loop() reads the PUBACKs) keeping <connections> messages outstanding, as the gateway has
          one per wrk connection. Both go through ONE MQTT connection, so both get Mosquitto's
          receive maximum (max_inflight_messages, 20) and paho's own in-flight limit (20): the
          other 12 wait in paho's queue in both cases. A `mosquitto_sub` (C, on the same topic,
          same QoS) counts what reached a subscriber: at QoS 1 it must be at least every 202 /
          every PUBACK.
  sse     paho publisher (a separate process, 1 KB messages) -> one raw-socket SSE client through
          the gateway, at qos none (the gateway's fan-out client, QoS 0) and qos auto (a shared
          subscription at QoS 1, acknowledged when handed over), against the same publisher ->
          a paho subscriber (same topic filter and QoS as the gateway's) in this process.
          Mosquitto holds at most max_queued_messages (1000) QoS 1 messages per subscriber and
          drops the rest, and MQTT has no back-pressure from a subscriber to a publisher; so the
          publisher keeps at most --window messages (500) ahead of what the consumer has read (a
          counter the consumer writes in a shared mmap), the same for both. The clock runs from
          the first message to an END message; every message must arrive.
  fanout  qos none: --clients SSE clients on one topic (bench/common.py's gevent client, one
          greenlet and raw socket per client, in a separate process), 100-byte messages
          published by paho at QoS 0 at each of --rates msg/s in turn for --fanout-duration s,
          until a rate is not sustained (a message missed, out of order, a stream error, or a
          lag over 2 s). Reports deliveries/s in total and per client, and the time for a
          message to reach all clients (publish -> the last client read it), p50 / p99.

--py-spy DIR records a py-spy profile (raw, collapsed stacks) of the gateway during each gateway
run into DIR, at some cost to the figures. Every process gets the hard RLIMIT_NOFILE as its soft
limit. The exit status is 1 when a check fails (a message missing) or when http-post -> MQTT QoS 0
is below 0.5 of paho alone.
"""

import argparse
import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BODY_1K,
    FanoutClient,
    Gatehouse,
    Processes,
    api,
    cpu_seconds,
    load_average,
    quickack,
    raise_nofile,
    read_headers,
    rss_mib,
    sse_request,
    warm_up_posts,
    wrk_post,
)

EVENT = b"event: message\n"
END = b"END"
MOSQUITTO_PID = Path("/run/mosquitto/mosquitto.pid")


# ---------------------------------------------------------------- broker, APIs, helpers
def mqtt_group(broker, producer_topic=None, consumer_topic=None):
    shared = {}
    if producer_topic:
        shared["producer"] = {"enabled": True, "topic": producer_topic}
    if consumer_topic:
        shared["consumer"] = {"enabled": True, "topic": consumer_topic}
    return {
        "name": "mqtt",
        "type": "mqtt5",
        "sharedConfiguration": shared,
        "endpoints": [
            {
                "name": "broker",
                "type": "mqtt5",
                "inheritConfiguration": True,
                "configuration": {"serverHost": broker[0], "serverPort": str(broker[1])},
            }
        ],
    }


QOS0_POST_TARGET = 0.5  # http-post -> MQTT QoS 0 / paho alone


def new_topic(name):
    return f"bench/{uuid.uuid4().hex[:12]}/{name}"


def paho_client(name):
    import paho.mqtt.client as mqtt

    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )


def connect(client, broker):
    client.connect(broker[0], broker[1], 30)
    deadline = time.monotonic() + 10
    while not client.is_connected():
        client.loop(0.1)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no CONNACK from {broker[0]}:{broker[1]}")


def mosquitto_cpu():
    """CPU seconds of the machine's Mosquitto (shared: others' traffic counts too), when readable."""
    try:
        return cpu_seconds(int(MOSQUITTO_PID.read_text()))
    except (OSError, ValueError):
        return None


def run_queue_seconds(pid):
    """Seconds a process's threads waited, runnable, for a CPU (/proc/<pid>/task/*/schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError):
            pass
    return total


def machine_jiffies():
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


class Usage:
    """CPU used from now until stop(), as shares of one core: a process's (`pid`), Mosquitto's, and
    how busy the whole machine was (of all its cores: others share it)."""

    def __init__(self, pid=None):
        self.pid = pid
        self.start = time.perf_counter()
        self.cpu, self.mosquitto, self.machine = cpu_seconds(pid) if pid else None, mosquitto_cpu(), machine_jiffies()
        self.waited = run_queue_seconds(pid) if pid else None

    def stop(self):
        elapsed = time.perf_counter() - self.start
        busy, total = machine_jiffies()
        out = {
            "machine": (busy - self.machine[0]) / max(1, total - self.machine[1]),
            "mosquitto": (mosquitto_cpu() - self.mosquitto) / elapsed if self.mosquitto is not None else None,
        }
        if self.pid:
            out["cpu"] = (cpu_seconds(self.pid) - self.cpu) / elapsed
            out["waited"] = (run_queue_seconds(self.pid) - self.waited) / elapsed
        return out


def usage_text(r, who):
    mosquitto = f", Mosquitto {r['mosquitto']:.0%}" if r.get("mosquitto") is not None else ""
    waited = f" (waited for a CPU {r['waited']:.0%} of the time)" if r.get("waited") is not None else ""
    return f"CPU {who} {r['cpu']:.0%} = {r['us']:.0f} us a message{waited}{mosquitto}, machine {r['machine']:.0%} busy"


class Progress:
    """An 8-byte counter in a file that two processes map: how many messages the consumer has
    read, for the publisher's window."""

    def __init__(self, path):
        if not path.exists():
            path.write_bytes(bytes(8))
        self.file = open(path, "r+b")
        self.map = mmap.mmap(self.file.fileno(), 8)

    @property
    def value(self):
        return struct.unpack_from("q", self.map)[0]

    @value.setter
    def value(self, n):
        struct.pack_into("q", self.map, 0, n)


class Counter:
    """`mosquitto_sub` printing one byte a message (unbuffered): what reached a subscriber, counted
    by a C client so that checking costs the 2 cores little."""

    def __init__(self, procs, workdir, broker, topic, qos):
        self.proc = procs.start(
            [
                "stdbuf",
                "-o0",
                "mosquitto_sub",
                "-h",
                broker[0],
                "-p",
                str(broker[1]),
                "-V",
                "mqttv5",
                "-q",
                str(qos),
                "-t",
                topic,
                "-F",
                "x",
                "-N",
            ],
            workdir,
            stdout=subprocess.PIPE,
        )
        self.count = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while data := os.read(fd, 65536):
            self.count += len(data)

    def settle(self, quiet=0.5, timeout=30):
        """The count once nothing more came for `quiet` seconds (what was in flight has arrived)."""
        deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            if self.count != last:
                last, since = self.count, time.monotonic()
            elif time.monotonic() - since > quiet:
                break
            time.sleep(0.05)
        return self.count

    def stop(self, procs):
        procs.stop(self.proc)


def subscribed(counter, publish_one):
    """Publish until the counter has one: mosquitto_sub says nothing when its SUBACK comes."""
    deadline = time.monotonic() + 10
    while counter.count == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("mosquitto_sub received nothing")
        publish_one()
        time.sleep(0.1)


class PySpy:
    """py-spy recording the gateway during one run, when --py-spy is given."""

    def __init__(self, procs, workdir, args, pid, name, seconds):
        self.proc = None
        if args.py_spy:
            out = Path(args.py_spy) / f"mqtt-{name}.txt"
            self.proc = procs.start(
                [
                    "py-spy",
                    "record",
                    "-r",
                    "100",
                    "-f",
                    "raw",
                    "-d",
                    str(max(1, int(seconds))),
                    "-o",
                    str(out),
                    "--pid",
                    str(pid),
                ],
                workdir,
            )

    def wait(self, procs):
        if self.proc is not None:
            procs.stop(self.proc, timeout=30)


# ---------------------------------------------------------------- paho alone (separate process)
def paho_publish(broker, topic, qos, seconds, window, progress_path, payload):
    """One paho client, non-threaded (publish() writes at once; loop() reads the PUBACKs), `qos`,
    for `seconds`, with at most `window` messages outstanding: not yet written (QoS 0) or
    acknowledged (QoS 1); with `progress_path`, not yet read by the consumer that counts there,
    and then an END message. Prints the rate and CPU as JSON."""
    client = paho_client("pub")
    done = 0

    def on_publish(client, userdata, mid, reason, properties):
        nonlocal done
        done += 1

    client.on_publish = on_publish
    connect(client, broker)
    progress = Progress(Path(progress_path)) if progress_path else None
    sent = 0
    # How long loop() may wait for something to read: without a consumer to wait for, QoS 0 has
    # nothing to read and QoS 1 waits for its PUBACKs.
    wait = 0.002 if progress else 0 if qos == 0 else 1.0
    cpu0, start = time.process_time(), time.perf_counter()
    stop = start + seconds
    while time.perf_counter() < stop:
        for _ in range(window - sent + (progress.value if progress else done)):
            client.publish(topic, payload, qos)
            sent += 1
        client.loop(wait)
    if progress:
        client.publish(topic, END, qos)
        sent += 1
    while done < sent:
        client.loop(0.01)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    client.disconnect()
    print(json.dumps({"sent": sent, "rate": sent / elapsed, "cpu": cpu / elapsed, "us": cpu / sent * 1e6}), flush=True)
    return 0


def start_paho_publisher(procs, workdir, broker, topic, qos, seconds, window, progress=None, payload=BODY_1K):
    return procs.start(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--paho-publish",
            json.dumps([list(broker), topic, qos, seconds, window, progress and str(progress), payload.decode()]),
        ],
        workdir,
        stdout=subprocess.PIPE,
    )


def publisher_result(procs, proc, timeout):
    out, _ = proc.communicate(timeout=timeout)
    procs.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"the paho publisher failed: {proc.log_path.read_text()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- 1. http-post -> MQTT
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


def wrk_gateway(procs, workdir, gateway, path, args, name):
    print(f"  gateway: wrk -t2 -c{args.connections} -d{args.duration:g}s ...", flush=True)
    usage = Usage(gateway.pid)
    spy = PySpy(procs, workdir, args, gateway.pid, name, args.duration - 1)
    result = wrk_post(gateway.port, path, args.duration, args.connections, workdir)
    spy.wait(procs)
    result.update(usage.stop())
    result["us"] = result["cpu"] / result["rate"] * 1e6
    return result


def bench_post(procs, workdir, broker, args):
    gateway = Gatehouse(procs, workdir)
    results = {}
    try:
        # The gateway's own cost of a POST, to tell it from the MQTT part.
        gateway.deploy(api("Post mock", "/post-mock", MOCK_GROUP, [{"type": "http-post"}]))
        warm_up_posts(gateway.port, "/post-mock")
        print(f"\n1. http-post, 1 KB bodies, {args.connections} outstanding, {args.duration:g} s a run", flush=True)
        mock = wrk_gateway(procs, workdir, gateway, "/post-mock", args, "post-mock")
        print(
            f"  Mock (no-op) {mock['rate']:>8,.0f} msgs/s  latency p50 {mock['p50_ms']:.1f} ms p99 "
            f"{mock['p99_ms']:.1f} ms  {usage_text(mock, 'gateway')}",
            flush=True,
        )
        results["mock"] = mock
        for qos, entrypoint_qos in ((0, "none"), (1, "auto")):
            topic = new_topic(f"post-q{qos}")
            path = f"/post-q{qos}"
            gateway.deploy(
                api(
                    f"Post QoS {qos}",
                    path,
                    mqtt_group(broker, producer_topic=topic),
                    [{"type": "http-post", "qos": entrypoint_qos}],
                )
            )
            print(
                f"\n1. http-post -> MQTT QoS {qos} (entrypoint qos {entrypoint_qos}); mosquitto_sub counts at "
                f"QoS {qos}",
                flush=True,
            )
            counter = Counter(procs, workdir, broker, topic, qos)
            try:
                subscribed(counter, lambda: warm_up_posts(gateway.port, path, 1))  # noqa: B023
                warm_up_posts(gateway.port, path)
                base = counter.settle()
                gw = wrk_gateway(procs, workdir, gateway, path, args, f"post-q{qos}")
                arrived = counter.settle() - base
                gw["ok"] = gw["other"] == 0 and gw["errors"] == 0 and (qos == 0 or arrived >= gw["accepted"])
                print(
                    f"  gateway  {gw['rate']:>8,.0f} msgs/s  latency p50 {gw['p50_ms']:.1f} ms p99 "
                    f"{gw['p99_ms']:.1f} ms  {usage_text(gw, 'gateway')}; mosquitto_sub got {arrived:,} for "
                    f"{gw['accepted']:,} x 202 (non-202 {gw['other']}, socket errors {gw['errors']})"
                    f"{'' if gw['ok'] else '  CHECK FAILED'}",
                    flush=True,
                )

                print(f"  paho alone: {args.connections} outstanding, {args.duration:g} s ...", flush=True)
                base, usage = counter.count, Usage()
                proc = start_paho_publisher(procs, workdir, broker, topic, qos, args.duration, args.connections)
                paho = publisher_result(procs, proc, args.duration + 60)
                paho.update({k: v for k, v in usage.stop().items() if k != "cpu"})
                arrived = counter.settle() - base
                # Not a failure of what is measured: the counting subscriber, not paho, falls behind.
                paho["ok"] = True
                short = (
                    ""
                    if qos == 0 or arrived >= paho["sent"]
                    else (
                        f" (short by {paho['sent'] - arrived:,}: at this rate mosquitto_sub reads slower than paho "
                        "publishes, and Mosquitto drops a QoS 1 subscriber's messages past max_queued_messages)"
                    )
                )
                print(
                    f"  paho     {paho['rate']:>8,.0f} msgs/s  {usage_text(paho, 'paho')}; mosquitto_sub got "
                    f"{arrived:,} of {paho['sent']:,}{short}",
                    flush=True,
                )
            finally:
                counter.stop(procs)
            results[qos] = {
                "gateway": gw["rate"],
                "paho": paho["rate"],
                "ratio": gw["rate"] / paho["rate"],
                "ok": gw["ok"] and paho["ok"],
                "gateway_us": gw["us"],
                "paho_us": paho["us"],
            }
    finally:
        gateway.stop()
    return results


# ---------------------------------------------------------------- 2. SSE delivery
def sse_read(port, path, progress, pid):
    """ONE SSE client until the END event; events/s from the first event, gateway CPU meanwhile.
    Opens the stream and returns a function to call once the publisher runs (the stream is
    subscribed at the `retry:` line)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.sendall(sse_request(port, path, f"bench-{uuid.uuid4().hex[:12]}"))
    _, buf = read_headers(sock)
    while b"retry:" not in buf:
        buf += sock.recv(65536)
    end_marker = b"data: " + END + b"\n"
    keep = max(len(EVENT), len(end_marker)) - 1  # what a read may cut in two

    def read():
        count, tail, start = 0, b"", None
        try:
            while True:
                data = sock.recv(1 << 18)
                if not data:
                    raise ConnectionError("the stream ended")
                quickack(sock)
                if start is None and EVENT in data:  # not at a heartbeat before the first message
                    start, usage = time.perf_counter(), Usage(pid)
                window = tail + data
                count += (tail + data[:keep]).count(EVENT) + data.count(EVENT)
                progress.value = count
                if b"event: error" in window:
                    raise AssertionError(window[window.index(b"event: error") :][:300])
                if end_marker in window:
                    break
                tail = window[-keep:]
            elapsed = time.perf_counter() - start
            count -= 1  # the END event
            return {"count": count, "rate": count / elapsed, **usage.stop()}
        finally:
            sock.close()

    return read


def paho_read(broker, topic, qos, progress):
    """A paho subscriber (the gateway's topic filter and QoS; auto-acknowledged) until END."""
    client = paho_client("sub")
    state = {"count": 0, "start": None, "end": False}

    def on_message(client, userdata, msg):
        if state["start"] is None:
            state["start"] = time.perf_counter()
        if msg.payload == END:
            state["end"] = time.perf_counter()
            return
        state["count"] += 1
        progress.value = state["count"]

    def on_subscribe(client, userdata, mid, reasons, properties):
        state["subscribed"] = True

    client.on_message, client.on_subscribe = on_message, on_subscribe
    connect(client, broker)
    client.subscribe(f"$share/bench-{uuid.uuid4().hex[:8]}/{topic}" if qos else topic, qos)
    while "subscribed" not in state:
        client.loop(0.1)

    def read():
        usage = Usage(os.getpid())
        while not state["end"]:
            client.loop(0.5)
        client.disconnect()
        elapsed = state["end"] - state["start"]
        return {"count": state["count"], "rate": state["count"] / elapsed, **usage.stop()}

    return read


def bench_sse(procs, workdir, broker, args):
    gateway = Gatehouse(procs, workdir)
    results = {}
    try:
        for qos, entrypoint_qos in ((0, "none"), (1, "auto")):
            topic = new_topic(f"sse-q{qos}")
            path = f"/sse-q{qos}"
            gateway.deploy(
                api(
                    f"SSE QoS {qos}",
                    path,
                    mqtt_group(broker, consumer_topic=topic),
                    [{"type": "sse", "qos": entrypoint_qos}],
                )
            )
            print(
                f"\n2. SSE delivery, qos {entrypoint_qos} (MQTT QoS {qos}): a paho publisher, 1 KB messages, "
                f"{args.duration:g} s, at most {args.window} messages ahead of the consumer",
                flush=True,
            )
            row = {}
            for side in ("gateway", "paho"):
                progress_path = workdir / f"progress-{uuid.uuid4().hex[:8]}"
                progress = Progress(progress_path)
                if side == "gateway":
                    read = sse_read(gateway.port, path, progress, gateway.pid)
                    spy = PySpy(procs, workdir, args, gateway.pid, f"sse-q{qos}", args.duration - 1)
                else:
                    read = paho_read(broker, topic, qos, progress)
                    spy = None
                print(f"  {side}: publishing for {args.duration:g} s ...", flush=True)
                publisher = start_paho_publisher(
                    procs, workdir, broker, topic, qos, args.duration, args.window, progress_path
                )
                got = read()
                sent = publisher_result(procs, publisher, 60)["sent"] - 1
                if spy:
                    spy.wait(procs)
                got["ok"] = got["count"] == sent
                got["us"] = got["cpu"] / got["rate"] * 1e6
                print(
                    f"  {side:<8} {got['rate']:>8,.0f} events/s  {got['count']:,} of {sent:,} received; "
                    f"{usage_text(got, 'gateway' if side == 'gateway' else 'subscriber')}"
                    f"{'' if got['ok'] else '  CHECK FAILED'}",
                    flush=True,
                )
                row[side] = got
            results[qos] = {
                "gateway": row["gateway"]["rate"],
                "paho": row["paho"]["rate"],
                "ratio": row["gateway"]["rate"] / row["paho"]["rate"],
                "ok": row["gateway"]["ok"] and row["paho"]["ok"],
                "gateway_us": row["gateway"]["us"],
                "paho_us": row["paho"]["us"],
            }
    finally:
        gateway.stop()
    return results


# ---------------------------------------------------------------- 3. fan-out, qos none
def bench_fanout(procs, workdir, broker, args):
    topic = new_topic("fanout")
    gateway = Gatehouse(procs, workdir)
    results = []
    print(
        f"\n3. Fan-out, qos none: {args.clients:,} SSE clients on one topic, 100-byte messages published by paho "
        f"at QoS 0, {args.fanout_duration:g} s per rate",
        flush=True,
    )
    try:
        gateway.deploy(
            api("Fanout", "/fanout", mqtt_group(broker, consumer_topic=topic), [{"type": "sse", "qos": "none"}])
        )
        client, rss_before, rss_idle = FanoutClient.connected(procs, workdir, gateway, "/fanout", args.clients)
        publisher = paho_client("fanout")
        connect(publisher, broker)
        pad = b"p" * 100
        for number, rate in enumerate(args.rates, 1):
            count = int(rate * args.fanout_duration)
            cpu_gw0, cpu_cl0, mq0 = cpu_seconds(gateway.pid), cpu_seconds(client.proc.pid), mosquitto_cpu()
            spy = PySpy(procs, workdir, args, gateway.pid, f"fanout-{rate}", args.fanout_duration - 1)
            rss_max, start = 0.0, time.perf_counter()
            next_rss = start
            for seq in range(count):
                due = start + seq / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                publisher.publish(topic, (b"%d %d %.6f " % (number, seq, time.time()) + pad)[:100], 0)
                if now >= next_rss:
                    publisher.loop(0)  # keep-alive
                    rss_max, next_rss = max(rss_max, rss_mib(gateway.pid)), now + 0.5
            publisher.publish(topic, b"%d END %d %.6f" % (number, count, time.time()), 0)
            spy.wait(procs)
            stats = client.line(args.fanout_duration + 40)
            phase = time.perf_counter() - start  # until the last client had the END message
            cpu_gw = (cpu_seconds(gateway.pid) - cpu_gw0) / phase
            cpu_cl = (cpu_seconds(client.proc.pid) - cpu_cl0) / phase
            mq = (mosquitto_cpu() - mq0) / phase if mq0 is not None else float("nan")
            rss_max = max(rss_max, rss_mib(gateway.pid))
            expected = count * args.clients
            span = stats["last_rx"] - stats["first_ts"] if stats["first_ts"] else float("nan")
            delivered = stats["deliveries"] / span
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
                    "delivered": delivered,
                    "per_client": delivered / args.clients,
                    "ok": ok,
                    "rss": rss_max,
                    **stats,
                }
            )
            print(
                f"  {rate:>5} msg/s: {stats['deliveries']:,}/{expected:,} delivered in {span:.2f} s = "
                f"{delivered:>9,.0f}/s ({delivered / args.clients:,.0f}/s a client), missing {stats['missing']}, "
                f"out of order {stats['disorder']}, errors {stats['errors']}; to reach all clients p50 "
                f"{stats['reach_p50'] * 1000:.0f} ms p99 {stats['reach_p99'] * 1000:.0f} ms max "
                f"{stats['reach_max'] * 1000:.0f} ms; CPU gateway {cpu_gw:4.0%} client {cpu_cl:4.0%} "
                f"Mosquitto {mq:4.0%}; VmRSS max {rss_max:.0f} MiB  {'(sustained)' if ok else '(NOT sustained)'}",
                flush=True,
            )
            if not ok:
                break
        publisher.disconnect()
    finally:
        gateway.stop()
    sustained = [r for r in results if r["ok"]]
    return {
        "best": sustained[-1] if sustained else None,
        "results": results,
        "rss_before": rss_before,
        "rss_idle": rss_idle,
    }


# ---------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="post,sse,fanout", help="comma-separated: post, sse, fanout (default: all)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per post and sse run (default 8)")
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        help="wrk keep-alive connections, and paho's outstanding messages (default 32)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=500,
        help="sse: messages the publisher may be ahead of the consumer (default 500; Mosquitto "
        "drops QoS 1 messages beyond max_queued_messages, 1000, per subscriber)",
    )
    parser.add_argument("--clients", type=int, default=1000, help="fan-out SSE clients (default 1000)")
    parser.add_argument(
        "--rates",
        default="10,25,50,100,200,400,800",
        help="fan-out msg/s, tried in turn until one is not sustained (default %(default)s)",
    )
    parser.add_argument("--fanout-duration", type=float, default=5.0, help="seconds per fan-out rate (default 5)")
    parser.add_argument("--broker", default="127.0.0.1:1883", help="the Mosquitto to use (default %(default)s)")
    parser.add_argument("--py-spy", metavar="DIR", help="record a py-spy profile of the gateway in each gateway run")
    parser.add_argument("--paho-publish", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paho_publish:
        broker, topic, qos, seconds, window, progress, payload = json.loads(args.paho_publish)
        return paho_publish(tuple(broker), topic, qos, seconds, window, progress, payload.encode())
    host, _, port = args.broker.rpartition(":")
    broker = (host, int(port))
    args.rates = [int(r) for r in args.rates.split(",")]
    only = set(args.only.split(","))
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)

    nofile = raise_nofile()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, RLIMIT_NOFILE {nofile}, "
        f"load average {load_average()}, broker {args.broker}",
        flush=True,
    )
    procs = Processes()
    summary = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-mqtt-") as tmp:
        workdir = Path(tmp)
        try:
            if "post" in only:
                summary["post"] = bench_post(procs, workdir, broker, args)
            if "sse" in only:
                summary["sse"] = bench_sse(procs, workdir, broker, args)
            if "fanout" in only:
                summary["fanout"] = bench_fanout(procs, workdir, broker, args)
        finally:
            procs.stop_all()

    print(f"\nsummary (load average {load_average()})")
    print(f"  {'':<42} {'gateway':>9} {'paho alone':>11} {'gateway/paho':>13}   CPU us a message: gateway / paho")
    ok = True
    if "post" in summary:
        mock = summary["post"]["mock"]
        print(f"  {'http-post -> Mock (no-op), msgs/s':<42} {mock['rate']:>9,.0f} {'':>11} {'':>13}   {mock['us']:.0f}")
    rows = [(f"http-post -> MQTT QoS {q}, msgs/s", summary["post"][q]) for q in (0, 1) if "post" in summary]
    rows += [
        (f"SSE delivery, MQTT QoS {q} ({'none' if q == 0 else 'auto'}), events/s", summary["sse"][q])
        for q in (0, 1)
        if "sse" in summary
    ]
    for label, r in rows:
        ok &= r["ok"]
        print(
            f"  {label:<42} {r['gateway']:>9,.0f} {r['paho']:>11,.0f} {r['ratio']:>13.2f}   "
            f"{r['gateway_us']:.0f} / {r['paho_us']:.0f}{'' if r['ok'] else '  (a check failed)'}"
        )
    if "post" in summary:
        ratio = summary["post"][0]["ratio"]
        ok &= ratio >= QOS0_POST_TARGET
        print(
            f"  target: http-post -> MQTT QoS 0 / paho alone {ratio:.2f} "
            f"(>= {QOS0_POST_TARGET}: {'met' if ratio >= QOS0_POST_TARGET else 'missed'})"
        )
    if "fanout" in summary:
        s, n = summary["fanout"], args.clients
        best = s["best"]
        if best is None:
            ok = False
            print(f"  fan-out, {n:,} SSE clients (qos none): no rate sustained")
        else:
            print(
                f"  fan-out, {n:,} SSE clients (qos none): {best['rate']} msg/s sustained = "
                f"{best['delivered']:,.0f} events/s delivered ({best['per_client']:,.0f}/s a client); "
                f"to reach all clients p50 {best['reach_p50'] * 1000:.0f} ms, p99 {best['reach_p99'] * 1000:.0f} ms; "
                f"gateway VmRSS {s['rss_before']:.0f} MiB before, {s['rss_idle']:.0f} MiB idle, "
                f"{best['rss']:.0f} MiB max"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
