"""The gateway's side of its Solace worker process (solace_worker.py): started on first use, one
per gateway process, started again on the next call after it died (open subscriptions make that
call at once: they subscribe again).

One greenlet reads the worker's socket and hands each frame to whoever waits for it: a reply to
the call that sent the request, a message to its subscription, a log record to the gateway's
log. Calls wait on gevent events, so a slow broker holds up no other request of the hub.
The worker stops when this process ends, however it ends: its end of the socket pair is then
closed, and the worker, seeing the end of its input, disconnects from its brokers and exits.
"""

import itertools
import logging
import os
import signal
import sys
from pathlib import Path

import gevent
import gevent.socket
import gevent.subprocess
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore

from ...messages import EndpointError, Unreachable
from .wire import frame, read_frame

log = logging.getLogger("gatehouse.solace")
CALL_TIMEOUT_S = 15
PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])  # the folder holding gateway_runtime


class WorkerLost(EndpointError):
    """The worker process died while a call or a subscription was waiting on it."""


class WorkerChannel:
    def __init__(self):
        self.start_lock = BoundedSemaphore()
        self.write_lock = BoundedSemaphore()
        self.proc = self.sock = self.reader = None
        self.ids = itertools.count(1)
        self.pending = {}  # request id -> AsyncResult of (header, payload)
        self.subscribers = {}  # subscription id -> object with received(header, payload), fail(reason)
        #                         and worker_lost(reason)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def _ensure(self):
        with self.start_lock:
            if self.proc is not None:
                return
            ours, theirs = gevent.socket.socketpair()
            env = dict(
                os.environ, PYTHONPATH=os.pathsep.join(filter(None, (PACKAGE_PARENT, os.environ.get("PYTHONPATH"))))
            )
            # A fresh interpreter: nothing of the gateway's monkey-patching reaches the library.
            self.proc = gevent.subprocess.Popen(
                [sys.executable, "-m", "gateway_runtime.endpoints.solace.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=gevent.subprocess.DEVNULL,
            )
            theirs.close()
            self.sock = ours
            self.reader = gevent.spawn(self._read, ours, self.proc)
            log.info("Solace worker process %d started", self.proc.pid)

    def call(self, header, payload=b"", timeout=CALL_TIMEOUT_S):
        """Send a request and wait for its reply; EndpointError (Unreachable when nothing reached
        the broker) when it failed."""
        self._ensure()
        request_id = next(self.ids)
        result = self.pending[request_id] = AsyncResult()
        try:
            self._send({**header, "id": request_id}, payload)
            reply, reply_payload = result.get(timeout=timeout)
        except gevent.Timeout:
            raise EndpointError(f"the Solace worker did not answer within {timeout} s") from None
        finally:
            self.pending.pop(request_id, None)
        if "error" in reply:
            raise (Unreachable if reply.get("unreachable") else EndpointError)(reply["error"])
        return reply, reply_payload

    def send(self, header):
        """A request that needs no reply (ack, unsubscribe, close); dropped when no worker runs,
        since a new worker holds none of the old one's receivers or connections."""
        if self.proc is not None:
            self._send(header)

    def _send(self, header, payload=b""):
        data = frame(header, payload)
        try:
            with self.write_lock:
                self.sock.sendall(data)
        except OSError as exc:
            raise WorkerLost(f"the Solace worker process cannot be reached ({exc}); try again") from None

    def _read(self, sock, proc):
        stream = sock.makefile("rb")
        try:
            while True:
                header, payload = read_frame(stream.read)
                self._dispatch(header, payload)
        except (EOFError, OSError, ValueError) as exc:
            if str(exc):
                log.error("Solace worker channel: %s", exc)
        finally:
            stream.close()
            sock.close()
            self._lost(proc)

    def _dispatch(self, header, payload):
        if "reply" in header:
            result = self.pending.get(header["reply"])
            if result is not None:
                result.set((header, payload))
        elif header.get("event") in ("message", "down"):
            subscriber = self.subscribers.get(header["sub"])
            if subscriber is None:
                return  # closed meanwhile: an unacknowledged message comes again to the next one
            if header["event"] == "message":
                subscriber.received(header, payload)
            else:
                subscriber.fail(header["error"])
        elif header.get("event") == "log":
            logging.getLogger(f"gatehouse.solace.worker.{header['name']}").log(header["level"], "%s", header["message"])

    def _lost(self, proc):
        try:
            code = proc.wait(timeout=5)
        except gevent.subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        if self.proc is proc:
            self.proc = self.sock = None
        reason = f"the Solace worker process {how}"
        if self.pending or self.subscribers:
            log.error(
                "%s; %d calls and %d subscriptions failed; the next call starts a new one",
                reason,
                len(self.pending),
                len(self.subscribers),
            )
        for result in list(self.pending.values()):
            result.set_exception(WorkerLost(f"{reason}; try again"))
        subscribers, self.subscribers = list(self.subscribers.values()), {}
        for subscriber in subscribers:
            subscriber.worker_lost(reason)


_channel = WorkerChannel()


def channel():
    return _channel
