"""A TCP forwarder to a shared server (the local PostgreSQL): a test stops it to take the server
away from the processes it started, as an outage would, and starts it again on the same port."""

import socket
import threading


class Forwarder:
    """127.0.0.1:<port> -> the shared PostgreSQL, until `stop` (connections refused, open ones cut);
    `start` opens the same port again."""

    def __init__(self, target=("127.0.0.1", 5432)):
        self.target = target
        self.port = None
        self.listener = None
        self.open = set()
        self.lock = threading.Lock()

    def start(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # close alone would leave a blocked accept listening
        self.listener.close()
        with self.lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.open.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
