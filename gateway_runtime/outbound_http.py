"""Outbound HTTP: the gateway as a client, calling backends (the http-proxy endpoint) and callbacks
(the webhook caller). The gateway's own HTTP/1.1 client (http_client), urllib3 through an outbound
proxy, both behind one interface; TLS to the far side from Gravitee's `sslOptions`,
and the outbound HTTP / SOCKS proxy, with the settings that declare them (the tcp-proxy endpoint
takes the TLS and proxy ones too)."""

import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.contrib.socks import SOCKSProxyManager
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from .http_client import ClientError, ConnectionLost, ConnectTimedOut, HttpClient, ReadTimedOut, TlsFailed
from .messages import READ_CHUNK, EndpointError
from .settings import (
    BINARY_STORES,
    STORE_TYPES,
    Field,
    Member,
    SettingsError,
    get_path,
    gravitee_key_store,
    store_summary,
    trust_store,
)
from .tls.stores import check_gravitee_stores, gravitee_ssl_context

PROXY_ENABLED = ("proxy.enabled", (True,))


def proxy_fields(types=("HTTP", "SOCKS4", "SOCKS5"), default="HTTP"):
    """The `proxy` block: the proxy types a connector can go through, the first its default."""
    return (
        Field("proxy.enabled", "boolean", "Use an outbound proxy", default=False),
        Field("proxy.useSystemProxy", "boolean", "Use the system proxy", default=False, when=PROXY_ENABLED),
        Field("proxy.type", "enum", "Proxy type", default=default, choices=types, when=PROXY_ENABLED),
        Field("proxy.host", "string", "Proxy host", when=PROXY_ENABLED),
        Field("proxy.port", "integer", "Proxy port", minimum=1, maximum=65535, when=PROXY_ENABLED),
        Field("proxy.username", "string", "Proxy user name", when=PROXY_ENABLED),
        Field("proxy.password", "secret", "Proxy password", when=PROXY_ENABLED),
    )


PROXY_FIELDS = proxy_fields()
SSL_FIELDS = (
    Field("ssl.hostnameVerifier", "boolean", "Verify the host name", default=True),
    Field("ssl.trustAll", "boolean", "Trust all certificates", default=False),
    *trust_store(
        "ssl.trustStore",
        Field(
            "ssl.trustStore.type",
            "enum",
            "Trust store type",
            default="NONE",
            choices=STORE_TYPES + ("",),
            help="NONE: the system's certificate authorities.",
        ),
        "path",
        "content",
    ),
    *gravitee_key_store(
        "ssl.keyStore",
        Field(
            "ssl.keyStore.type",
            "enum",
            "Key store type",
            default="NONE",
            choices=STORE_TYPES + ("",),
            help="A client certificate for backends that ask for one.",
        ),
        extra=(
            Member(
                "alias",
                "string",
                "Key alias",
                types=BINARY_STORES,
                help="Which private key of the store (JKS); the first one when empty.",
            ),
            Member("keyPassword", "secret", "Key password", types=BINARY_STORES),
        ),
    ),
)
SECTIONS = (
    ("proxy", "Outbound proxy"),
    ("ssl", "SSL"),
    ("ssl.trustStore", "SSL trust store"),
    ("ssl.keyStore", "SSL key store"),
)


def check_proxy_and_tls(values, settings=None):
    """A check of settings with these blocks: an outbound proxy needs its address unless the
    system's is used; the stores must open."""
    errors = {}
    if get_path(values, "proxy.enabled") and not get_path(values, "proxy.useSystemProxy"):
        for field, label in (("host", "Proxy host"), ("port", "Proxy port")):
            if get_path(values, f"proxy.{field}") in (None, ""):
                errors[f"proxy.{field}"] = f"{label} is required (or use the system proxy)"
    errors.update(
        check_gravitee_stores(get_path(values, "ssl") or {}, "ssl", trust=not get_path(values, "ssl.trustAll"))
    )
    return errors


def tls_and_proxy_summary(shared):
    """The parts of a Backend services summary saying how the far side is reached: stores and proxy."""
    proxy = get_path(shared, "proxy") or {}
    via = proxy.get("enabled") and (
        "system proxy"
        if proxy.get("useSystemProxy")
        else f"{proxy.get('type') or 'HTTP'} proxy {proxy.get('host')}:{proxy.get('port')}"
    )
    return (
        "trust all" if get_path(shared, "ssl.trustAll") else store_summary(shared, "ssl.trustStore"),
        store_summary(shared, "ssl.keyStore", "key"),
        via,
    )


def ssl_context(ssl_settings):
    try:
        return gravitee_ssl_context(ssl_settings)
    except SettingsError as exc:
        raise EndpointError(f"the SSL settings cannot be used: {exc}") from None


@dataclass(frozen=True)
class OutboundProxy:
    url: str
    username: str | None
    password: str | None

    @property
    def address(self):
        return urlsplit(self.url).netloc


def outbound_proxy(options, target):
    """The proxy requests to `target` go through, or None. The system proxy is the one the
    environment names (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), as curl reads it."""
    if not options.get("enabled"):
        return None
    if options.get("useSystemProxy"):
        host = urlsplit(target).hostname or ""
        if urllib.request.proxy_bypass_environment(host):
            return None
        proxies = urllib.request.getproxies_environment()
        url = proxies.get(urlsplit(target).scheme) or proxies.get("all")
        if not url:
            raise EndpointError(
                "the endpoint uses the system proxy, but the gateway's environment names none "
                "(set HTTP_PROXY / HTTPS_PROXY)"
            )
        parts = urlsplit(url if "://" in url else "http://" + url)
        # user:password@ in the variable is for the proxy's authentication, never for messages
        return OutboundProxy(
            f"{parts.scheme}://{parts.hostname}:{parts.port or 80}",
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )
    scheme = {"HTTP": "http", "SOCKS4": "socks4a", "SOCKS5": "socks5h"}[options.get("type", "HTTP")]
    return OutboundProxy(
        f"{scheme}://{options['host']}:{options['port']}", options.get("username"), options.get("password")
    )


def outbound_client(
    proxy, context, *, connect_timeout, read_timeout, max_connections, idle_timeout=None, keep_alive=True
):
    """The client for calls out: the gateway's own (http_client) when they go straight to the far
    side, urllib3 through an outbound HTTP or SOCKS proxy (it speaks their handshakes)."""
    if proxy is None:
        return HttpClient(
            context,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            keep_alive=keep_alive,
        )
    return ProxiedClient(proxy, context, connect_timeout, read_timeout, max_connections, keep_alive)


class ProxiedClient:
    """HttpClient's interface, through an outbound proxy, by a urllib3 pool manager: at most
    `max_connections` per host, callers waiting for a free one; no retries."""

    def __init__(self, proxy, context, connect_timeout, read_timeout, max_connections, keep_alive):
        options = dict(
            num_pools=8,
            maxsize=max_connections,
            block=True,
            retries=False,
            headers={} if keep_alive else {"Connection": "close"},
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            ssl_context=context,
            # urllib3 matches host names itself unless told not to, whatever the context says.
            **({"assert_hostname": False} if context is not None and not context.check_hostname else {}),
        )
        if proxy.url.startswith("socks"):
            self.manager = SOCKSProxyManager(proxy.url, username=proxy.username, password=proxy.password, **options)
            return
        # Spelt as in RFC 9110: some proxies read header names case-sensitively.
        headers = (
            {
                "Proxy-Authorization": urllib3.make_headers(
                    proxy_basic_auth=f"{proxy.username}:{proxy.password or ''}"
                )["proxy-authorization"]
            }
            if proxy.username
            else None
        )
        self.manager = urllib3.ProxyManager(proxy.url, proxy_headers=headers, **options)

    def request(self, origin, method, target, headers, body=None, follow_redirects=False):
        url = f"{'https' if origin.tls else 'http'}://{origin.authority}{target}"
        try:
            response = self.manager.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=follow_redirects,
                preload_content=False,
                decode_content=False,
                chunked=body is not None and not isinstance(body, bytes) and "Content-Length" not in headers,
            )
        except (HTTPError, OSError) as exc:
            raise proxied_failure(exc) from None
        return ProxiedResponse(response)

    def close(self):
        self.manager.clear()


class ProxiedResponse:
    """http_client.Response's interface over urllib3's."""

    __slots__ = ("response", "complete")

    def __init__(self, response):
        self.response, self.complete = response, False

    @property
    def status(self):
        return self.response.status

    @property
    def reason(self):
        return self.response.reason or ""

    @property
    def headers(self):
        return list(self.response.headers.iteritems())

    def __iter__(self):
        response = self.response
        try:
            if response.chunked and response.supports_chunked_reads():
                yield from response.read_chunked(decode_content=False)
            else:
                while chunk := response.read1(READ_CHUNK):
                    yield chunk
        except (ProtocolError, ReadTimeoutError, OSError) as exc:
            raise ConnectionLost(str(exc)) from None
        self.complete = True

    def read(self):
        return b"".join(self)

    def close(self):
        if not self.complete:
            self.response.close()  # a connection with a body left unread cannot be used again
        self.response.release_conn()


class ProxyRefused(ClientError):
    """The outbound proxy did not take the request on (its error follows)."""


class NotThroughProxy(ClientError):
    """The far side cannot be reached through the (SOCKS) proxy: the proxy's words, or why the
    proxy itself cannot be."""


def proxied_failure(exc):
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, ProxyError):
        return ProxyRefused(last_words(reason.original_error))
    if isinstance(reason, NewConnectionError):
        return NotThroughProxy(last_words(reason))
    if isinstance(reason, SSLError):
        return TlsFailed(str(reason))
    # urllib3's NewConnectionError (refused, no route, no such host) derives from ConnectTimeoutError.
    if isinstance(reason, ConnectTimeoutError):
        return ConnectTimedOut(str(reason))
    if isinstance(reason, ReadTimeoutError):
        return ReadTimedOut(str(reason))
    return ConnectionLost(str(reason))


def last_words(exc):
    """What went wrong, without urllib3's preamble."""
    return str(exc).rpartition("new connection: ")[2].strip("'\")") or type(exc).__name__
