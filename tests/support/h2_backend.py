"""An HTTP/2 backend for the proxy tests: Hypercorn serving a small ASGI app that echoes each
request (with the HTTP version it came over) as JSON. Clear text takes HTTP/2 with prior
knowledge; with a certificate it offers h2 by ALPN."""

import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from support.gatehouse import free_port, wait_for_port


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = json.dumps(
        {
            "httpVersion": scope["http_version"],
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "body": body.decode("latin-1"),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"x-backend", b"h2")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@contextlib.contextmanager
def serving(workdir=None, certfile=None, keyfile=None):
    """Yield the backend's base URL while it runs (its log in `workdir`, else the temp folder)."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "hypercorn",
        "support.h2_backend:app",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "0",
    ]
    if certfile:
        args += ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    log = open(Path(workdir or tempfile.gettempdir()) / f"hypercorn-{port}.log", "w")
    process = subprocess.Popen(args, cwd=Path(__file__).parents[1], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"{'https' if certfile else 'http'}://127.0.0.1:{port}"
    finally:
        process.kill()  # Hypercorn's graceful stop would wait for the gateway's pooled connections
        process.wait(10)
