"""The gateway port's HTTP/1.1 connections: read a head whole, check it (framing.read_head), call
the application (a WSGI callable, as under gunicorn), write its response, and go on with the
next request, pipelined or not, while the connection is kept alive; over TLS (tls.py) when
GATEHOUSE_GATEWAY_TLS_CERT and _KEY are set.

The limits are listeners.py's, as on the portal's pywsgi listener: the header timeout (408 once
the request line came), the keep-alive timeout, the connection cap, the write timeout, and on
close() the idle connections end while those serving a request finish it (answered with
`Connection: close`); a connection still open at the end of the shutdown grace is cut
(GreenletExit).
"""

import logging
import re
import socket
import sys
from urllib.parse import unquote_to_bytes

from gevent import Timeout
from gevent.server import StreamServer

from ..framing import (
    MAX_HEADERS,
    MAX_LINE,
    MAX_REQUEST_LINE,
    BadFraming,
    line_too_long,
    read_head,
    refused,
    request_line_too_long,
    too_many_headers,
)
from ..http import UPGRADE
from ..listeners import REQUEST_TIMEOUT_ANSWER, HeaderTimeout, LimitedServer, wait_idle
from ..sockets import recv_now
from .body import RequestBody
from .response import CONTINUE, SERVER_ERROR, Response

log = logging.getLogger("gatehouse.server")

RECEIVE_BYTES = 65536
DISCARD_BYTES = 65536  # a body the application left unread, up to this, is skipped to keep the connection
LINGER_SECONDS = 2.0
HEAD_END = re.compile(rb"\r?\n\r?\n")  # RFC 9112, 2.2: a bare LF ends a line too


class GatewayServer(LimitedServer, StreamServer):
    def __init__(self, listener, application, limits, max_connections, tls=None):
        """`tls`: a tls.GatewayTls for HTTPS and WSS, None for plain HTTP."""
        super().__init__(listener, self._serve, limits, max_connections)
        self.application = application
        self.tls = tls
        self.environ = {}

    def init_socket(self):
        super().init_socket()
        host, port = self.address[:2]
        self.environ = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_SOFTWARE": "gatehouse",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http" if self.tls is None else "https",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }

    def start(self):
        super().start()
        if self.tls is not None:
            self.tls.start()

    def close(self):
        super().close()
        if self.tls is not None:
            self.tls.close()

    def _serve(self, sock, address):
        Connection(self, sock, address).serve()


class Connection:
    __slots__ = ("server", "sock", "address", "base", "data", "taken", "response")

    def __init__(self, server, sock, address):
        self.server, self.sock, self.address = server, sock, address
        self.base = server.environ  # each request's environ starts as a copy
        self.data = b""  # received and not used yet: the start of a next request, pipelined
        self.taken = False  # handed over to the application (UPGRADE)
        self.response = None

    def serve(self):
        try:
            head = self.next_head(first=True)
            while head is not None and self.exchange(*head):
                head = self.next_head(first=False)
        except OSError:  # reset by the client, or dropped by the write timeout: nothing to answer
            pass
        finally:
            self.sock.close()

    # ----- the connection's bytes -----
    def receive(self):
        """What was received and not used yet, or else the next bytes (b"" once the client closed)."""
        data, self.data = self.data, b""
        return data or self.sock.recv(RECEIVE_BYTES)

    def unread(self, data):
        self.data = data + self.data

    def take(self):
        """UPGRADE: the connection, for a protocol that replaces HTTP on it. The server writes
        nothing on it any more and closes it once the application returns. A client sends
        nothing more before the server's answer to its upgrade request (RFC 6455, 4.1), so
        nothing received is left behind."""
        self.taken = True
        return self.sock

    # ----- one request -----
    def next_head(self, first):
        """(method, target, version, fields) of the next request; None when the connection ends."""
        limits = self.server.limits
        if not first:
            if self.server.closed:
                return None  # no request after the one in hand
            if not self.data:
                try:
                    self.data = recv_now(self.sock, RECEIVE_BYTES)
                except OSError:  # reset: as uninteresting as a close
                    return None
                if self.data is None:
                    self.data = wait_idle(self.server, limits.keepalive_timeout, lambda: self.sock.recv(RECEIVE_BYTES))
                if not self.data:
                    return None
        deadline = None
        answer = None
        try:
            if not first or self.server.tls is None:
                end = HEAD_END.search(self.data)
                if end is not None:  # the whole head is here: no deadline to keep
                    head, self.data = self.data[: end.end()], self.data[end.end() :]
                    return read_head(head)
            # From the accept (first request) or the first byte (later ones) to the end of the headers.
            deadline = Timeout.start_new(limits.header_timeout, HeaderTimeout)
            if first and self.server.tls is not None and not self.secure():
                return None
            return self._receive_head()
        except HeaderTimeout:
            if b"\n" in self.data:  # past the request line: answered, as on the portal's listener
                answer = REQUEST_TIMEOUT_ANSWER
        except BadFraming as error:
            answer = refused(self.server, self.address, error)[1]
        finally:
            if deadline is not None:
                deadline.close()
        if answer is not None:
            self.sock.sendall(answer)
            if answer is not REQUEST_TIMEOUT_ANSWER:
                self.linger()  # the refused request's body may be arriving
        return None

    def secure(self):
        """The TLS handshake; False when the connection ends here, a client speaking plain HTTP
        answered. OSError when the handshake fails."""
        tls = self.server.tls.wrap(self.sock, self.server.limits.write_timeout)
        if tls is None:
            self.linger()  # the plain request's bytes are unread
            return False
        self.sock = tls
        self.base = {**self.server.environ, **self.server.tls.handshake(tls, self.address)}
        return True

    def _receive_head(self):
        guard = HeadGuard()
        searched = 0
        while (end := HEAD_END.search(self.data, searched)) is None:
            guard.check(self.data)
            searched = max(0, len(self.data) - 3)
            received = self.sock.recv(RECEIVE_BYTES)
            if not received:
                return None  # the client closed: between requests, or giving up on one
            self.data += received
        head, self.data = self.data[: end.end()], self.data[end.end() :]
        return read_head(head)

    def exchange(self, method, target, version, fields):
        """Serves one request; whether the connection serves a next one."""
        environ = self.environ(method, target, version, fields)
        length = environ.get("CONTENT_LENGTH")
        chunked = "HTTP_TRANSFER_ENCODING" in environ  # framing.check_framing: it ends with chunked
        expects = (
            (length or chunked)
            and version == "HTTP/1.1"  # an HTTP/1.0 client is never sent a 1xx (RFC 9110, 15.2)
            and environ.get("HTTP_EXPECT", "").lower() == "100-continue"
        )
        body = RequestBody(self, int(length or 0), chunked, self.send_continue if expects else None)
        environ["wsgi.input"] = body
        asked_close = "close" in environ.get("HTTP_CONNECTION", "").lower() or version != "HTTP/1.1"

        def must_close():  # a client still waiting for 100 Continue may never send the body: not read past it
            return asked_close or self.server.closed or body.send_continue is not None

        response = self.response = Response(self.sock, method == "HEAD", version == "HTTP/1.1", must_close)
        try:
            result = self.server.application(environ, response.start_response)
            if self.taken:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                # What still waits on the connection (simple_websocket's reader, in its selector) sees it end.
                self.sock.shutdown(socket.SHUT_RDWR)
                return False
            response.send(result)
        except OSError:
            raise
        except Exception:
            log.exception("the gateway failed on %s %s", method, target)
            if not response.started:
                self.sock.sendall(SERVER_ERROR)
            return False
        finished = False
        if not (response.close or self.server.closed):
            if body.done:
                return True
            with Timeout(self.server.limits.keepalive_timeout, False):
                finished = body.finish(DISCARD_BYTES)
            if finished:
                return True
        if not body.done:
            self.linger()
        return False

    def linger(self):
        """Before closing a connection on which a body may still arrive: unread bytes at the close
        would have the kernel reset the connection, which can discard the answer before the
        client reads it. So the client is sent the end (it reads the answer, then an end of
        file) and what it still sends is read and dropped, for a while."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            with Timeout(LINGER_SECONDS, False):
                while self.sock.recv(RECEIVE_BYTES):
                    pass
        except OSError:
            pass

    def send_continue(self):
        if not self.response.started:
            self.sock.sendall(CONTINUE)

    def environ(self, method, target, version, fields):
        environ = self.base.copy()
        path, _, query = target.partition("?")
        environ.update(
            REQUEST_METHOD=method,
            PATH_INFO=unquote_to_bytes(path).decode("latin-1"),
            QUERY_STRING=query,
            REQUEST_URI=target,
            SERVER_PROTOCOL=version,
            REMOTE_ADDR=str(self.address[0]),
            REMOTE_PORT=str(self.address[1]),
        )
        environ[UPGRADE] = self.take
        for name, value in fields:
            if "_" in name:  # as pywsgi: X_Forwarded_For would read as X-Forwarded-For
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if value:
                    environ.setdefault(key, value)
                continue
            key = "HTTP_" + key
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                environ[key] = value
        return environ


class HeadGuard:
    """Refuses a head still arriving once it cannot pass read_head (a line too long, too many
    lines), so that a client cannot make the server hold more than a head may take."""

    __slots__ = ("scanned", "lines")

    def __init__(self):
        self.scanned = self.lines = 0

    def check(self, data):
        while True:
            newline = data.find(b"\n", self.scanned)
            length = (len(data) if newline < 0 else newline + 1) - self.scanned
            if not self.lines and length > MAX_REQUEST_LINE:
                raise request_line_too_long()
            if self.lines and length > MAX_LINE:
                raise line_too_long()
            if newline < 0:
                return
            self.lines += 1
            self.scanned = newline + 1
            if self.lines > MAX_HEADERS + 1:
                raise too_many_headers()
