"""Where clients connect: for each entrypoint of an API, the gateway URL and a ready command.

The gateway's public base URL is GATEHOUSE_GATEWAY_URL when set; else the host the portal was
reached on with the port this process's gateway serves (what a person on the same network uses).
Commands are shell-quoted: paths, hosts and headers come from the definition, whoever wrote it.
"""

import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway_runtime.plans import API_KEY_HEADER

SAMPLE_BODY = "hello"


@dataclass(frozen=True)
class Connection:
    entrypoint: str  # the entrypoint's type
    url: str | None  # None when clients do not call the gateway (webhook)
    command: str | None
    note: str = ""


def base_url(config, request_host):
    configured = (config.get("GATEWAY_URL") or "").strip().rstrip("/")
    if configured:
        return configured
    host = urlsplit("//" + request_host).hostname or "127.0.0.1"
    return f"http://{_bracketed(host)}:{config['GATEWAY_PORT']}"


def _bracketed(host):
    return f"[{host}]" if ":" in host else host


def credential_header(api):
    """The header a client sends to pass the API's published plan (an API key first), or None."""
    published = {p.security_type for p in api.plans if (p.status or "").lower() == "published"}
    if "api-key" in published:
        return f"{API_KEY_HEADER}: <your key>"
    if "jwt" in published:
        return "Authorization: Bearer <your JWT>"
    return None


def connections(api, base, tcp_port):
    """[Connection] for each entrypoint of each listener of the API (each context path)."""
    header = credential_header(api)
    found = []
    for listener in api.listeners:
        if listener.type == "tcp":
            found += _tcp(listener, base, tcp_port)
        elif listener.type == "subscription":
            found += [
                Connection(
                    e.type,
                    None,
                    None,
                    "Consumed by push subscriptions: an application subscribes to "
                    "the API's push plan with its callback URL, and the gateway POSTs each message to it.",
                )
                for e in listener.entrypoints
            ]
        else:
            for path in listener.paths:
                url = _url(base, path.host, path.path)
                found += [_http(e.type, url, header) for e in listener.entrypoints]
    return found


def _url(base, host, path):
    parts = urlsplit(base)
    netloc = parts.netloc
    if host:  # the gateway routes this path for that Host only
        netloc = _bracketed(host) + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/{path.lstrip('/')}"


def _curl(url, *options, header=None):
    words = ["curl", *options]
    if header:
        words += ["-H", header]
    return shlex.join([*words, url])


def _http(kind, url, header):
    if kind == "http-get":
        return Connection(kind, url, _curl(url, "-H", "Accept: application/json", header=header))
    if kind == "http-post":
        return Connection(
            kind,
            url,
            _curl(url, "-d", SAMPLE_BODY, header=header),
            "Publishes the body as a message; the gateway answers 202.",
        )
    if kind == "sse":
        return Connection(
            kind,
            url,
            _curl(url, "-N", "-H", "Accept: text/event-stream", header=header),
            "Streams messages as they come (-N: no buffering).",
        )
    if kind == "websocket":
        ws = ("wss" if url.startswith("https:") else "ws") + url[url.index(":") :]
        return Connection(
            kind,
            ws,
            ws,
            f"Open a WebSocket to this URL{f' with the header {header}' if header else ''}"
            ": each message comes as a frame; frames you send are published.",
        )
    return Connection(kind, url, _curl(url, header=header))  # http-proxy: forwarded to the backend


def _tcp(listener, base, tcp_port):
    entrypoint = listener.entrypoints[0].type if listener.entrypoints else "tcp-proxy"
    if tcp_port is None:
        return [Connection(entrypoint, None, None, "This gateway's TCP port is off (GATEHOUSE_TCP_PORT).")]
    host = _bracketed(urlsplit(base).hostname or "127.0.0.1")
    return [
        Connection(
            entrypoint,
            f"{host}:{tcp_port}",
            shlex.join(["openssl", "s_client", "-connect", f"{host}:{tcp_port}", "-servername", name]),
            f"TLS to the gateway's TCP port, naming {name} by SNI.",
        )
        for name in listener.extra.get("hosts", [])
    ]
