"""The portal's probe of a broker that no live endpoint of this process speaks for: does a TCP connection open?"""

import socket
from collections.abc import Iterable

PROBE_TIMEOUT_S = 1

# A target: how the status names it, its host (an IPv6 one with or without brackets) and its port.
Target = tuple[str, str, int | str]


def tcp_probe(targets: Iterable[Target], refused: str | None = None) -> str | None:
    """None as soon as one target takes a TCP connection within PROBE_TIMEOUT_S (closed at once); else
    `unreachable (name: why; ...)`, or `refused` when every target refused the connection (a connector whose
    library words that its own way says it alike here)."""
    failures: list[tuple[str, Exception]] = []
    for name, host, port in targets:
        try:
            socket.create_connection((str(host).strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
            return None
        except (OSError, ValueError, TypeError) as exc:  # TypeError, ValueError: no port number
            failures.append((name, exc))
    if refused is not None and failures and all(isinstance(exc, ConnectionRefusedError) for _, exc in failures):
        return refused
    return (
        "unreachable (" + "; ".join(f"{name}: {getattr(exc, 'strerror', None) or exc}" for name, exc in failures) + ")"
    )


def host_port(address: str) -> Target:
    """`host:port` (the host may be an IPv6 address in brackets) as a target named by itself."""
    address = address.strip()
    host, _, port = address.rpartition(":")
    return address, host, port
