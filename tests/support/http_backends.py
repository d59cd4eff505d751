"""HTTP backends of the proxy tests: stdlib servers on free ports that echo each request as JSON and
name themselves in X-Backend, and what an outbound proxy's log says it carried."""

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support.gatehouse import free_port


class Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: don't hold the body back

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _body_size(self):
        """Reads the whole body, chunked or not, keeping only its size."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self._drain(int(self.headers.get("Content-Length") or 0))
        size = 0
        while length := int(self.rfile.readline().strip(), 16):
            size += self._drain(length)
            self.rfile.readline()
        self.rfile.readline()
        return size

    def _drain(self, length):
        size = 0
        while size < length:
            size += len(self.rfile.read(min(length - size, 1 << 20)))
        return size

    def do_GET(self):
        if self.path.startswith("/health"):
            self._send(getattr(self.server, "health_status", 200), getattr(self.server, "health_body", b"{}"))
            return
        if self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                event = f"id: {i}\ndata: event {i} at {time.monotonic()}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                time.sleep(0.5)
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/slow"):
            time.sleep(3)
        if self.path.startswith("/redirect-to-self"):
            landing = f"http://127.0.0.1:{self.server.server_address[1]}/landing"
            self._send(302, f"moved to {landing}".encode(), "text/plain", [("Location", landing)])
            return
        self.echo()

    def do_POST(self):
        if self.path.startswith("/xml"):  # what it was sent, inside an XML element
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(200, b"<echo>" + body + b"</echo>", "application/xml")
            return
        self.echo(self._body_size())

    do_PUT = do_POST
    do_DELETE = do_GET

    def echo(self, size=0):
        self._send(
            200,
            json.dumps(
                {
                    "backend": self.server.name,
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "size": size,
                }
            ).encode(),
            extra=[("X-Backend", self.server.name), ("Connection", "keep-alive")],
        )


def start_backend(name, start=True, host="127.0.0.1"):
    server = ThreadingHTTPServer((host, free_port()), Backend)
    server.name = name
    server.daemon_threads = True
    if start:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


def carried(log, address, times=1, timeout=5):
    """Did the proxy log (at least `times`) connections to this address (within the timeout)?"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text().count(f"-> {address}") >= times:
            return True
        time.sleep(0.05)
    return False


class JsonHandler(BaseHTTPRequestHandler):
    """Answers every GET with the JSON of payload()."""

    def payload(self):
        raise NotImplementedError

    def do_GET(self):
        body = json.dumps(self.payload()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(handler):
    """A stdlib server of `handler` on a free port, serving in a thread of its own."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


class Keeper(Backend):
    """Keeps the body of each POST or PUT as it arrived, de-chunked (in `server.bodies`), and
    answers its size; HEAD gets the headers a GET would."""

    def do_POST(self):
        body = self._body()
        self.server.bodies.append(body)
        self._send(200, json.dumps({"size": len(body)}).encode())

    do_PUT = do_POST

    def do_HEAD(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while length := int(self.rfile.readline().strip(), 16):
            chunks.append(self.rfile.read(length))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)


def start_keeper():
    """A Keeper on a free port, serving in a thread of its own."""
    server = start_backend("keeper")
    server.RequestHandlerClass = Keeper
    server.bodies = []
    return server


class CountingServer(ThreadingHTTPServer):
    """A backend that counts its connections (opened and closed) and keeps the method of each
    request it read; it may drop a connection right after answering on it (`drop_after_answer`:
    a kept-alive connection the backend closes without a word) and cut its answers to POSTs
    after half a head (`cut_posts`)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", free_port()), CountingBackend)
        self.connections = self.closed = 0
        self.methods = []
        self.drop_after_answer = self.cut_posts = False
        self.changed = threading.Condition()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def count(self, what):
        with self.changed:
            setattr(self, what, getattr(self, what) + 1)
            self.changed.notify_all()

    def shutdown_request(self, request):
        super().shutdown_request(request)
        self.count("closed")

    def wait_closed(self, count, timeout=5):
        """True once `count` connections have been closed by the backend."""
        with self.changed:
            return self.changed.wait_for(lambda: self.closed >= count, timeout)

    def stop(self):
        self.shutdown()
        self.server_close()


class CountingBackend(Backend):
    """Answers with the size and SHA-256 of the body it read, as CountingServer says; a path
    under /moved is redirected (302) to the same path without it."""

    def setup(self):
        super().setup()
        self.server.count("connections")

    def _drain(self, length):
        data = self.rfile.read(length)
        self.digest.update(data)
        return len(data)

    def do_GET(self):
        self.digest = hashlib.sha256()
        size = self._body_size()
        self.server.methods.append(self.command)
        if self.path.startswith("/moved/"):
            self._send(302, b"", extra=[("Location", self.path.removeprefix("/moved"))])
            return
        if self.command == "POST" and self.server.cut_posts:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Le")
            self.close_connection = True
            return
        answer = {"path": self.path, "size": size, "sha256": self.digest.hexdigest()}
        self._send(200, json.dumps(answer).encode())
        self.close_connection = self.server.drop_after_answer

    do_POST = do_GET


ANSWER = bytes(range(256)) * 800  # 200 KB: the whole of it must arrive


class SlowBackend(BaseHTTPRequestHandler):
    """GET /slow?seconds=N answers ANSWER after N seconds (`arrived` is set when a request comes, and
    its path added to `arrivals`);
    any POST or PUT is read to its end, chunked or not, and noted in `complete` only if it was whole."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.arrivals.append(self.path)
        self.server.arrived.set()
        time.sleep(float(self.path.partition("seconds=")[2] or 0))
        self._answer(ANSWER)

    def do_POST(self):
        try:
            body = (
                self._chunked()
                if self.headers.get("Transfer-Encoding")
                else self._exactly(int(self.headers.get("Content-Length") or 0))
            )
        except (OSError, ValueError):  # cut short: the gateway gave up on the request
            self.close_connection = True
            return
        self.server.complete.append(body)
        self._answer(b"stored")

    do_PUT = do_POST

    def _exactly(self, size):
        data = self.rfile.read(size)
        if len(data) < size:
            raise EOFError("the body ended early")
        return data

    def _chunked(self):
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self._exactly(size)
            self._exactly(2)
        if self.rfile.readline() != b"\r\n":
            raise EOFError("no end of the chunked body")
        return body

    def _answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # not the stdlib's 5: many requests at once must not wait for SYN retries


def start_slow_backend():
    """A SlowBackend on a free port, serving in threads of its own."""
    httpd = SlowServer(("127.0.0.1", 0), SlowBackend)
    httpd.arrived, httpd.arrivals, httpd.complete = threading.Event(), [], []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
