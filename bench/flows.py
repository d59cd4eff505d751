"""What one flow with one transform-headers step costs on the hot paths, against the same API
without flows, in one gateway process and one run:

- **http-post -> Mock**: wrk -t2 -c32 POSTing 1 KiB for `--duration` seconds; the flow's step sets
  a header on each answer (its response phase), so every 202 is seen to have gone through it;
- **SSE from the Mock**: one client reading one stream (Mock interval 0) for `--duration` seconds;
  the flow's step sets a header on each message (its subscribe phase), sent as an SSE comment.

Both APIs differ only by their flows and send the same bytes: the plain API's Mock gives its
messages the header the flowed API's step sets (`X-Flow: on`, an SSE comment on both), so that the
ratio is the step's cost, not that of a longer stream. Each run measures both, back to back, in
alternating order; the ratio of a run is flowed / plain, and the figure is the median of the runs'
ratios (`--runs`), which drifts of the machine between runs do not move. It must be at least 0.9 for each (exit status 1
otherwise). The gateway's CPU time a request or a message is shown beside.

    python bench/flows.py                 # 5 runs of 4 s a side, ~1.5 min
    python bench/flows.py --runs 1 --duration 3
"""

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BODY_1K,
    Gatehouse,
    Processes,
    cpu_seconds,
    load_average,
    median,
    post_request,
    quickack,
    read_headers,
    read_headers_any,
    sse_request,
    wrk_post,
)

TARGET = 0.9
CONTENT = '{"symbol":"GATE","price":101.25,"volume":1200,"venue":"XBENCH"}'


def definition(path, flows, mock_headers=()):
    return {
        "name": f"Flows bench {path}",
        "apiVersion": "1.0",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [
            {
                "type": "http",
                "paths": [{"path": path}],
                "entrypoints": [
                    {"type": "http-post"},
                    {"type": "sse", "configuration": {"headersAsComment": True, "heartbeatIntervalInMs": 5000}},
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
                        "inheritConfiguration": False,
                        "configuration": {
                            "messageInterval": 0,
                            "messageContent": CONTENT,
                            "headers": [{"name": n, "value": v} for n, v in mock_headers],
                        },
                    }
                ],
            }
        ],
        "flows": flows,
    }


def one_step(phase, operation, value="on"):
    step = {
        "name": "mark",
        "policy": "transform-headers",
        "enabled": True,
        "configuration": {"addHeaders": [{"name": "X-Flow", "value": value}]},
    }
    selector = {"type": "channel", "channel": "/", "channelOperator": "STARTS_WITH", "operations": [operation]}
    return {"name": phase, "enabled": True, "selectors": [selector], phase: [step]}


def check_marked(port):
    """The flowed API's step ran: on its 202s (the plain ones have no X-Flow), on its messages (from
    the step: its Mock sets no header; the plain API's Mock sets the same one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for path, marked in (("/plain", False), ("/flowed", True), ("/expressions", True)):
            sock.sendall(post_request(port, path, BODY_1K))
            head, _ = read_headers_any(sock)
            assert head.startswith(b"HTTP/1.1 202") and (b"\r\nX-Flow: on" in head) is marked, head
    for path, marked in (("/plain", True), ("/flowed", True), ("/expressions", True)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(sse_request(port, path, f"check{path[1:]}"))
            _, body = read_headers(sock)
            while body.count(b"event: message") < 10:
                body += sock.recv(65536)
            assert (b"\n:X-Flow: on" in body) is marked, body[:300]


def sse_rate(port, path, duration, pid):
    pattern = b"event: message\n"
    keep = len(pattern) - 1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.sendall(sse_request(port, path, f"bench{time.monotonic_ns()}"))
        _, body = read_headers(sock)
        tail, count = body[-keep:], 0
        cpu0, start = cpu_seconds(pid), time.perf_counter()
        deadline = start + duration
        while time.perf_counter() < deadline:
            data = sock.recv(1 << 18)
            if not data:
                raise ConnectionError("the stream ended")
            quickack(sock)
            count += (tail + data[:keep]).count(pattern) + data.count(pattern)
            tail = data[-keep:]
        elapsed = time.perf_counter() - start
        return count / elapsed, (cpu_seconds(pid) - cpu0) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    procs = Processes()
    print(f"load average at the start: {load_average()}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            gateway = Gatehouse(procs, workdir)
            gateway.deploy(definition("/plain", [], mock_headers=[("X-Flow", "on")]))
            gateway.deploy(definition("/flowed", [one_step("response", "PUBLISH"), one_step("subscribe", "SUBSCRIBE")]))
            # Reported, not a target: the value an expression, so every request and message goes
            # through the flows one by one (the shortcuts above cannot apply).
            expression = "{#request.method == 'POST' ? 'on' : 'on'}", "{#message.id != null ? 'on' : 'off'}"
            gateway.deploy(
                definition(
                    "/expressions",
                    [one_step("response", "PUBLISH", expression[0]), one_step("subscribe", "SUBSCRIBE", expression[1])],
                )
            )
            check_marked(gateway.port)
            paths = ("/plain", "/flowed", "/expressions")
            results = {(kind, path): [] for kind in ("post", "sse") for path in paths}
            cpu = {(kind, path): [] for kind in ("post", "sse") for path in paths}
            for run in range(args.runs):
                for path in paths if run % 2 == 0 else paths[::-1]:
                    before = cpu_seconds(gateway.pid)
                    post = wrk_post(gateway.port, path, args.duration, 32, workdir)
                    assert post["other"] == 0 and post["errors"] == 0, post
                    cpu["post", path].append((cpu_seconds(gateway.pid) - before) / post["accepted"])
                    results["post", path].append(post["rate"])
                    rate, share = sse_rate(gateway.port, path, args.duration, gateway.pid)
                    results["sse", path].append(rate)
                    cpu["sse", path].append(share / rate)
                    print(
                        f"  run {run + 1} {path:<8} http-post {post['rate']:>9,.0f} 202/s"
                        f" ({cpu['post', path][-1] * 1e6:5.1f} us CPU each)"
                        f"  sse {rate:>10,.0f} events/s ({cpu['sse', path][-1] * 1e6:5.2f} us CPU each)",
                        flush=True,
                    )
            gateway.stop()
    finally:
        procs.stop_all()
    print(f"load average at the end: {load_average()}")
    failed = False
    for kind, unit in (("post", "202/s"), ("sse", "events/s")):
        for path, checked in (("/flowed", True), ("/expressions", False)):
            plain, flowed = median(results[kind, "/plain"]), median(results[kind, path])
            ratio = median([f / p for f, p in zip(results[kind, path], results[kind, "/plain"], strict=True)])
            costs = median(cpu[kind, path]) * 1e6, median(cpu[kind, "/plain"]) * 1e6
            verdict = ("met" if ratio >= TARGET else "MISSED") + f", target {TARGET}" if checked else "reported"
            failed |= checked and ratio < TARGET
            print(
                f"{kind:<5} {path:<12} without flows {plain:>10,.0f} {unit}  with one step {flowed:>10,.0f}"
                f"  ratio {ratio:.3f} ({verdict}); CPU each {costs[0]:.2f} against {costs[1]:.2f} us"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
