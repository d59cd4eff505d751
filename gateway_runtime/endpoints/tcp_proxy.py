"""TCP proxy endpoint: opens the connection to the backend (over TLS when the target is `secured`)
for one client connection that the TCP listener routed to this API by its SNI host name.

The SSL settings are http-proxy's (the same Gravitee `sslOptions` schema): their fields, the client
context and the reading of the outbound proxy settings come from outbound_http. Through a SOCKS4
or SOCKS5 proxy (given, or the system's) the connection is opened by PySocks, the host name
resolved by the proxy.
"""

import logging
import socket
import ssl
from urllib.parse import urlsplit

import socks

from ..messages import EndpointConnector, EndpointError
from ..outbound_http import SECTIONS as OUTBOUND_SECTIONS
from ..outbound_http import (
    SSL_FIELDS,
    check_proxy_and_tls,
    outbound_proxy,
    proxy_fields,
    ssl_context,
    tls_and_proxy_summary,
)
from ..settings import Field, Settings, get_path, summary_line
from ..specs import EndpointSpec
from ..toolkit.reconnect import Reconnect

log = logging.getLogger("gatehouse.tcp")


class TcpProxyEndpoint(EndpointConnector):
    def __init__(self, configuration, shared):
        super().__init__(configuration, shared)
        target = configuration["target"]
        self.host, self.port, self.secured = target["host"], target["port"], target["secured"]
        tcp = shared["tcp"]
        self.connect_timeout = tcp["connectTimeout"] / 1000 or None  # 0: no timeout, as in Gravitee
        self.reconnect = Reconnect((tcp["reconnectInterval"] / 1000,), attempts=1 + tcp["reconnectAttempts"])
        self.idle_timeouts = IdleTimeouts(
            tcp["idleTimeout"] / 1000, tcp["readIdleTimeout"] / 1000, tcp["writeIdleTimeout"] / 1000
        )
        self.ssl_context = ssl_context(shared.get("ssl") or {}) if self.secured else None
        self.proxy = outbound_proxy(shared.get("proxy") or {}, f"tcp://{self.address}")
        self.open = set()  # backend sockets of connections in progress, closed by close()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def connect(self):
        """A connected backend socket (TLS-wrapped when secured); raises EndpointError saying why not."""
        sock = self._connect_with_retries()
        if self.ssl_context is not None:
            try:
                sock.settimeout(self.connect_timeout)
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            except ssl.SSLCertVerificationError as exc:
                sock.close()
                raise EndpointError(
                    f"TLS verification of the backend {self.address} failed: "
                    f"{exc.verify_message or exc.reason}; add the CA that signed its "
                    "certificate to the trust store"
                ) from None
            except OSError as exc:  # ssl.SSLError included
                sock.close()
                raise EndpointError(
                    f"the TLS handshake with the backend {self.address} failed: {getattr(exc, 'reason', None) or exc}"
                ) from None
        sock.settimeout(None)
        self.open.add(sock)
        return sock

    def _connect_with_retries(self):
        for _ in self.reconnect.tries(wait_first=False):
            try:
                sock = self._open()
            except socks.ProxyConnectionError as exc:
                reason = f"the outbound proxy {self.proxy.address} cannot be reached: {exc.socket_err or exc}"
            except OSError as exc:  # through a proxy, socks.ProxyError: what the proxy said
                reason = (
                    "timed out"
                    if isinstance(exc, TimeoutError)
                    else (getattr(exc, "msg", None) or exc.strerror or str(exc))
                )
            else:
                # Interactive protocols send small writes; Nagle's algorithm would hold them back.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
        via = f" through the proxy {self.proxy.address}" if self.proxy is not None else ""
        raise EndpointError(
            f"the backend {self.address} cannot be reached{via} ({reason}) after {self.reconnect.attempts} attempt(s)"
        )

    def _open(self):
        if self.proxy is None:
            return socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        proxy = urlsplit(self.proxy.url)
        kind = {"socks4": socks.SOCKS4, "socks4a": socks.SOCKS4, "socks5": socks.SOCKS5, "socks5h": socks.SOCKS5}.get(
            proxy.scheme
        )
        if kind is None:  # PySocks would tunnel through HTTP CONNECT, but without the proxy's credentials
            raise EndpointError(
                f"the system proxy {self.proxy.address} is an HTTP proxy: TCP connections go only "
                "through a SOCKS4 or SOCKS5 proxy (set ALL_PROXY to one, e.g. socks5://host:1080)"
            )
        return socks.create_connection(
            (self.host, self.port),
            timeout=self.connect_timeout,
            proxy_type=kind,
            proxy_addr=proxy.hostname,
            proxy_port=proxy.port,
            proxy_rdns=True,
            proxy_username=self.proxy.username,
            proxy_password=self.proxy.password,
        )

    def release(self, sock):
        self.open.discard(sock)
        sock.close()

    def close(self):
        """On retirement: connections still open after the drain are cut (their relays then end)."""
        for sock in list(self.open):
            self.release(sock)


class IdleTimeouts:
    """Gravitee's TCP client idle timeouts in seconds (0: none), seen from the backend connection:
    `read` is data from the backend, `write` data to it, `idle` either."""

    __slots__ = ("idle", "read", "write")

    def __init__(self, idle, read, write):
        self.idle, self.read, self.write = idle, read, write

    def deadline(self, last_read, last_write):
        """When the connection is idle too long given its last read and write (None: never)."""
        deadlines = [
            last + limit
            for last, limit in (
                (max(last_read, last_write), self.idle),
                (last_read, self.read),
                (last_write, self.write),
            )
            if limit
        ]
        return min(deadlines, default=None)


SHARED = Settings(
    fields=(
        Field(
            "tcp.connectTimeout",
            "integer",
            "Connect timeout (ms)",
            default=3000,
            minimum=0,
            help="0: wait as long as the operating system does.",
        ),
        Field(
            "tcp.reconnectAttempts",
            "integer",
            "Reconnect attempts",
            default=3,
            minimum=0,
            help="Tries after the first failed connection; 0: no retry.",
        ),
        Field("tcp.reconnectInterval", "integer", "Reconnect interval (ms)", default=1000, minimum=0),
        Field(
            "tcp.idleTimeout",
            "integer",
            "Idle timeout (ms)",
            default=0,
            minimum=0,
            help="Close the connection when no data went either way for this long; 0: never.",
        ),
        Field(
            "tcp.readIdleTimeout",
            "integer",
            "Read idle timeout (ms)",
            default=0,
            minimum=0,
            help="Close the connection when the backend sent nothing for this long; 0: never.",
        ),
        Field(
            "tcp.writeIdleTimeout",
            "integer",
            "Write idle timeout (ms)",
            default=0,
            minimum=0,
            help="Close the connection when nothing was sent to the backend for this long; 0: never.",
        ),
        *proxy_fields(("SOCKS4", "SOCKS5"), "SOCKS5"),
        *SSL_FIELDS,
    ),
    checks=(check_proxy_and_tls,),
    sections=(("tcp", "TCP"), *OUTBOUND_SECTIONS),
)

SPEC = EndpointSpec(
    type="tcp-proxy",
    label="TCP proxy",
    connector=TcpProxyEndpoint,
    api_types=("proxy",),
    qos=("auto",),
    listener="tcp",
    description="Relays the bytes of a TLS client connection to a TCP backend.",
    configuration=Settings(
        fields=(
            Field("target.host", "string", "Target host", required=True, help="Backend host name or IP address."),
            Field("target.port", "integer", "Target port", required=True, minimum=1, maximum=65535),
            Field(
                "target.secured",
                "boolean",
                "Connect to the target over TLS",
                default=False,
                help="The SSL settings say which certificates to trust.",
            ),
        )
    ),
    shared=SHARED,
    summary=lambda shared: summary_line(*tls_and_proxy_summary(shared)),
    target=lambda configuration: (
        f"{get_path(configuration, 'target.host')}:{get_path(configuration, 'target.port')}"
        + (" (TLS)" if get_path(configuration, "target.secured") else "")
    ),
)
