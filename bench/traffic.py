"""What a rate-limit step costs on proxied requests, counted in memory and on Redis, against the
same API without it, in one gateway process and one run.

    python bench/traffic.py              # 5 runs of 4 s a side, ~2 min
    python bench/traffic.py --runs 1 --duration 3

Starts, on free ports of 127.0.0.1 (all stopped on exit): an nginx backend serving a 100 B file;
a `gatehouse serve` counting in memory and one with GATEHOUSE_REDIS_URL set to the local Redis
(redis://127.0.0.1:6379/0 unless --redis names another); on each, the proxy API without flows and
the same API with a rate-limit step (a limit no run reaches, so every request is counted and
passes; addHeaders on, so each answer says it was counted), and on Redis one in async mode too.

`wrk -t2 -c32` to each, back to back, in alternating order; a run's ratio is limited / plain on the
same gateway, the figure the median of the runs' ratios. Targets: on Redis >= 0.7, in memory >= 0.9
(exit status 1 when missed); async on Redis is reported beside. nginx and wrk are installed with
apt-get when missing and the script runs as root (else it says how).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import urllib.request

from common import Gatehouse, Processes, alternating_ratios, ensure_tools, load_average, raise_nofile, report_ratios
from proxy import measure, proxy_api, start_backend

TARGETS = {"memory": 0.9, "redis": 0.7}
LIMIT = {"limit": 10**12, "periodTime": 1, "periodTimeUnit": "MINUTES"}


def limited(target, path, strict=True):
    definition = proxy_api(target)
    definition["name"] = f"Traffic bench {path}"
    definition["listeners"][0]["paths"] = [{"path": path}]
    if path != "/plain":
        step = {"policy": "rate-limit", "configuration": {"rate": LIMIT, "addHeaders": True, "async": not strict}}
        definition["flows"] = [{"name": "limit", "selectors": [], "request": [step]}]
    return definition


def counted(url):
    """The gateway's answer says the request was counted (X-Rate-Limit-Remaining), or it was not limited."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.headers.get("X-Rate-Limit-Remaining")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run (default 4)")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs (default 5)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    ensure_tools("nginx", "wrk")
    raise_nofile()
    procs = Processes()
    try:
        return measure_all(args, procs)
    finally:
        procs.stop_all()


def measure_all(args, procs):
    with tempfile.TemporaryDirectory() as workdir:
        backend_port, _ = start_backend(procs, workdir, 100, 1)
        target = f"http://127.0.0.1:{backend_port}/file.bin"
        off = {"GATEHOUSE_TCP_PORT": "off"}  # two gateways: the TCP port's default would be taken twice
        memory = Gatehouse(procs, workdir, env=off)
        redis = Gatehouse(procs, workdir, env={**off, "GATEHOUSE_REDIS_URL": args.redis})
        cases = {
            "memory": (memory, "/limited-memory", True),
            "redis": (redis, "/limited-redis", True),
            "redis async": (redis, "/limited-async", False),
        }
        for gateway in (memory, redis):
            gateway.deploy(limited(target, "/plain"))
        for gateway, path, strict in cases.values():
            gateway.deploy(limited(target, path, strict))
            url = f"http://127.0.0.1:{gateway.port}{path}"
            assert counted(url) is not None, f"{path}: the rate-limit step did not run"
        print(f"load average before: {load_average()}", flush=True)

        def rate(label, gateway, path):
            url = f"http://127.0.0.1:{gateway.port}{path}"
            return lambda: measure(label, url, args.duration, args.connections, [gateway.pid])["rate"]

        pairs = {
            name: (rate(f"plain ({name})", gateway, "/plain"), rate(name, gateway, path))
            for name, (gateway, path, _) in cases.items()
        }
        ratios = alternating_ratios(pairs, args.runs)
        print(f"load average after: {load_average()}")
        missed = report_ratios("rate-limit / plain,", ratios, TARGETS)
        return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
