"""What one client may hold on `gatehouse serve`'s listeners: how long it may take to send a
request's headers, how long an idle keep-alive connection stays open, how long it may take in
nothing of what is sent to it, and how many connections each listener serves at once; and how
long requests in flight have to finish when the process is told to stop.

The caps split the process's file descriptors: a flood on the gateway port waits in the
kernel's listen backlog (costing no descriptor here) once the gateway's share is taken, so the
portal, the database and the brokers keep theirs.
"""

import errno
import logging
import os
import resource
import socket
import time
from dataclasses import dataclass

from gevent import GreenletExit, Timeout, getcurrent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer
from gevent.server import StreamServer
from gevent.socket import timeout_default  # type: ignore[attr-defined]  # a sentinel types-gevent leaves out

from .sockets import QuickSocket

log = logging.getLogger("gatehouse.listeners")

HEADER_TIMEOUT = "GATEHOUSE_HEADER_TIMEOUT_SECONDS"
KEEPALIVE_TIMEOUT = "GATEHOUSE_KEEPALIVE_TIMEOUT_SECONDS"
MAX_GATEWAY = "GATEHOUSE_MAX_CONNECTIONS_GATEWAY"
MAX_PORTAL = "GATEHOUSE_MAX_CONNECTIONS_PORTAL"
WRITE_TIMEOUT = "GATEHOUSE_WRITE_TIMEOUT_SECONDS"
SHUTDOWN_GRACE = "GATEHOUSE_SHUTDOWN_GRACE_SECONDS"
# Shares of the descriptors free at start. A gateway connection may hold a backend connection
# too, and a portal one a database connection: each counts twice. The remaining 10 % is for
# the brokers, the webhook deliveries, log and certificate files.
GATEWAY_SHARE = 0.70
PORTAL_SHARE = 0.20
DESCRIPTORS_PER_CONNECTION = 2
ACCEPT_RETRY_SECONDS = 1.0  # after EMFILE: accept again once some descriptor may be free
ACCEPT_WARNING_SECONDS = 60


class SettingError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    keepalive_timeout: float
    max_gateway: int
    max_portal: int
    write_timeout: float = 30.0
    shutdown_grace: float = 30.0

    @classmethod
    def from_environment(cls, free_descriptors, environ=os.environ):
        """The settings, with the caps' defaults taken from the descriptors free at start.
        Raises SettingError naming the setting that is wrong."""

        def share(fraction):
            return max(1, int(free_descriptors * fraction) // DESCRIPTORS_PER_CONNECTION)

        return cls(
            header_timeout=_number(environ, HEADER_TIMEOUT, 10.0, float, "a number of seconds"),
            keepalive_timeout=_number(environ, KEEPALIVE_TIMEOUT, 30.0, float, "a number of seconds"),
            max_gateway=_number(environ, MAX_GATEWAY, share(GATEWAY_SHARE), int, "a whole number"),
            max_portal=_number(environ, MAX_PORTAL, share(PORTAL_SHARE), int, "a whole number"),
            write_timeout=_number(environ, WRITE_TIMEOUT, cls.write_timeout, float, "a number of seconds"),
            shutdown_grace=_number(environ, SHUTDOWN_GRACE, cls.shutdown_grace, float, "a number of seconds"),
        )


def _number(environ, name, default, kind, what):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise SettingError(f"{name} must be {what} greater than 0, not {raw!r}")
    return value


def raise_open_file_limit():
    """The soft RLIMIT_NOFILE up to the hard one (what a flood of connections needs before the
    caps hold it back); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit the kernel caps lower
            log.warning("open-file limit: kept %s, could not raise it to %s: %s", soft, hard, exc)
            return soft
    log.info("open-file limit: %s descriptors%s", hard, f" (raised from {soft})" if hard != soft else "")
    return hard


def open_descriptors():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: count as if every low-numbered descriptor were taken
        return 64


class HeaderTimeout(ValueError):
    """A client took longer than the header timeout to send its request line and headers."""


class Closing(Exception):
    """Thrown into a kept-alive connection waiting for its next request: the server is closing."""


def wait_idle(server, seconds, receive):
    """What `receive` returns, the connection counted meanwhile among the server's idle ones (which
    its close() ends); b"" once the keep-alive timeout passes, the client resets (as uninteresting
    as a close) or the server closes."""
    waiting = getcurrent()
    server.idle.add(waiting)
    try:
        with Timeout(seconds, False):
            return receive()
    except (OSError, Closing):
        pass
    finally:
        server.idle.discard(waiting)
    return b""


class LimitedHandler(WSGIHandler):
    """pywsgi's handler, with a deadline on reading each request's head and on waiting idle for
    the next request. Only the head is timed: a body being uploaded and a response being
    streamed (SSE, WebSocket) take as long as the application lets them (and the client keeps
    reading: see WriteTimedSocket). Once the server is closing, a connection serves no request
    after the one in hand."""

    _requests = 0
    # A client dropped by the write timeout is as uninteresting as one that reset its connection.
    ignored_socket_errors = WSGIHandler.ignored_socket_errors + (errno.ETIMEDOUT,)

    def handle_one_request(self):
        limits = self.server.limits
        if self._requests and (self.server.closed or not self._next_request_arrives(limits.keepalive_timeout)):
            return None  # closes the connection
        self._requests += 1
        # From the accept (first request) or the first byte (later ones) to the end of the headers.
        self._head_deadline = Timeout.start_new(limits.header_timeout, HeaderTimeout)
        try:
            return super().handle_one_request()
        except HeaderTimeout:  # still in the request line: nothing worth answering
            return None
        finally:
            self._head_deadline.close()  # when the head ended early (closed, malformed, too long)

    def read_request(self, raw_requestline):
        try:
            return super().read_request(raw_requestline)
        finally:
            self._head_deadline.close()  # before the application runs

    def _next_request_arrives(self, seconds):
        return bool(wait_idle(self.server, seconds, lambda: self.rfile.peek(1)))

    def handle_error(self, t, v, tb):
        if issubclass(t, GreenletExit):  # cut at the end of the shutdown grace: no answer, the connection ends
            self.close_connection = True
            return
        super().handle_error(t, v, tb)

    def finalize_headers(self):
        super().finalize_headers()
        if (
            self.server.closed
            and not self.connection_upgraded
            and not any(name.lower() == b"connection" for name, _ in self.response_headers)
        ):
            self.response_headers.append((b"Connection", b"close"))  # the client opens its next one elsewhere

    def _handle_client_error(self, ex):
        if isinstance(ex, HeaderTimeout):  # routine for slow clients: no log line each
            return ("408", REQUEST_TIMEOUT_ANSWER)
        return super()._handle_client_error(ex)


REQUEST_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class AcceptGuard:
    """While the process is out of descriptors, accept() fails at once for every waiting client:
    instead of a traceback each time, one warning a minute and a pause before accepting again."""

    _warned = float("-inf")

    def do_read(self):
        try:
            return super().do_read()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            now = time.monotonic()
            if now - AcceptGuard._warned >= ACCEPT_WARNING_SECONDS:
                AcceptGuard._warned = now
                log.warning(
                    "%s: out of file descriptors (%s): new connections wait; lower the "
                    "GATEHOUSE_MAX_CONNECTIONS_* settings or raise the hard open-file limit",
                    self,
                    exc.strerror,
                )
            # gevent's own pause after a failed accept (BaseServer._do_read), without its traceback.
            self.stop_accepting()
            self._timer = self.loop.timer(ACCEPT_RETRY_SECONDS)
            self._timer.start(self._start_accepting_if_started)
            return None


class LimitedServer(AcceptGuard):
    """A listener holding at most `max_connections` connections, each a WriteTimedSocket, that on
    close() ends its idle kept-alive connections: the portal's (LimitedWSGIServer) and the
    gateway's (server.http1.GatewayServer)."""

    def __init__(self, listener, handle, limits, max_connections, **options):
        # A full pool stops the accepting: later clients wait in the listen backlog, holding no descriptor.
        super().__init__(listener, handle, spawn=Pool(max_connections), **options)
        self.limits = limits
        self.idle = set()  # the greenlets of kept-alive connections waiting for their next request
        self.socket_class = type("WriteTimedSocket", (WriteTimedSocket,), {"write_timeout": limits.write_timeout})

    def do_read(self):
        accepted = super().do_read()
        if accepted is None:
            return None
        sock, address = accepted
        return self.socket_class(sock.family, sock.type, sock.proto, fileno=sock.detach()), address

    def close(self):
        """Refuse new connections (the listening socket closes) and close the kept-alive ones
        waiting for a next request; those serving a request close once it is answered."""
        super().close()
        for waiting in list(self.idle):
            self.loop.run_callback(self._close_idle, waiting)

    def _close_idle(self, waiting):
        if waiting in self.idle:  # not woken by a request meanwhile
            waiting.throw(Closing)


class LimitedWSGIServer(LimitedServer, WSGIServer):
    handler_class = LimitedHandler

    def __init__(self, listener, application, limits, max_connections):
        super().__init__(listener, application, limits, max_connections, log=None)


class WriteTimedSocket(QuickSocket):
    """A client's connection whose sends give up once the client has taken in nothing for
    `write_timeout` seconds. The connection is then shut down, so that a client that stopped
    reading (an SSE stream never read, a WebSocket) frees its greenlet and what was held for it,
    whatever the code that was writing does with the error. A class attribute, so that a dup()
    (simple_websocket makes one) keeps it: each listener has a subclass with its own."""

    write_timeout = 30.0

    def send(self, data, flags=0, timeout=timeout_default):
        try:
            return self._sock.send(data, flags)  # the usual case: the kernel takes it at once
        except BlockingIOError:
            pass
        return send_in_time(self, super().send, data, flags, timeout)


def send_in_time(sock, send, *args):
    """send(*args) on `sock`, unless its client takes in nothing for `sock.write_timeout` seconds:
    then the connection is shut down and TimeoutError raised."""
    with Timeout(sock.write_timeout, False):
        return send(*args)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    raise TimeoutError(errno.ETIMEDOUT, f"the client took in nothing for {sock.write_timeout:g} s")


class GuardedStreamServer(AcceptGuard, StreamServer):
    """The TCP port's server: its connections count against the gateway's cap (pass its pool)."""
