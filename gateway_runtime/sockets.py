"""gevent sockets whose sendall first tries one plain send: gevent's own asks the kernel for the
send buffer's size (a getsockopt) on every call, which was an eighth of the gateway's time when it
proxied small requests. The rest of what the kernel did not take goes through gevent's sendall,
which waits for the socket as it always did. `recv_now` lets a kept-alive connection whose next
request is already there skip setting up the wait for one (a timer and the idle set), and
`recv_answer` lets the client wait for an answer it just asked for before the first read, which
could only find nothing (a failed system call and an exception for every request)."""

from socket import MSG_PEEK

from gevent.socket import socket as GeventSocket


class QuickSocket(GeventSocket):
    def sendall(self, data, flags=0):
        try:
            sent = self._sock.send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            super().sendall(memoryview(data)[sent:], flags)

    def recv_now(self, size):
        """What has arrived (b"" at the end), or None when nothing has yet."""
        try:
            return self._sock.recv(size)
        except BlockingIOError:
            return None

    def readable_now(self):
        """Whether a read would not wait (bytes arrived, the far side closed, or an error): one
        peek at the kernel's buffer, where select() would make and drop a watcher on the hub."""
        try:
            self._sock.recv(1, MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True

    def recv_answer(self, size):
        """recv, for bytes that cannot have arrived yet: waits (as long as the timeout) first."""
        self._wait(self._read_event)
        return self.recv(size)


def recv_now(sock, size):
    """QuickSocket.recv_now for any socket: None (nothing known yet) for those that are not one."""
    return sock.recv_now(size) if isinstance(sock, QuickSocket) else None


def quick(sock):
    """The same connection as a QuickSocket (a plain one: a TLS socket must write through TLS)."""
    return QuickSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
