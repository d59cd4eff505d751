"""What counting every request for Prometheus costs, and writing an access line for it, on proxied
GETs and on http-post, against the same gateway with GATEHOUSE_METRICS=off, in one run (issue 20's
target: >= 0.9 for each).

    python bench/metrics.py              # 5 runs of 4 s a side, ~5 min
    python bench/metrics.py --runs 1 --duration 3

Starts, on free ports of 127.0.0.1 (all stopped on exit): an nginx backend serving a 100 B file, and
three `gatehouse serve` processes: metrics on (the default), metrics off, and metrics on with access
logs (GATEHOUSE_ACCESS_LOG=on: a line a request, to the process's log file); each with a proxy API
to the backend and a Mock message API taking http-post. Before measuring, the script checks that a
scrape of the first counts requests and one of the second counts none. `wrk -t2 -c32` to each
(GETs; POSTs of 1 KiB), back to back in alternating order; a run's ratio is on ÷ off, the figure
the median of the runs' ratios (exit status 1 below a target). nginx and wrk are installed with
apt-get when missing and the script runs as root (else it says how).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Gatehouse,
    Processes,
    alternating_ratios,
    api,
    ensure_tools,
    load_average,
    raise_nofile,
    report_ratios,
    wrk_post,
)
from proxy import measure, proxy_api, start_backend

TARGETS = {"proxy GET": 0.9, "http-post": 0.9, "proxy GET, access logs too": 0.9, "http-post, access logs too": 0.9}
TOKEN = "bench-metrics-token"
MOCK = {
    "name": "mock",
    "type": "mock",
    "endpoints": [{"name": "mock", "type": "mock", "weight": 1, "configuration": {"messageInterval": 1000}}],
}


def counted_requests(gateway):
    """gatehouse_requests_total summed over a scrape of the gateway's portal."""
    portal = gateway.portal.split("/management")[0]
    text = requests.get(f"{portal}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("gatehouse_requests_total{")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run (default 4)")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs (default 5)")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    ensure_tools("nginx", "wrk")
    raise_nofile()
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            return measure_all(args, procs, workdir)
    finally:
        procs.stop_all()


def measure_all(args, procs, workdir):
    backend_port, _ = start_backend(procs, workdir, 100, 1)
    base = {"GATEHOUSE_TCP_PORT": "off", "GATEHOUSE_METRICS_TOKEN": TOKEN}  # two gateways: one TCP port each
    gateways = {
        "on": Gatehouse(procs, workdir, env=base),
        "off": Gatehouse(procs, workdir, env={**base, "GATEHOUSE_METRICS": "off"}),
        "on, with access logs": Gatehouse(procs, workdir, env={**base, "GATEHOUSE_ACCESS_LOG": "on"}),
    }
    for gateway in gateways.values():
        gateway.deploy(proxy_api(f"http://127.0.0.1:{backend_port}"))
        gateway.deploy(api("Metrics bench post", "/post", MOCK, [{"type": "http-post"}]))
        requests.get(f"http://127.0.0.1:{gateway.port}/proxy/file.bin", timeout=10).raise_for_status()
    assert counted_requests(gateways["on"]) >= 1 and counted_requests(gateways["off"]) == 0
    print(f"load average before: {load_average()}", flush=True)

    def proxied(state):
        gateway = gateways[state]
        url = f"http://127.0.0.1:{gateway.port}/proxy/file.bin"
        return lambda: measure(f"proxy GET, metrics {state}", url, args.duration, args.connections, [gateway.pid])[
            "rate"
        ]

    def posted(state):
        def rate():
            result = wrk_post(gateways[state].port, "/post", args.duration, args.connections, workdir)
            print(f"  http-post, metrics {state:<22} {result['rate']:>9,.0f} 202/s", flush=True)
            return result["rate"]

        return rate

    logged = "on, with access logs"
    pairs = {
        "proxy GET": (proxied("off"), proxied("on")),
        "http-post": (posted("off"), posted("on")),
        "proxy GET, access logs too": (proxied("off"), proxied(logged)),
        "http-post, access logs too": (posted("off"), posted(logged)),
    }
    ratios = alternating_ratios(pairs, args.runs)
    print(f"load average after: {load_average()}")
    return 1 if report_ratios("metrics on / off,", ratios, TARGETS) else 0


if __name__ == "__main__":
    sys.exit(main())
