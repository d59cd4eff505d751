"""A lean HTTP/1.1 client for the gateway's calls to backends and callbacks: keep-alive connections
per origin on gevent sockets, each request head (and a small body) written in one send, answers
parsed by llhttp (httptools), bodies streamed both ways.

An idempotent request takes a kept-alive connection without probing it: when the far side closed
it meanwhile, the failed write or the read that ends before the answer's head says so, and the
request goes again once on a new connection (a streamed body only while all that was sent of it is
still held). Other requests are never sent twice (the far side may have acted on them): one goes
on a kept-alive connection only if it has nothing to read (a closed one has its EOF), else on a new
one."""

import itertools
import select  # gevent's once patched, as socket
import socket  # gevent's once the gateway has patched it: looked up at each call
import ssl
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httptools
from gevent.lock import Semaphore

from .sockets import QuickSocket, quick

IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))
READ_SIZE = 64 * 1024
HELD_BODY = 2 * READ_SIZE  # of a streamed body, kept while sent so that it can be sent again
REDIRECTS = frozenset((301, 302, 303, 307, 308))
MAX_REDIRECTS = 5
# Sent on when a redirect leads to another origin: they were meant for the first one only.
ORIGIN_BOUND = frozenset(("authorization", "cookie", "proxy-authorization", "host"))
BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))  # a Content-Length: 0 when they have no body


class ClientError(Exception):
    """The exchange failed; `str()` says how, without addresses (callers name the far side)."""


class ConnectFailed(ClientError):
    """No connection: refused, no route, no such host; `key` says which, as Gravitee's error key."""

    def __init__(self, message: str, key: str = "GATEWAY_CLIENT_CONNECTION_ERROR") -> None:
        super().__init__(message)
        self.key = key


class ConnectTimedOut(ClientError):
    pass


class TlsFailed(ClientError):
    pass


class ReadTimedOut(ClientError):
    pass


class ConnectionLost(ClientError):
    """The connection broke (or the answer was not HTTP) before the answer was whole."""


class Origin:
    """scheme://host:port of a URL, parsed once; `authority` is its Host header."""

    __slots__ = ("tls", "host", "port", "authority")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        default = 443 if self.tls else 80
        self.port = parts.port or default
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = name if self.port == default else f"{name}:{self.port}"

    @property
    def key(self) -> tuple[bool, str, int]:
        return self.tls, self.host, self.port


def split_url(url: str) -> tuple[Origin, str]:
    """The origin and the request target (path and query) of an absolute URL."""
    parts = urlsplit(url)
    return Origin(url), (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Exchange:
    """The parser's callbacks for one answer; after a 1xx the next message starts over."""

    __slots__ = ("parser", "head_only", "status", "reason", "headers", "chunks", "head_done", "done", "keep_alive")

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.chunks: list[bytes] = []
        self.head_done = self.done = self.keep_alive = False
        self.on_message_begin()

    def on_message_begin(self) -> None:
        self.reason = b""
        self.headers: list[tuple[str, str]] = []

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            return  # 100 Continue and the like: the real answer follows
        self.head_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:  # the answer to a HEAD has no body, whatever Content-Length says
            self.done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.done = True

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ConnectionLost(f"not an HTTP answer ({exc})") from None

    def delimited_by_eof(self) -> bool:
        """An answer without Content-Length or chunked framing ends when the connection does."""
        names = {name.lower() for name, _ in self.headers}
        return self.head_done and "content-length" not in names and "transfer-encoding" not in names


class Response:
    """An answer whose head came: the body is read as it is iterated. Closing it (always) gives the
    connection back to its pool when the body was read to its end, or closes it."""

    __slots__ = ("pool", "sock", "exchange", "status", "reason", "headers")

    def __init__(self, pool: "Pool", sock: Any, exchange: Exchange) -> None:
        self.pool, self.sock, self.exchange = pool, sock, exchange
        self.status = exchange.status
        self.reason = exchange.reason.decode("latin-1")
        self.headers = exchange.headers

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        try:
            while True:
                if exchange.chunks:
                    chunks, exchange.chunks = exchange.chunks, []
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if exchange.done or self.sock is None:
                    break
                data = receive(self.sock.recv)
                if data:
                    exchange.feed(data)
                elif exchange.delimited_by_eof():
                    exchange.done, exchange.keep_alive = True, False
                else:
                    raise ConnectionLost("the connection closed before the end of the answer")
        finally:
            self.close()  # back to the pool as soon as the body is read (or dropped when it was not)

    def read(self) -> bytes:
        return b"".join(self)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            self.pool.give_back(sock, self.exchange.done and self.exchange.keep_alive)


def receive(recv: Any) -> bytes:
    try:
        return recv(READ_SIZE)
    except OSError as exc:
        raise failure(exc, "no answer in time") from None


def failure(exc: OSError, late: str) -> ClientError:
    """What a socket error on an open connection means; `late` says what did not come in time."""
    if isinstance(exc, TimeoutError):
        return ReadTimedOut(late)
    if isinstance(exc, ssl.SSLError):
        return TlsFailed(str(exc))
    return ConnectionLost(str(exc))


class Pool:
    """Connections to one origin: at most `max_connections`, callers waiting for a free one; idle
    ones kept for `idle_timeout` seconds (None: as long as the far side keeps them)."""

    def __init__(self, origin: Origin, client: "HttpClient") -> None:
        self.origin, self.client = origin, client
        self.idle: deque[tuple[Any, float]] = deque()
        self.slots = Semaphore(client.max_connections)

    def take(self, fresh: bool = False) -> tuple[Any, bool]:
        """(a connection, whether it was kept alive from an earlier request); holds a slot."""
        self.slots.acquire()
        try:
            idle_timeout = self.client.idle_timeout
            if idle_timeout is not None:
                oldest_kept = time.monotonic() - idle_timeout
                while self.idle and self.idle[0][1] < oldest_kept:
                    self.idle.popleft()[0].close()
            if self.idle and not fresh:
                return self.idle.pop()[0], True  # the most recently used: the likeliest alive
            return self.connect(), False
        except BaseException:
            self.slots.release()
            raise

    def give_back(self, sock: Any, reusable: bool) -> None:
        if reusable and self.client.keep_alive:
            self.idle.append((sock, time.monotonic()))
        else:
            sock.close()
        self.slots.release()

    def connect(self) -> Any:
        client, origin = self.client, self.origin
        try:
            sock = socket.create_connection((origin.host, origin.port), timeout=client.connect_timeout)
        except TimeoutError:
            raise ConnectTimedOut("no connection in time") from None
        except ConnectionRefusedError as exc:
            raise ConnectFailed(str(exc), "GATEWAY_CLIENT_CONNECTION_REFUSED") from None
        except socket.gaierror as exc:
            raise ConnectFailed(str(exc), "GATEWAY_CLIENT_DNS_RESOLUTION_ERROR") from None
        except (OSError, UnicodeError) as exc:
            raise ConnectFailed(str(exc)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not origin.tls:
                sock = quick(sock)
            else:
                # No context of its own: an http:// target redirected to https://, as a browser would go.
                context = client.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=origin.host)
        except TimeoutError:
            sock.close()
            raise ConnectTimedOut("no TLS handshake in time") from None
        except ssl.SSLError as exc:
            sock.close()
            raise TlsFailed(str(exc)) from None
        except OSError as exc:
            sock.close()
            raise TlsFailed(str(exc) or type(exc).__name__) from None
        sock.settimeout(client.read_timeout)
        return sock

    def close(self) -> None:
        while self.idle:
            self.idle.popleft()[0].close()


def request_head(method: str, target: str, headers: dict[str, str], framing: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n", framing]
    for name, value in headers.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"the header {name} spans lines")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class HttpClient:
    """Pools per origin; `request` sends and returns the Response once its head came."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        idle_timeout: float | None = None,
        keep_alive: bool = True,
    ) -> None:
        self.ssl_context = ssl_context
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_connections, self.idle_timeout, self.keep_alive = max_connections, idle_timeout, keep_alive
        self.pools: dict[tuple[bool, str, int], Pool] = {}

    def pool(self, origin: Origin) -> Pool:
        pool = self.pools.get(origin.key)
        if pool is None:
            pool = self.pools[origin.key] = Pool(origin, self)
        return pool

    def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Any = None,
        follow_redirects: bool = False,
    ) -> Response:
        """`body`: None, bytes, or a stream (`.read(size)` or an iterable of bytes), sent chunked
        unless the headers give its Content-Length. Raises ClientError."""
        for _ in range(MAX_REDIRECTS):
            response = self.send(self.pool(origin), method, target, headers, body)
            location = response.header("Location") if follow_redirects and response.status in REDIRECTS else None
            if location is None or not (body is None or isinstance(body, bytes)):
                return response
            response.read()
            url = urljoin(f"{'https' if origin.tls else 'http'}://{origin.authority}{target}", location)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), None
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "content-type")}
            new_origin, target = split_url(url)
            if new_origin.key != origin.key:
                headers = {k: v for k, v in headers.items() if k.lower() not in ORIGIN_BOUND}
            origin = new_origin
        return self.send(self.pool(origin), method, target, headers, body)

    def send(self, pool: Pool, method: str, target: str, headers: dict[str, str], body: Any) -> Response:
        names = {name.lower() for name in headers}
        framing = ("" if "host" in names else f"Host: {pool.origin.authority}\r\n") + (
            "" if self.keep_alive else "Connection: close\r\n"
        )
        sized = "content-length" in names
        if body is None or isinstance(body, bytes):
            if not sized and (body is not None or method in BODY_METHODS):
                framing += f"Content-Length: {len(body or b'')}\r\n"
            request = Sent((request_head(method, target, headers, framing) + (body or b""),), None)
        else:
            framing += "" if sized else "Transfer-Encoding: chunked\r\n"
            request = Sent(streamed(request_head(method, target, headers, framing), body, sized), HELD_BODY)
        sock, kept = pool.take()
        if kept and method not in IDEMPOTENT and closed_while_idle(sock):
            # Sent twice, a POST may act twice: it goes only on a connection seen open just before.
            pool.give_back(sock, False)
            sock, kept = pool.take(fresh=True)
        try:
            return self.exchange(pool, sock, request, method, retry=kept and method in IDEMPOTENT)
        except _Stale:
            return self.exchange(pool, pool.take(fresh=True)[0], request.again(), method, retry=False)

    def exchange(self, pool: Pool, sock: Any, request: "Sent", method: str, retry: bool) -> Response:
        """Send the request and read the answer's head. _Stale when `retry` (an idempotent request
        on a kept-alive connection), all that was sent is held, and the connection turned out closed."""
        exchange = Exchange(method == "HEAD")
        try:
            try:
                for part in request:
                    sock.sendall(part)
            except OSError as exc:
                raise failure(exc, "the request could not be sent in time") from None
            recv = sock.recv_answer if isinstance(sock, QuickSocket) else sock.recv
            while not exchange.head_done:
                chunk = receive(recv)
                if not chunk:
                    raise ConnectionLost("the connection closed before the status and headers of an answer")
                exchange.feed(chunk)
                recv = sock.recv
        except (ConnectionLost, TlsFailed) as exc:
            pool.give_back(sock, False)
            if retry and request.held:
                raise _Stale(str(exc)) from None
            raise
        except BaseException:
            pool.give_back(sock, False)
            raise
        return Response(pool, sock, exchange)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


def closed_while_idle(sock: Any) -> bool:
    """An idle kept-alive connection with something to read has been closed by the far side (or
    holds bytes no request asked for): either way it cannot carry a request."""
    if isinstance(sock, QuickSocket):
        return sock.readable_now()
    try:  # TLS: what the kernel holds may be a record of the TLS layer's own (a close_notify)
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed meanwhile
        return True


def streamed(head: bytes, body: Any, sized: bool) -> Iterator[bytes]:
    """The request head with the body's first chunk (one send for a small upload), then the rest,
    chunked unless sized."""
    chunks: Iterable[bytes] = iter(lambda: body.read(READ_SIZE), b"") if hasattr(body, "read") else body
    pending = head
    for chunk in chunks:
        if chunk:
            yield pending + (chunk if sized else b"%x\r\n%b\r\n" % (len(chunk), chunk))
            pending = b""
    if pending or not sized:
        yield pending if sized else pending + b"0\r\n\r\n"


class Sent:
    """A request's parts as they are sent, the first ones kept (up to `limit` bytes, None: all),
    so that a request whose kept-alive connection was found closed can go again on a new one
    while everything sent of it is still held: the rest of a streamed body is then read on."""

    __slots__ = ("parts", "kept", "size", "limit", "held")

    def __init__(self, parts: Iterable[bytes], limit: int | None) -> None:
        self.parts, self.limit = iter(parts), limit
        self.kept: list[bytes] = []
        self.size, self.held = 0, True

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if self.held:
                self.size += len(part)
                self.held = self.limit is None or self.size <= self.limit
                self.kept.append(part)
            yield part

    def again(self) -> "Sent":
        return Sent(itertools.chain(self.kept, self.parts), 0)


class _Stale(Exception):
    """A kept-alive connection found closed: send the request again on a new one."""
