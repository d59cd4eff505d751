"""One response on the gateway's server: the status line and headers written with the first
body chunk in one send, the body framed by its Content-Length, chunked, or by the connection's
end (HTTP/1.0); no body at all for HEAD, 1xx, 204 and 304."""

import time
from email.utils import formatdate

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SERVER_ERROR = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
CHUNKED_END = b"0\r\n\r\n"
NO_BODY = ("204", "304")

_date = [0, ""]  # the second, and the Date header of that second


def http_date():
    now = int(time.time())
    if now != _date[0]:
        _date[:] = [now, formatdate(now, usegmt=True)]
    return _date[1]


class Response:
    """`must_close()`, asked as the response starts: whether the connection ends after it (the
    client asked, the server is closing...); the application's headers may add to it (`close`)."""

    __slots__ = (
        "sock",
        "head_only",
        "chunking",
        "must_close",
        "close",
        "status",
        "headers",
        "started",
        "chunked",
        "bodiless",
    )

    def __init__(self, sock, head_only, chunking, must_close):
        self.sock, self.head_only, self.chunking, self.must_close = sock, head_only, chunking, must_close
        self.status = self.headers = None
        self.started = self.chunked = self.bodiless = self.close = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def send(self, result):
        """Writes the application's result, then closes it (WSGI's close(), whatever happened)."""
        try:
            whole = isinstance(result, list) and len(result) == 1  # its length is known before it is sent
            for data in result:
                self.write(data, whole)
            if not self.started:
                self.write(b"", True)
            elif self.chunked:
                self.sock.sendall(CHUNKED_END)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def write(self, data, whole=False):
        if self.started:
            if not data or self.bodiless:
                return
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
            return
        head = self._head(len(data) if whole else None)
        self.started = True
        if self.bodiless or not data:
            self.sock.sendall(head)
        elif self.chunked:
            self.sock.sendall(b"%s%x\r\n%s\r\n" % (head, len(data), data))
        else:
            self.sock.sendall(head + data)

    def _head(self, length):
        if self.status is None:
            raise AssertionError("the application sent a body before calling start_response")
        code = self.status[:3]
        no_body = code in NO_BODY or code[0] == "1"
        self.bodiless = self.head_only or no_body
        self.close = self.must_close()
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        framed = has_connection = has_date = False
        for name, value in self.headers:
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
                raise ValueError(f"response header {name!r} would split the response")
            lower = name.lower()
            if lower == "content-length":
                framed = True
            elif lower == "connection":
                has_connection = True
                self.close = self.close or "close" in value.lower()
            elif lower == "date":
                has_date = True
            lines.append(f"{name}: {value}\r\n")
        if not has_date:
            lines.append(f"Date: {http_date()}\r\n")
        if not framed and not no_body:
            if length is not None:  # for HEAD too: what a GET would be sent
                lines.append(f"Content-Length: {length}\r\n")
            elif self.head_only:
                pass
            elif self.chunking:
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                self.close = True  # HTTP/1.0: the body ends with the connection
        if self.close and not has_connection:
            lines.append("Connection: close\r\n")  # the client opens its next one elsewhere
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")
