"""The gateway's TCP listener: clients open TLS connections, and the host name they send by SNI
picks the deployed API whose `tcp` listener lists it (`listeners: [{type: tcp, hosts: [...]}]`).

The route is read from the gateway's routing table during the handshake, so a redeploy applies to
the next connection; connections already open stay with the revision they started on, which
drains them as it drains HTTP requests (see DeployedApi.retire).
"""

import datetime
import logging
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gevent import Timeout

from gateway_runtime.listeners import GuardedStreamServer

log = logging.getLogger("gatehouse.tcp")


class TcpListener:
    def __init__(self, gateway, listen_socket, certfile, keyfile, pool, handshake_timeout):
        """`pool` caps its connections (the gateway's, shared with the HTTP port); `handshake_timeout`
        is the seconds a client has to complete its TLS handshake."""
        self.gateway = gateway
        self.handshake_timeout = handshake_timeout
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile, keyfile)
        self.context.sni_callback = self._route
        self.server = GuardedStreamServer(listen_socket, self._serve, spawn=pool)

    @property
    def port(self):
        return self.server.server_port

    def start(self):
        self.server.start()

    def close(self):
        """Accept no more connections; those open end as their APIs retire."""
        self.server.close()

    def _route(self, tls, server_name, context):
        """During the handshake: the API for this SNI host, kept on the connection; an unknown
        (or absent) name ends the handshake with the unrecognized_name alert."""
        api = self.gateway.routes.match_sni(server_name)
        if api is None:
            log.warning(
                "TCP connection from %s refused: no API listens for the SNI host name %r", _peer(tls), server_name
            )
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        tls.gatehouse_api = api
        return None

    def _serve(self, sock, address):
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        # One deadline for the whole handshake: a client sending it a byte at a time holds nothing for long.
        timeout = TimeoutError(f"not done within {self.handshake_timeout:g} s")
        try:
            with Timeout(self.handshake_timeout, timeout):
                tls.do_handshake()
        except OSError as exc:  # ssl.SSLError included; an unknown SNI name was logged by _route
            if getattr(tls, "gatehouse_api", None) is not None:
                log.info("TCP connection from %s: TLS handshake failed: %s", _peer(tls), exc)
            tls.close()
            return
        api = tls.gatehouse_api
        handler = api.entrypoints[0]
        api.enter()
        try:
            handler.relay(tls, f"{address[0]}:{address[1]}")
        except Exception:
            log.exception("API %s: unexpected error relaying a TCP connection", api.id)
            tls.close()
        finally:
            api.leave()


def _peer(sock):
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "a client that left"


def server_certificate(instance_path):
    """(certfile, keyfile) of the listener: GATEHOUSE_TCP_CERT / GATEHOUSE_TCP_KEY when set, else a
    self-signed pair made once in the instance folder (clients must then skip verification or
    trust that certificate). Callers hold the instance lock, so processes starting together agree."""
    if os.environ.get("GATEHOUSE_TCP_CERT"):
        return os.environ["GATEHOUSE_TCP_CERT"], os.environ.get("GATEHOUSE_TCP_KEY") or os.environ["GATEHOUSE_TCP_CERT"]
    certfile = os.path.join(instance_path, "tcp-listener.crt")
    keyfile = os.path.join(instance_path, "tcp-listener.key")
    if not (os.path.exists(certfile) and os.path.exists(keyfile)):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gatehouse TCP listener (self-signed)")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        _write_private(
            keyfile,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        _write_private(certfile, cert.public_bytes(serialization.Encoding.PEM))
        log.info("TCP listener: generated a self-signed certificate in %s", certfile)
    return certfile, keyfile


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
