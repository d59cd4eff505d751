"""Outbound HTTP clients side by side, for bench/proxy.py (the figures it prints are what chose
the gateway's client). Two modes:

    python bench/forwarder.py serve PORT TARGET [--client urllib3]
        "the old stack": a bare monkey-patched gevent.pywsgi server forwarding each GET to TARGET
        (a base URL) with the client; no routing, no header filtering, no access log, TCP_NODELAY.
    python bench/forwarder.py loop URL --client NAME [--duration 5] [--concurrency 32]
        a closed loop of GETs to URL from --concurrency greenlets, no server: prints one JSON line,
        {"client", "rate" (requests/s), "cpu_us" (this process's CPU per request)}.

Clients (--client): urllib3 (a PoolManager, as the gateway used), geventhttpclient (C parser,
gevent-native), gatehouse (gateway_runtime.http_client, on gevent sockets and httptools). Each
keeps its connections alive, at most 32 to the target.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, as in the gateway)
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

CONNECTIONS = 32


def urllib3_get():
    import urllib3

    pool = urllib3.PoolManager(maxsize=CONNECTIONS, block=True, retries=False)

    def get(url):
        response = pool.urlopen("GET", url, preload_content=False, decode_content=False)
        body = response.read()
        response.release_conn()
        return response.status, body

    return get


def geventhttpclient_get():
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    clients = {}

    def get(url):
        parsed = URL(url)
        client = clients.get(parsed.netloc)
        if client is None:
            client = clients[parsed.netloc] = HTTPClient.from_url(parsed, concurrency=CONNECTIONS)
        response = client.get(parsed.request_uri)
        body = response.read()
        response.release()
        return response.status_code, body

    return get


def gatehouse_get():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gateway_runtime.http_client import HttpClient, split_url

    client = HttpClient(None, connect_timeout=5, read_timeout=10, max_connections=CONNECTIONS)

    def get(url):
        origin, target = split_url(url)
        response = client.request(origin, "GET", target, {})
        return response.status, response.read()

    return get


CLIENTS = {"urllib3": urllib3_get, "geventhttpclient": geventhttpclient_get, "gatehouse": gatehouse_get}


def serve(port, target, get):
    from gevent import pywsgi

    base = target.rstrip("/")

    def app(environ, start_response):
        query = environ.get("QUERY_STRING")
        status, body = get(base + environ["PATH_INFO"] + (f"?{query}" if query else ""))
        start_response(f"{status} OK", [("Content-Length", str(len(body)))])
        return [body]

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by the accepted connections (Linux): a small answer is not held back for an ACK.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    pywsgi.WSGIServer(listener, app, log=None).serve_forever()


def loop(url, get, duration, concurrency):
    count = 0
    deadline = time.monotonic() + duration

    def worker():
        nonlocal count
        while time.monotonic() < deadline:
            status, _ = get(url)
            assert status == 200, status
            count += 1

    get(url)  # the first connection, and any import, before the clock starts
    started, cpu = time.monotonic(), os.times()
    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)], raise_error=True)
    elapsed, after = time.monotonic() - started, os.times()
    used = (after.user - cpu.user) + (after.system - cpu.system)
    return {"rate": count / elapsed, "cpu_us": used / count * 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("serve", "loop"))
    parser.add_argument("args", nargs="+", help="serve: PORT TARGET; loop: URL")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="urllib3")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    get = CLIENTS[options.client]()
    if options.mode == "serve":
        port, target = options.args
        serve(int(port), target, get)
    else:
        result = loop(options.args[0], get, options.duration, options.concurrency)
        print(json.dumps({"client": options.client, **result}), flush=True)


if __name__ == "__main__":
    main()
