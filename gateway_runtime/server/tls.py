"""TLS on the gateway port (GATEHOUSE_GATEWAY_TLS_*): HTTPS and WSS instead of HTTP on the same
port, client certificates optional, and the certificate and key taken again from their files
when they change (a renewal), without a restart.

Each connection's handshake runs in its own greenlet, under the header timeout (see
http1.Connection.next_head), so a client that connects and sends nothing holds only itself.
"""

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import gevent
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from gevent.socket import timeout_default  # type: ignore[attr-defined]  # a sentinel types-gevent leaves out
from gevent.ssl import (
    CERT_NONE,
    CERT_OPTIONAL,
    CERT_REQUIRED,
    OP_NO_COMPRESSION,
    OP_NO_RENEGOTIATION,
    PROTOCOL_TLS_SERVER,
    SSLContext,
    SSLError,
    SSLSocket,
    TLSVersion,
)

from ..listeners import SettingError, send_in_time

log = logging.getLogger("gatehouse.server")

CERT = "GATEHOUSE_GATEWAY_TLS_CERT"
KEY = "GATEHOUSE_GATEWAY_TLS_KEY"
CLIENT_AUTH = "GATEHOUSE_GATEWAY_TLS_CLIENT_AUTH"
CLIENT_CA = "GATEHOUSE_GATEWAY_TLS_CLIENT_CA"
CLIENT_AUTH_MODES = {"none": CERT_NONE, "request": CERT_OPTIONAL, "require": CERT_REQUIRED}
# Mozilla's "intermediate" configuration (TLS 1.2 suites; TLS 1.3's are OpenSSL's, all modern).
CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
CHECK_SECONDS = 1.0
WARNING_SECONDS = 60  # failed handshakes: one warning a minute, the others at debug
TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS connection (a handshake record)
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n\r\n"
    b"This port speaks HTTPS, not HTTP.\r\n"
)


class TlsSocket(SSLSocket):
    """A TLS connection with the write timeout of listeners.WriteTimedSocket (whose own send
    would write past TLS), and whose recv never leaves decrypted bytes behind in the TLS buffer,
    where a selector waiting on the descriptor (simple_websocket's, between its 4 KiB reads)
    would not see them."""

    write_timeout = 30.0

    def send(self, data, flags=0, timeout=timeout_default):
        return send_in_time(self, super().send, data, flags, timeout)

    def recv(self, buflen=1024, flags=0):
        data = super().recv(buflen, flags)
        pending = self.pending()
        return data + super().recv(pending) if pending else data


class GatewayContext(SSLContext):
    sslsocket_class = TlsSocket


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    client_auth: str
    client_ca: str

    @classmethod
    def from_environment(cls, environ=os.environ):
        """The files, or None when the port serves plain HTTP. Raises SettingError naming the
        setting that is wrong."""
        cert, key, ca = (environ.get(name, "").strip() for name in (CERT, KEY, CLIENT_CA))
        client_auth = environ.get(CLIENT_AUTH, "").strip().lower() or "none"
        if client_auth not in CLIENT_AUTH_MODES:
            raise SettingError(f"{CLIENT_AUTH} must be none, request or require, not {client_auth!r}")
        if not (cert or key):
            if client_auth != "none" or ca:
                raise SettingError(f"{CLIENT_AUTH} and {CLIENT_CA} need {CERT} and {KEY} (TLS on the gateway port)")
            return None
        if not cert or not key:
            missing, given = (CERT, KEY) if not cert else (KEY, CERT)
            raise SettingError(f"{missing} must be set too when {given} is (TLS on the gateway port needs both)")
        if client_auth != "none" and not ca:
            raise SettingError(f"{CLIENT_CA} must name a PEM file of the CAs client certificates come from")
        if client_auth == "none" and ca:
            raise SettingError(f"{CLIENT_CA} is set but {CLIENT_AUTH} is none: set it to request or require")
        return cls(cert, key, client_auth, ca)

    def stamps(self):
        """What changes when a file is written or replaced (a renamed file, a moved symlink)."""
        return tuple(_stamp(path) for path in (self.cert, self.key, self.client_ca))

    def context(self):
        """(SSLContext, the certificate); SettingError naming the setting whose file is wrong."""
        certificate = _certificates(self.cert, CERT)[0]
        key = _read(self.key, KEY)
        try:
            serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SettingError(f"{KEY}: {self.key} holds no PEM private key without a password") from None
        context = GatewayContext(PROTOCOL_TLS_SERVER)
        context.minimum_version = TLSVersion.TLSv1_2
        context.set_ciphers(CIPHERS)
        context.options |= OP_NO_COMPRESSION | OP_NO_RENEGOTIATION
        context.set_alpn_protocols(["http/1.1"])
        try:
            context.load_cert_chain(self.cert, self.key)
        except SSLError as exc:
            raise SettingError(f"{KEY}: {self.key} is not the key of the certificate in {CERT}: {exc.reason}") from None
        context.verify_mode = CLIENT_AUTH_MODES[self.client_auth]
        if self.client_ca:
            _certificates(self.client_ca, CLIENT_CA)
            context.load_verify_locations(cafile=self.client_ca)
        return context, certificate


def _stamp(path):
    if not path:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def _read(path, name):
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SettingError(f"{name}: {path} cannot be read: {exc.strerror}") from None


def _certificates(path, name):
    data = _read(path, name)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SettingError(f"{name}: {path} holds no PEM certificate") from None


def describe(certificate):
    return (
        f"{certificate.subject.rfc4514_string()} (serial {certificate.serial_number:x}, "
        f"valid until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
    )


class GatewayTls:
    """The gateway port's TLS: the context new connections get, built again when the files change."""

    def __init__(self, files):
        self.files = files
        self.stamps = files.stamps()
        self.context, certificate = files.context()
        self.watcher = None
        self.warned = float("-inf")
        log.info("gateway port: HTTPS with %s, client certificates: %s", describe(certificate), self.files.client_auth)

    @classmethod
    def from_environment(cls, environ=os.environ):
        files = TlsFiles.from_environment(environ)
        return None if files is None else cls(files)

    def start(self):
        self.watcher = gevent.spawn(self._watch)

    def close(self):
        if self.watcher is not None:
            self.watcher.kill(block=False)

    def _watch(self):
        """A change is taken once the files stayed as they are for one check, so that a certificate
        and its key written one after the other are read together."""
        seen = self.stamps
        while True:
            gevent.sleep(CHECK_SECONDS)
            stamps = self.files.stamps()
            if stamps == seen and stamps != self.stamps:
                self.reload()
            seen = stamps

    def reload(self):
        self.stamps = self.files.stamps()
        try:
            self.context, certificate = self.files.context()
        except SettingError as exc:
            log.warning("gateway port: the changed TLS files were not taken, the previous ones serve on: %s", exc)
            return
        log.info("gateway port: new connections get %s", describe(certificate))

    # ----- one connection -----
    def wrap(self, sock, write_timeout):
        """The connection in TLS, before its handshake. None when it does not start with a TLS
        handshake (b"" read ahead means the client left): plain HTTP gets PLAIN_HTTP_ANSWER."""
        first = sock.recv(1, socket.MSG_PEEK)
        if first != TLS_HANDSHAKE:
            if first:
                sock.sendall(PLAIN_HTTP_ANSWER)
            return None
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        tls.write_timeout = write_timeout
        return tls

    def handshake(self, tls, address):
        """The environ entries of the client's certificate; OSError when the handshake fails."""
        try:
            tls.do_handshake()
        except SSLError as exc:
            self._failed(address, exc.reason or str(exc))
            raise
        except OSError as exc:  # reset or closed midway: as uninteresting as on plain HTTP
            log.debug("TLS handshake from %s:%s ended: %s", address[0], address[1], exc)
            raise
        der = tls.getpeercert(binary_form=True)
        if der is None:
            return {"SSL_CLIENT_VERIFY": "NONE"}
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        log.debug("TLS connection from %s:%s: client certificate %s", address[0], address[1], subject)
        return {"SSL_CLIENT_VERIFY": "SUCCESS", "SSL_CLIENT_S_DN": subject}

    def _failed(self, address, reason):
        now = time.monotonic()
        if now - self.warned >= WARNING_SECONDS:
            self.warned = now
            log.warning(
                "TLS handshake from %s:%s failed: %s (more within %d s are logged at debug level)",
                address[0],
                address[1],
                reason,
                WARNING_SECONDS,
            )
        else:
            log.debug("TLS handshake from %s:%s failed: %s", address[0], address[1], reason)
