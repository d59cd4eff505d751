"""The framing between the gateway and its Solace worker process (see solace_worker.py).

A frame is an 8-byte prefix (header length, payload length; big-endian), a JSON header and the
raw payload bytes, so that message bodies cross unchanged and nothing is ever unpickled.
"""

import json
import struct

PREFIX = struct.Struct(">II")
MAX_HEADER = 16 * 1024 * 1024
MAX_PAYLOAD = 256 * 1024 * 1024


def frame(header, payload=b""):
    data = json.dumps(header, separators=(",", ":")).encode()
    return b"".join((PREFIX.pack(len(data), len(payload)), data, payload))


def read_frame(read):
    """(header, payload) from `read(n)`, a buffered stream's read; EOFError once the peer is gone."""
    prefix = read(PREFIX.size)
    if len(prefix) < PREFIX.size:
        raise EOFError
    header_size, payload_size = PREFIX.unpack(prefix)
    if header_size > MAX_HEADER or payload_size > MAX_PAYLOAD:
        raise EOFError(f"frame too large ({header_size}, {payload_size}): the channel is out of step")
    header = read(header_size)
    payload = read(payload_size) if payload_size else b""
    if len(header) < header_size or len(payload) < payload_size:
        raise EOFError
    return json.loads(header), payload
