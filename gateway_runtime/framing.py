"""A request's head checked as RFC 9112 frames it, before the gateway acts on it.

pywsgi's own parsing is lenient where a lenient gateway lets a client smuggle a request past it:
it takes `Content-Length: 1_0` or `+5` (Python's int()), honours Transfer-Encoding only when it is
exactly `chunked` and otherwise falls back to Content-Length, and the e-mail parser under it
splits header lines on a bare CR. Whatever part of a body the gateway and a backend frame
differently would run at the backend as a second request. So each head is read line by line
here and refused (400, connection closed) unless its framing has one reading:

- no bare CR, NUL or other control character, no obs-fold line, header names that are tokens;
- at most one Content-Length, and only digits in it (two equal ones are refused too: RFC 9112,
  6.3 allows either, and no honest client sends them);
- Transfer-Encoding only without Content-Length, never in HTTP/1.0, with `chunked` last
  (anything before it is not implemented here: 501);
- one Host header, and one at all in HTTP/1.1.

More than MAX_HEADERS header lines, or a line longer than MAX_LINE, is answered 431; a request
line longer than MAX_REQUEST_LINE, 414.

The rules are plain functions over the lines, shared by both servers: StrictFraming hooks them into
pywsgi's handler, read_head serves the gateway's own (server/http1.py), which reads a head whole.
"""

import logging
import re
import time
import weakref
from email.parser import Parser

from gevent.pywsgi import OldMessage, WSGIHandler

log = logging.getLogger("gatehouse.gateway")

MAX_HEADERS = 100
MAX_LINE = 65536
MAX_REQUEST_LINE = 8192  # pywsgi's
VERSIONS = ("HTTP/1.0", "HTTP/1.1")
WARNING_INTERVAL_S = 10.0
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB may sit inside a value
REQUEST_LINE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^\x00-\x20\x7f]+ HTTP/[0-9]\.[0-9]")
DIGITS = re.compile(r"[0-9]+")


class BadFraming(ValueError):
    status = "400 Bad Request"


class NotImplementedCoding(BadFraming):
    status = "501 Not Implemented"


class TooManyHeaders(BadFraming):
    status = "431 Request Header Fields Too Large"


class TooLongRequestLine(BadFraming):
    status = "414 URI Too Long"


def line_too_long():
    return TooManyHeaders(f"A header line is longer than {MAX_LINE} bytes.")


def too_many_headers():
    return TooManyHeaders(f"The request has more than {MAX_HEADERS} headers.")


def request_line_too_long():
    return TooLongRequestLine(f"The request line is longer than {MAX_REQUEST_LINE} bytes.")


def check_request_line(line):
    if not REQUEST_LINE.fullmatch(strip_terminator(line)):
        raise BadFraming("The request line must be a method, a target and an HTTP version, one space apart.")


def read_head(head):
    """A whole head (its request line, its header lines and the empty line), checked: its method,
    target, version and fields. Raises BadFraming. The lines are split once: the head is all here
    (server/http1.py reads up to its empty line)."""
    request_line, *lines = head.decode("latin-1").split("\n")
    if len(request_line) >= MAX_REQUEST_LINE:  # with its LF, longer than the limit
        raise request_line_too_long()
    line = request_line[:-1] if request_line.endswith("\r") else request_line
    check_request_line(line)
    method, target, version = line.split(" ")
    if version not in VERSIONS:  # what pywsgi refuses, for the portal's server
        raise BadFraming(f"{version} is not served: HTTP/1.0 and HTTP/1.1 are.")
    fields = []
    for raw in lines:
        if len(raw) >= MAX_LINE:
            raise line_too_long()
        if not add_field(fields, raw[:-1] if raw.endswith("\r") else raw):
            break
    else:
        raise BadFraming("The request's head has no empty line at its end.")
    check_framing(fields, version)
    return method, target, version, fields


def read_fields(readline):
    """The header fields up to the empty line, as (name, value) with the value's outer spaces cut."""
    fields = []
    while True:
        line = readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise line_too_long()
        if not add_field(fields, strip_terminator(line.decode("latin-1"))):
            return fields


def add_field(fields, line):
    """A header line without its terminator added to `fields`; False for the empty line that ends them."""
    if not line:
        return False
    if len(fields) == MAX_HEADERS:
        raise too_many_headers()
    fields.append(parse_field(line))
    return True


def strip_terminator(line):
    """A line without its CRLF (or bare LF, which RFC 9112, 2.2 lets a recipient accept)."""
    return line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith("\n") else line


def parse_field(line):
    if "\r" in line:
        raise BadFraming("A header holds a bare CR.")
    if line[:1] in (" ", "\t"):
        raise BadFraming("A header line is folded (starts with a space or tab).")
    name, colon, value = line.partition(":")
    if not colon or not TOKEN.fullmatch(name):
        raise BadFraming("A header line has no name, or a name with a space or a separator in it.")
    value = value.strip(" \t")
    if CONTROL.search(value):
        raise BadFraming(f"Header {name} holds a control character.")
    return name, value


def check_framing(fields, version):
    """Raises BadFraming unless the request's body has exactly one length (RFC 9112, 6)."""
    values = {}
    for name, value in fields:
        values.setdefault(name.lower(), []).append(value)
    lengths, codings = values.get("content-length", []), values.get("transfer-encoding", [])
    if lengths and codings:
        raise BadFraming("The request has both Content-Length and Transfer-Encoding.")
    if len(lengths) > 1:
        raise BadFraming("The request has more than one Content-Length.")
    if lengths and not DIGITS.fullmatch(lengths[0]):
        raise BadFraming("Content-Length must be digits only.")
    if codings:
        check_codings([c.strip().lower() for value in codings for c in value.split(",") if c.strip()], version)
    if len(values.get("host", [])) > 1 or (version == "HTTP/1.1" and "host" not in values):
        raise BadFraming("An HTTP/1.1 request has exactly one Host header.")


def check_codings(codings, version):
    if version != "HTTP/1.1":
        raise BadFraming("Transfer-Encoding needs HTTP/1.1.")
    if not codings or codings[-1] != "chunked" or codings.count("chunked") > 1:
        raise BadFraming("Transfer-Encoding must end with chunked, once.")
    if len(codings) > 1:
        raise NotImplementedCoding("Only the chunked transfer coding is implemented.")


def parsed(fields):
    """The checked fields as pywsgi's handler holds headers, written again and parsed as http.client
    would (its reader stops at 99 headers): what pywsgi reads is what was checked."""
    return Parser(_class=OldMessage).parsestr("".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n")


def refusal(error):
    body = str(error).encode()
    return (
        error.status.split()[0],
        b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (error.status.encode(), len(body), body),
    )


# server -> {kind of refusal: when it last warned}
_warned: weakref.WeakKeyDictionary[object, dict[type, float]] = weakref.WeakKeyDictionary()


def warn_now(server, kind):
    """Once per WARNING_INTERVAL_S per listener and kind: a flood of bad requests is one line, not one each."""
    now, last = time.monotonic(), _warned.setdefault(server, {})
    if now - last.get(kind, -WARNING_INTERVAL_S) < WARNING_INTERVAL_S:
        return False
    last[kind] = now
    return True


def refused(server, client_address, error):
    """The answer to a head these checks refused; a warning names the client, rate-limited by warn_now."""
    if warn_now(server, type(error)):
        log.warning(
            "refused a request from %s: %s (refusals like it are logged once every %g s)",
            client_address[0] if isinstance(client_address, tuple) else client_address,
            error,
            WARNING_INTERVAL_S,
        )
    return refusal(error)


class StrictFraming(WSGIHandler):
    """pywsgi's handler, refusing what check_framing refuses; it also gives the application the
    raw request target (REQUEST_URI), which PATH_INFO only has decoded. Combine it in front of
    another handler with strict()."""

    def read_request(self, raw_requestline):
        check_request_line(raw_requestline)
        return super().read_request(raw_requestline)

    def MessageClass(self, fp, *args):
        fields = read_fields(fp.readline)
        check_framing(fields, self.request_version)
        return parsed(fields)

    def get_environ(self):
        environ = super().get_environ()
        environ["REQUEST_URI"] = self.path
        return environ

    def _handle_client_error(self, ex):
        if not isinstance(ex, BadFraming):
            return super()._handle_client_error(ex)
        return refused(self.server, self.client_address, ex)


def strict(handler_class):
    """handler_class with the framing checks in front of its own parsing."""
    return type("Strict" + handler_class.__name__, (StrictFraming, handler_class), {})
