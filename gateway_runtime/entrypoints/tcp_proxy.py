"""TCP proxy entrypoint: a client's TLS connection, routed here by its SNI host name (see
gateway_runtime/tcp.py), is relayed byte for byte to a backend picked by the load balancer.

As Gravitee's TCP proxy does, the pair lives and dies together: when either side closes, fails or
stays idle past the endpoint's idle timeouts, both connections are closed.
"""

import logging
import time

import gevent

from ..messages import EndpointError
from ..settings import Settings
from ..specs import EntrypointSpec

log = logging.getLogger("gatehouse.tcp")
CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, config, api, qos):
        self.api = api

    @staticmethod
    def matches(environ):
        return False  # it serves TLS connections from the TCP listener, never an HTTP request

    def relay(self, client, peer):
        """Serve one client connection (TLS done) until it ends; closes it."""
        try:
            endpoint = self.api.balancer.pick()
            backend = endpoint.connect()
        except EndpointError as exc:
            log.warning("API %s: TCP connection from %s closed: %s", self.api.id, peer, exc)
            client.close()
            return
        activity = Activity()
        up = gevent.spawn(_copy, client, backend, activity, "last_write")
        down = gevent.spawn(_copy, backend, client, activity, "last_read")
        try:
            while True:
                deadline = endpoint.idle_timeouts.deadline(activity.last_read, activity.last_write)
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                if gevent.wait([up, down], timeout=timeout, count=1):
                    break  # one side closed or failed
                if endpoint.idle_timeouts.deadline(activity.last_read, activity.last_write) <= time.monotonic():
                    log.info(
                        "API %s: TCP connection from %s to %s closed after its idle timeout",
                        self.api.id,
                        peer,
                        endpoint.address,
                    )
                    break
        finally:
            gevent.killall([up, down])
            endpoint.release(backend)
            client.close()


class Activity:
    """When data last went to and came from the backend (monotonic seconds)."""

    __slots__ = ("last_read", "last_write")

    def __init__(self):
        self.last_read = self.last_write = time.monotonic()


def _copy(source, sink, activity, mark):
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
            setattr(activity, mark, time.monotonic())
    except OSError:  # reset, or closed by the other direction ending (ssl.SSLError included)
        pass


SPEC = EntrypointSpec(
    type="tcp-proxy",
    label="TCP proxy",
    handler=TcpProxy,
    api_types=("proxy",),
    operations=(),
    qos=("auto",),
    listener="tcp",
    description="Clients open a TLS connection to the gateway's TCP port, naming the API's host by SNI.",
    configuration=Settings(),
)
