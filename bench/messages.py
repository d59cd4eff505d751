"""Message throughput of the gateway against a bare gevent.pywsgi baseline.

    python bench/messages.py [--duration 5] [--connections 4] [--runs 1] [--only sse|http-get]

Measures, each for a fixed duration and against a baseline server that writes the same bytes:

  sse       events/s from a Mock endpoint (messageInterval 0, no messageCount) to ONE client
            reading the stream;
  http-get  messages/s from repeated `GET` calls with `Accept: application/json`
            (messagesLimitCount 500) over a few keep-alive connections.

The gateway is a real `gatehouse serve` (temp SQLite, free ports) with one API imported and
started through the management API. The baseline is this file run as
`python bench/messages.py --baseline-server PORT`: a monkey-patched gevent.pywsgi server whose
SSE response is the same event bytes in the same chunks (64 events per chunk, as the mock
endpoint batches them) and whose GET response is the same JSON body (built per request).
Before measuring, the script checks that the first bytes of both bodies are identical.

One client for both: raw sockets in this process (no HTTP library), counting events with
bytes.count, so the client is not the bottleneck. Only 127.0.0.1; every process started here is
stopped on exit.

The client sets TCP_QUICKACK after each read. pywsgi sends the status line and headers in one
write and the body in another; without TCP_NODELAY on the server socket (`gatehouse serve` does
not set it, gunicorn does) Nagle holds the body until the headers are acknowledged, and a
keep-alive client delays that ACK by ~40 ms: every GET then takes ~40 ms whatever the server
does, for the gateway and the baseline alike. `--no-quickack` shows that stall;
`--baseline-nodelay` gives the baseline TCP_NODELAY instead.
"""

import argparse
import json
import os
import re
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import (
    Gatehouse,
    Processes,
    cpu_seconds,
    free_port,
    load_average,
    median,
    quickack,
    read_headers,
    recv_some,
    wait_for_port,
)

CONTENT = '{"symbol":"GATE","price":101.25,"volume":1200,"venue":"XBENCH"}'
SSE_BATCH = 256  # events per chunk: gateway_runtime.endpoints.mock.BATCH
GET_LIMIT = 500  # messagesLimitCount
HEARTBEAT_MS = 5000  # the SSE entrypoint's default heartbeatIntervalInMs (sent as `retry:`)
PATH = "/bench"


# ---------------------------------------------------------------- baseline server (subprocess)
def baseline_server(port, nodelay):
    from gevent import monkey

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer

    content = CONTENT.encode()
    sse_headers = [
        ("Content-Type", "text/event-stream;charset=UTF-8"),
        ("Cache-Control", "no-cache"),
        ("Connection", "keep-alive"),
        ("X-Accel-Buffering", "no"),
    ]

    def events():
        yield b"retry: %d\n\n" % HEARTBEAT_MS
        n = 0
        while True:
            yield b"".join(b"id: %d\nevent: message\ndata: %s\n\n" % (i, content) for i in range(n, n + SSE_BATCH))
            n += SSE_BATCH

    def app(environ, start_response):
        if "text/event-stream" in environ.get("HTTP_ACCEPT", ""):
            start_response("200 OK", sse_headers)
            return events()
        body = json.dumps(
            {
                "items": [{"id": str(i), "content": CONTENT} for i in range(GET_LIMIT)],
                "pagination": {"nextCursor": str(GET_LIMIT - 1), "limit": str(GET_LIMIT)},
            }
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json;charset=UTF-8"), ("Content-Length", str(len(body)))]
        )
        return [body]

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if nodelay:  # accepted sockets inherit it
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    server = WSGIServer(listener, app, log=None)
    server.serve_forever()


# ---------------------------------------------------------------- processes
def start_gateway(procs, workdir):
    gateway = Gatehouse(procs, workdir)
    gateway.deploy(
        {
            "name": "Bench",
            "apiVersion": "1.0",
            "definitionVersion": "4.0.0",
            "type": "message",
            "listeners": [
                {
                    "type": "http",
                    "paths": [{"path": PATH}],
                    "entrypoints": [
                        {"type": "http-get", "configuration": {"messagesLimitCount": GET_LIMIT}},
                        {"type": "sse", "configuration": {"heartbeatIntervalInMs": HEARTBEAT_MS}},
                    ],
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
                            "configuration": {"messageInterval": 0, "messageContent": CONTENT},
                        }
                    ],
                }
            ],
        }
    )
    gateway.http.close()
    return gateway.proc, gateway.port


def start_baseline(procs, workdir, nodelay):
    port = free_port()
    args = [sys.executable, str(Path(__file__).resolve()), "--baseline-server", str(port)]
    proc = procs.start(args + (["--baseline-nodelay"] if nodelay else []), workdir)
    wait_for_port(port, proc)
    return proc, port


# ---------------------------------------------------------------- client
def request(port, accept):
    return (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\n\r\n").encode()


def sse_prefix(port, size=64 * 1024):
    """The first `size` bytes after the headers (chunk framing included)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request(port, "text/event-stream"))
        _, body = read_headers(sock)
        while len(body) < size:
            body += recv_some(sock)
    return body[:size]


def sse_rate(port, duration, pid):
    """Events/s that ONE client receives on one stream during `duration` seconds."""
    pattern = b"event: message\n"
    keep = len(pattern) - 1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.sendall(request(port, "text/event-stream"))
        _, body = read_headers(sock)
        recv = sock.recv
        tail, count, received = body[-keep:], body.count(pattern), len(body)
        initial = count
        cpu0, client0 = cpu_seconds(pid), time.process_time()
        start = time.perf_counter()
        deadline = start + duration
        while True:
            data = recv(1 << 18)
            if not data:
                raise ConnectionError("the stream ended")
            quickack(sock)
            count += (tail + data[:keep]).count(pattern) + data.count(pattern)
            tail = data[-keep:]
            received += len(data)
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(pid) - cpu0 if cpu0 is not None else None
        client_cpu = time.process_time() - client0
    ids = re.findall(rb"id: (\d+)\n", data)
    last_id = int(ids[-1]) if ids else None
    return {
        "rate": (count - initial) / elapsed,
        "count": count,
        "bytes": received,
        "elapsed": elapsed,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "last_id": last_id,
    }


def get_body(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request(port, "application/json"))
        head, body = read_headers(sock)
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += recv_some(sock)
    return body


def get_rate(port, duration, connections, pid):
    """Messages/s from repeated GET calls, `connections` keep-alive connections kept busy."""
    req = request(port, "application/json")
    pattern = b'"content": '
    selector = selectors.DefaultSelector()
    state = {}
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        state[sock] = [bytearray(), None, None]  # buffer, header end, content length
        selector.register(sock, selectors.EVENT_READ)
    calls = messages = 0
    cpu0, client0 = cpu_seconds(pid), time.process_time()
    start = time.perf_counter()
    deadline = start + duration
    for sock in state:
        sock.sendall(req)
        quickack(sock)
    try:
        while time.perf_counter() < deadline:
            for key, _ in selector.select(0.5):
                sock = key.fileobj
                st = state[sock]
                data = sock.recv(1 << 18)
                if not data:
                    raise ConnectionError("connection closed")
                quickack(sock)
                buf = st[0]
                buf += data
                if st[1] is None:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    st[1] = end + 4
                    st[2] = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:end]).group(1))
                if len(buf) >= st[1] + st[2]:
                    if len(buf) > st[1] + st[2]:
                        raise AssertionError("unexpected bytes after the body")
                    messages += buf.count(pattern, st[1])
                    calls += 1
                    st[0], st[1], st[2] = bytearray(), None, None
                    if time.perf_counter() < deadline:
                        sock.sendall(req)
                        quickack(sock)
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(pid) - cpu0 if cpu0 is not None else None
        client_cpu = time.process_time() - client0
    finally:
        for sock in state:
            selector.unregister(sock)
            sock.close()
        selector.close()
    return {
        "rate": messages / elapsed,
        "calls": calls,
        "calls_rate": calls / elapsed,
        "count": messages,
        "elapsed": elapsed,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
    }


# ---------------------------------------------------------------- main
def describe(label, result, unit):
    cpu = ""
    if result["server_cpu"] is not None:
        cpu = f"  server CPU {result['server_cpu'] / result['elapsed']:4.0%}"
    cpu += f"  client CPU {result['client_cpu'] / result['elapsed']:4.0%}"
    extra = f"  ({result['calls_rate']:,.0f} calls/s)" if "calls_rate" in result else ""
    print(f"  {label:<9} {result['rate']:>12,.0f} {unit}{extra}{cpu}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--connections", type=int, default=4, help="client connections for http-get (default 4)")
    parser.add_argument("--runs", type=int, default=1, help="repeat each measurement, report medians")
    parser.add_argument("--only", choices=("sse", "http-get"), help="run one of the two benchmarks")
    parser.add_argument(
        "--no-quickack",
        action="store_true",
        help="the client ACKs as usual (shows the ~40 ms Nagle/delayed-ACK stall per GET)",
    )
    parser.add_argument("--baseline-nodelay", action="store_true", help="TCP_NODELAY on the baseline's sockets")
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server, args.baseline_nodelay)
        return 0
    common.QUICKACK = common.QUICKACK and not args.no_quickack

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_average()}")
    procs = Processes()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        workdir = Path(tmp)
        try:
            gateway, gateway_port = start_gateway(procs, workdir)
            baseline, baseline_port = start_baseline(procs, workdir, args.baseline_nodelay)
            targets = (("gateway", gateway_port, gateway.pid), ("baseline", baseline_port, baseline.pid))

            if args.only in (None, "sse"):
                same = sse_prefix(gateway_port) == sse_prefix(baseline_port)
                assert same, "the baseline's SSE bytes differ from the gateway's"
                print(
                    f"SSE, one client, {args.duration:g} s, {SSE_BATCH} events per chunk "
                    f"(first 64 KiB of both bodies identical)"
                )
                for _ in range(args.runs):
                    for label, port, pid in targets:
                        result = sse_rate(port, args.duration, pid)
                        if label == "gateway" and result["last_id"] is not None:
                            # ids run 0, 1, 2 ... : the count must match the last id seen
                            assert abs(result["last_id"] + 1 - result["count"]) <= SSE_BATCH, result
                        results.setdefault(("sse", label), []).append(result["rate"])
                        describe(label, result, "events/s")

            if args.only in (None, "http-get"):
                assert get_body(gateway_port) == get_body(baseline_port), "the baseline's JSON body differs"
                print(
                    f"http-get, {args.connections} keep-alive connections, {args.duration:g} s, "
                    f"{GET_LIMIT} messages per call (bodies identical)"
                )
                for _ in range(args.runs):
                    for label, port, pid in targets:
                        result = get_rate(port, args.duration, args.connections, pid)
                        results.setdefault(("http-get", label), []).append(result["rate"])
                        describe(label, result, "messages/s")
        finally:
            procs.stop_all()

    print(f"\nsummary (load average {load_average()})" + (f", medians of {args.runs} runs" if args.runs > 1 else ""))
    ok = True
    for bench, unit in (("sse", "events/s"), ("http-get", "messages/s")):
        if (bench, "gateway") not in results:
            continue
        gw, base = median(results[(bench, "gateway")]), median(results[(bench, "baseline")])
        ratio = gw / base
        ok &= ratio >= 0.8
        print(
            f"  {bench:<9} gateway {gw:>12,.0f} {unit}   baseline {base:>12,.0f} {unit}   "
            f"ratio {ratio:.2f} {'(ok)' if ratio >= 0.8 else '(below the 0.8 target)'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
