"""wsgi.input on the gateway's server: one request's body as the client framed it, read from the
connection only as the application asks for it.

A Content-Length body is counted here; a chunked one is decoded by llhttp. llhttp reads what it is
fed to its end, into the next request if it follows in the same bytes, and does not say where
one ended; but a chunked body ends only at a CRLF CRLF (after its last chunk, trailers, the empty
line). So what arrives is fed in pieces that each end there (rarely more than one): the piece in
which the body ended says where the next request starts.
"""

from httptools import HttpRequestParser

# What llhttp is told of the request: the head itself was read and checked by framing.read_head.
CHUNKED_HEAD = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
BODY_END = b"\r\n\r\n"


class RequestBody:
    """`connection` gives `receive()` (the bytes received and not yet used, or the next ones;
    b"" once the client closed) and `unread(data)`; `send_continue` is called before the first
    read when the client waits for a 100 Continue."""

    def __init__(self, connection, length, chunked, send_continue=None):
        self.connection = connection
        self.send_continue = send_continue
        self.pending = bytearray()  # decoded, not yet read
        self.left = length
        self.done = not chunked and not length
        self.failed = None
        self.parser = None
        if chunked:
            self.parser = HttpRequestParser(self)
            self.parser.feed_data(CHUNKED_HEAD)
            self.tail = b""  # the last bytes fed: a CRLF CRLF may span two receives

    # ----- llhttp's callbacks -----
    def on_body(self, data):
        self.pending += data

    def on_message_complete(self):
        self.done = True

    # ----- the file the application reads -----
    def read(self, size=-1):
        if size is None or size < 0:
            while not self.done:
                self._more()
            size = len(self.pending)
        while len(self.pending) < size and not self.done:
            self._more()
        data = bytes(self.pending[:size])
        del self.pending[:size]
        return data

    def readline(self, size=-1):
        size = -1 if size is None else size
        searched = 0
        while (newline := self.pending.find(b"\n", searched)) < 0 and not self.done:
            if 0 <= size <= len(self.pending):
                break
            searched = len(self.pending)
            self._more()
        end = len(self.pending) if newline < 0 else newline + 1
        return self.read(end if size < 0 else min(size, end))

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    def finish(self, limit):
        """Read to the end of the body, dropping what the application left: whether it ended
        within `limit` bytes, so that the connection can serve a next request."""
        if self.done:
            return True
        if self.send_continue is not None or self.failed is not None:
            return False  # a client still waiting for 100 Continue may never send the body
        try:
            while not self.done and limit > 0:
                self._more()
                limit -= len(self.pending)
                self.pending.clear()
        except (OSError, ValueError, EOFError):
            return False
        return self.done

    def _more(self):
        if self.failed is not None:
            raise self.failed
        if self.send_continue is not None:
            send, self.send_continue = self.send_continue, None
            send()
        data = self.connection.receive()
        if not data:
            self.failed = EOFError("the connection ended before the body did")
            raise self.failed
        if self.parser is None:
            taken = data[: self.left]
            self.pending += taken
            self.left -= len(taken)
            self.done = not self.left
            rest = data[len(taken) :]
        else:
            rest = self._feed(data)
        if rest:
            self.connection.unread(rest)

    def _feed(self, data):
        """Feeds llhttp up to the end of the body; returns what follows it."""
        seen, before = self.tail + data, len(self.tail)
        fed = search = 0
        while not self.done:
            end = seen.find(BODY_END, search)
            stop = len(data) if end < 0 else end + len(BODY_END) - before
            try:
                self.parser.feed_data(data[fed:stop])
            except Exception as exc:  # httptools' HttpParserError: a malformed chunk
                self.failed = ValueError(f"malformed chunked body: {exc}")
                raise self.failed from None
            fed = stop
            if end < 0:
                break
            search = end + 1
        self.tail = seen[: before + fed][-(len(BODY_END) - 1) :]
        return data[fed:]
