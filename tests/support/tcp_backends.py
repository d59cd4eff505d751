"""TCP backends of the TCP proxy tests (a thread per connection; the echo one answers `<name>:<chunk>`)
and a TLS client of the gateway's TCP port."""

import socket
import ssl
import threading


class Backend:
    """A TCP server of the test: a thread per connection runs serve(conn). kill() cuts its
    connections and stops listening."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def serve(self, conn):
        raise NotImplementedError

    def kill(self):
        for sock in [self.listener, *self.connections]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on them
            except OSError:
                pass
            sock.close()


class EchoBackend(Backend):
    """Answers each chunk it receives with `<name>:<chunk>`, over TLS when given a server context."""

    def __init__(self, name, context=None):
        self.name, self.context = name.encode(), context
        super().__init__()

    def serve(self, conn):
        if self.context is not None:
            conn = self.context.wrap_socket(conn, server_side=True)
        self.connections.append(conn)
        while data := conn.recv(65536):
            conn.sendall(self.name + b":" + data)


def connect(server, sni, timeout=5):
    """A TLS client of the gateway's TCP port, trusting the certificate the gateway generated."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.workdir / "instance" / "tcp-listener.crt")
    context.check_hostname = False  # the generated certificate names no host; a real one would
    raw = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


def exchange(sock, payload, expected_prefix):
    """Send payload; return the reply once it is as long as `<prefix>:<payload>` (or the connection ended)."""
    sock.sendall(payload)
    want = len(expected_prefix) + 1 + len(payload)
    reply = b""
    while len(reply) < want and (chunk := sock.recv(65536)):
        reply += chunk
    return reply
