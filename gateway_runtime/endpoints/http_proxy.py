"""HTTP proxy endpoint: forwards a request to a backend and streams the answer back, cooperative
under gevent, with one connection pool per endpoint: outbound_http's client for HTTP/1.1 (the
gateway's own, or urllib3 through an outbound HTTP / SOCKS proxy), httpx with h2 for HTTP/2."""

import ssl
import sys
from urllib.parse import urlsplit

from gevent import monkey

# httpcore looks for trio when imported; under gevent's patched `select` (no epoll) importing trio
# fails with AttributeError, not the ImportError httpcore expects. The gateway never runs trio.
if monkey.is_module_patched("select"):
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]  # None: "no such module", as Python documents

import httpx

from ..http_client import ClientError, ConnectFailed, ConnectTimedOut, Origin, ReadTimedOut, TlsFailed
from ..messages import READ_CHUNK, EndpointConnector, EndpointError, Unreachable
from ..outbound_http import (
    PROXY_FIELDS,
    SSL_FIELDS,
    NotThroughProxy,
    ProxyRefused,
    check_proxy_and_tls,
    outbound_client,
    outbound_proxy,
    ssl_context,
    tls_and_proxy_summary,
)
from ..outbound_http import SECTIONS as OUTBOUND_SECTIONS
from ..settings import Field, Settings, get_path, summary_line
from ..specs import EndpointSpec
from ..tls.stores import diagnose_tls

# Meaningful for one connection only; never forwarded (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    )
)


class GatewayTimeout(EndpointError):
    status = "504 Gateway Timeout"
    key = "GATEWAY_CLIENT_READ_TIMEOUT"


class HttpProxyEndpoint(EndpointConnector):
    def __init__(self, configuration, shared):
        super().__init__(configuration, shared)
        self.target = configuration["target"]
        # Parsed once: a request only appends its path and query.
        base, _, self.target_query = self.target.partition("?")  # a target may carry a query of its own
        parts = urlsplit(base)
        self.origin, self.root, self.base_path = Origin(base), f"{parts.scheme}://{parts.netloc}", parts.path
        http = shared["http"]
        self.headers = [(h["name"], h["value"]) for h in shared.get("headers", [])]
        self.follow_redirects = http["followRedirects"]
        self.propagate_host = http["propagateClientHost"]
        self.compression = http["useCompression"]
        ssl_options = shared.get("ssl") or {}
        self.client_certificate = (get_path(ssl_options, "keyStore.type") or "NONE") != "NONE"
        self.ssl_context = ssl_context(ssl_options) if self.target.startswith("https") else None
        self.proxy = outbound_proxy(shared.get("proxy") or {}, self.target)
        # The shorter of the two bounds a kept-alive connection's idleness (0: no bound).
        idle = [t / 1000 for t in (http["idleTimeout"], http["keepAliveTimeout"]) if t]
        self.client = (
            Http2Client(self.target, http, self.ssl_context)
            if http["version"] == "HTTP_2"
            else outbound_client(
                self.proxy,
                self.ssl_context,
                connect_timeout=http["connectTimeout"] / 1000,
                read_timeout=http["readTimeout"] / 1000,
                max_connections=http["maxConcurrentConnections"],
                idle_timeout=min(idle) if idle else None,
                keep_alive=http["keepAlive"],
            )
        )

    def forward(self, request):
        """Send the request on; return the backend's Answer once its status and headers came."""
        path = (self.base_path.rstrip("/") + request.rest if request.rest else self.base_path) or "/"
        query = (
            f"{self.target_query}&{request.query}"
            if self.target_query and request.query
            else (self.target_query or request.query)
        )
        target = f"{path}?{query}" if query else path
        headers = dict(request.headers)
        if not self.propagate_host:
            headers.pop("Host", None)
        elif request.host:
            headers["Host"] = request.host
        if not self.compression:
            headers.pop("Accept-Encoding", None)
        headers.update(self.headers)
        body = request.body
        if isinstance(self.client, Http2Client):
            url = self.root + target
            return self.client.send(request.method, url, headers, body, self.follow_redirects, self._failure)
        try:
            response = self.client.request(self.origin, request.method, target, headers, body, self.follow_redirects)
        except ClientError as exc:
            raise self._failure(exc, self.target) from None
        if response.status == 407 and self.proxy is not None:
            response.close()
            raise EndpointError(
                f"the outbound proxy {self.proxy.address} refused the gateway's credentials "
                "(407): check the proxy user name and password"
            )
        return Answer(response)

    def _failure(self, exc, url):
        if isinstance(exc, ProxyRefused):
            return Unreachable(
                f"the outbound proxy {self.proxy.address} did not take the request to {host_of(url)}: {exc}"
            )
        if isinstance(exc, NotThroughProxy):
            return Unreachable(
                f"the backend {host_of(url)} cannot be reached through the proxy {self.proxy.address}: {exc}"
            )
        if isinstance(exc, TlsFailed) or (
            isinstance(exc, httpx.ConnectError) and isinstance(exc.__context__, ssl.SSLError)
        ):
            return self._tls_failure(url)
        if isinstance(exc, (ConnectFailed, httpx.ConnectError)):
            return Unreachable(f"the backend {host_of(url)} cannot be reached", getattr(exc, "key", None))
        if isinstance(exc, (ConnectTimedOut, ReadTimedOut, httpx.TimeoutException)):
            key = "GATEWAY_CLIENT_CONNECT_TIMEOUT" if isinstance(exc, ConnectTimedOut) else None
            return GatewayTimeout(f"the backend {host_of(url)} did not answer in time", key)
        return EndpointError(f"the backend {host_of(url)} cannot be reached")

    def _tls_failure(self, url):
        why = diagnose_tls(self.ssl_context, [host_of(url)], "backend") if self.ssl_context is not None else None
        if why is None and not self.client_certificate:
            why = (
                f"the TLS handshake with the backend {host_of(url)} failed: if the backend asks for a "
                "client certificate, give one in the endpoint's SSL key store"
            )
        return Unreachable(
            why or f"the TLS handshake with the backend {host_of(url)} failed", "GATEWAY_CLIENT_TLS_HANDSHAKE_ERROR"
        )

    def close(self):
        self.client.close()


class Http2Client:
    """HTTP/2 to one backend (httpx with h2): ALPN over TLS, prior knowledge in clear text."""

    def __init__(self, target, http, ssl_context):
        cleartext = target.startswith("http:")
        self.client = httpx.Client(
            http1=not cleartext,
            http2=True,
            verify=ssl_context if ssl_context is not None else True,
            timeout=httpx.Timeout(http["readTimeout"] / 1000, connect=http["connectTimeout"] / 1000),
            limits=httpx.Limits(
                max_connections=http["maxConcurrentConnections"],
                keepalive_expiry=http["keepAliveTimeout"] / 1000 if http["keepAlive"] else 0,
            ),
            trust_env=False,
        )

    def send(self, method, url, headers, body, follow_redirects, failure):
        if body is not None and not isinstance(body, bytes):
            stream = body
            body = iter(lambda: stream.read(READ_CHUNK), b"")
        try:
            request = self.client.build_request(method, url, headers=headers, content=body)
            return Http2Answer(self.client.send(request, stream=True, follow_redirects=follow_redirects))
        except (httpx.HTTPError, OSError) as exc:
            raise failure(exc, url) from None

    def close(self):
        self.client.close()


class Answer:
    """The backend's answer: status and headers at once, the body as it comes (chunk by chunk, so
    that a stream is not held back). It is the WSGI response body: closing it gives the connection
    back to the pool, or drops the connection when the body was not read to its end."""

    __slots__ = ("response",)

    def __init__(self, response):
        self.response = response

    @property
    def status_code(self):
        return self.response.status

    @property
    def status(self):
        return f"{self.response.status} {self.response.reason}".rstrip()

    @property
    def headers(self):
        headers = self.response.headers
        named = {
            option.strip().lower()
            for name, value in headers
            if name.lower() == "connection"
            for option in value.split(",")
        }
        dropped = HOP_BY_HOP | named if named else HOP_BY_HOP
        return [(name, value) for name, value in headers if name.lower() not in dropped]

    def __iter__(self):
        try:
            yield from self.response
        except ClientError:
            return  # the backend went away mid-body: end the response here

    def close(self):
        self.response.close()

    discard = close


class Http2Answer(Answer):
    __slots__ = ()

    @property
    def status_code(self):
        return self.response.status_code

    @property
    def status(self):
        return f"{self.response.status_code} {self.response.reason_phrase}".strip()

    @property
    def headers(self):
        return [(name, value) for name, value in self.response.headers.multi_items() if name not in HOP_BY_HOP]

    def __iter__(self):
        try:
            yield from self.response.iter_raw()
        except (httpx.HTTPError, OSError):
            return  # the backend went away mid-body: end the response here


def host_of(url):
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url  # never the user name and password


def _check_target(values, settings):
    target = values.get("target", "")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return {"target": f"'{target}' is not an http:// or https:// URL"}
    try:
        port = parts.port
    except ValueError:
        return {"target": f"Target URL: '{target}' has a port that is not between 1 and 65535"}
    if port == 0:
        return {"target": f"Target URL: '{target}' has port 0, not between 1 and 65535"}
    return {}


def _check_shared(values, settings):
    errors = {}
    if get_path(values, "http.version") == "HTTP_2":
        if get_path(values, "http.clearTextUpgrade"):
            errors["http.clearTextUpgrade"] = (
                "An HTTP/1.1 upgrade to h2c is not available: leave it off to open "
                "HTTP/2 connections directly (prior knowledge)"
            )
        if get_path(values, "proxy.enabled"):
            errors["http.version"] = "HTTP/2 through an outbound proxy is not available: choose HTTP/1.1"
    errors.update(check_proxy_and_tls(values))
    return errors


def summary(shared):
    return summary_line(get_path(shared, "http.version") or "HTTP_1_1", *tls_and_proxy_summary(shared))


SECTIONS = (("http", "HTTP"), ("headers", "HTTP"), *OUTBOUND_SECTIONS)
SHARED = Settings(
    fields=(
        Field("http.version", "enum", "HTTP version", default="HTTP_1_1", choices=("HTTP_1_1", "HTTP_2")),
        Field(
            "http.clearTextUpgrade",
            "boolean",
            "Upgrade clear-text connections to HTTP/2 (h2c)",
            default=False,
            when=("http.version", ("HTTP_2",)),
        ),
        Field("http.connectTimeout", "integer", "Connect timeout (ms)", default=5000, minimum=1),
        Field("http.readTimeout", "integer", "Read timeout (ms)", default=10000, minimum=1),
        Field("http.idleTimeout", "integer", "Idle timeout (ms)", default=60000, minimum=0),
        Field("http.keepAlive", "boolean", "Keep connections alive", default=True),
        Field(
            "http.keepAliveTimeout",
            "integer",
            "Keep-alive timeout (ms)",
            default=30000,
            minimum=0,
            when=("http.keepAlive", (True,)),
        ),
        Field("http.maxConcurrentConnections", "integer", "Max concurrent connections", default=20, minimum=1),
        Field("http.followRedirects", "boolean", "Follow redirects", default=False),
        Field("http.propagateClientHost", "boolean", "Propagate the client's Host header", default=False),
        Field("http.useCompression", "boolean", "Use compression", default=True),
        Field(
            "headers",
            "pairs",
            "Headers added to each request",
            secret_pairs=True,
            help="One 'name: value' per line. Credentials (Authorization, Cookie, *-Token...) are kept as secrets.",
        ),
        *PROXY_FIELDS,
        *SSL_FIELDS,
    ),
    checks=(_check_shared,),
    sections=SECTIONS,
)

SPEC = EndpointSpec(
    type="http-proxy",
    label="HTTP proxy",
    connector=HttpProxyEndpoint,
    api_types=("proxy",),
    qos=("auto",),
    description="Forwards requests to an HTTP backend.",
    configuration=Settings(
        fields=(
            Field(
                "target",
                "string",
                "Target URL",
                required=True,
                secret_url=True,
                help="The request path after the context path is appended to it.",
            ),
        ),
        checks=(_check_target,),
    ),
    shared=SHARED,
    summary=summary,
    target=lambda configuration: configuration.get("target"),
)
