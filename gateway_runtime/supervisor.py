"""`gatehouse serve --workers N`: a supervisor process that forks N workers, each a whole
`gatehouse serve` (portal, gateway and its watcher) accepting on listening sockets the supervisor
bound once, so that every worker serves the same ports and the kernel hands each new connection
to whichever worker accepts it first. Workers share the rest as gunicorn's do: the database is
prepared under a lock, push deliveries are leased, each writes its last-known file by rename.

The supervisor stays small: no gevent, no application. It starts one worker first, so that a
start that cannot work (a wrong setting, a wrong key) fails once and says so once, then the
others; it starts a worker again when one dies, waiting longer each time workers die soon after
their start; SIGTERM or SIGINT are passed on to every worker as SIGTERM (each drains as a single
process does) and SIGHUP as SIGHUP.
"""

import atexit
import logging
import os
import select
import signal
import sys
import time
import traceback

log = logging.getLogger("gatehouse.supervisor")

STOP_MARGIN_S = 5.0  # past the workers' shutdown grace: what is still running is killed
EARLY_DEATH_S = 10.0  # a worker dying sooner than this after it began serving counts towards the backoff
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
CALM_S = 60.0  # without an early death for this long, the backoff starts over
HANDLED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Worker:
    def __init__(self, pid, ready_fd):
        self.pid = pid
        self.ready_fd = ready_fd  # closed once the worker said it serves
        self.started = time.monotonic()
        self.serving = None  # since when


class Supervisor:
    """`work(ready)` runs in each forked worker: it serves until SIGTERM and returns an exit
    status; it calls ready(shutdown_grace) once its ports accept. `sockets` are the listening
    sockets the workers inherit: closed here at stop, so that the ports refuse new connections
    once every worker closed its own."""

    def __init__(self, count, work, announce, sockets):
        self.count = count
        self.sockets = sockets
        self.work = work
        self.announce = announce  # prints the ports, once the first worker serves
        self.workers = {}
        self.due = []  # when each missing worker is to be started again
        self.early_deaths = 0  # in a row, each before serving or less than EARLY_DEATH_S after
        self.last_early_death = float("-inf")
        self.grace = None  # the workers' shutdown grace, as the first one read it

    def run(self):
        """The supervisor's exit status: 0 after SIGTERM, or a worker's if the first one failed to start."""
        self.wake, self.wake_w = os.pipe()
        os.set_blocking(self.wake, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        for signum in HANDLED:
            signal.signal(signum, lambda *_: None)  # the signal's number reaches self.wake
        self._spawn()
        while True:
            for signum in self._wait():
                if signum in (signal.SIGTERM, signal.SIGINT):
                    return self._stop(0)
                if signum == signal.SIGHUP:
                    self._forward(signal.SIGHUP)
            for pid, status in self._reaped():
                worker = self.workers.pop(pid)
                if worker.ready_fd is not None:
                    os.close(worker.ready_fd)
                if self.grace is None:  # the first worker could not start: neither could the others
                    return self._stop(_exit_status(status))
                self._restart_later(worker, status)
            now = time.monotonic()
            while self.due and self.due[0] <= now:
                self.due.pop(0)
                self._spawn()

    # ----- the workers -----
    def _spawn(self):
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._worker(ready_w)
        os.close(ready_w)
        self.workers[pid] = Worker(pid, ready_r)

    def _worker(self, ready_w):
        """In the forked child: the supervisor's signal handling undone, then a whole `gatehouse serve`."""
        signal.set_wakeup_fd(-1)
        os.close(self.wake)
        os.close(self.wake_w)
        for signum in HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        for other in self.workers.values():
            if other.ready_fd is not None:
                os.close(other.ready_fd)

        def ready(grace):
            os.write(ready_w, f"{grace}\n".encode())
            os.close(ready_w)

        status = 1
        try:
            status = self.work(ready)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            atexit._run_exitfuncs()  # what the worker registered (access lines still held), as a normal exit would
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status or 0)

    def _wait(self):
        """The signals received, once one is or a worker said it serves (or a restart is due)."""
        timeout = max(0.0, self.due[0] - time.monotonic()) if self.due else None
        pending = {w.ready_fd: w for w in self.workers.values() if w.ready_fd is not None}
        try:
            readable, _, _ = select.select([self.wake, *pending], [], [], timeout)
        except InterruptedError:
            readable = []
        signals = []
        for fd in readable:
            if fd == self.wake:
                signals += os.read(self.wake, 512)
            else:
                self._ready(pending[fd])
        return signals

    def _ready(self, worker):
        said = os.read(worker.ready_fd, 64)
        os.close(worker.ready_fd)
        worker.ready_fd = None
        if not said:
            return  # it died before serving: its exit is reaped with SIGCHLD
        worker.serving = time.monotonic()
        if self.grace is None:
            self.grace = float(said)
            self.announce()
            for _ in range(self.count - 1):
                self._spawn()

    def _reaped(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.workers:
                yield pid, status

    def _restart_later(self, worker, status):
        now = time.monotonic()
        lived = now - worker.started
        early = worker.serving is None or now - worker.serving < EARLY_DEATH_S  # a start, however slow, is not
        if not early or now - self.last_early_death > CALM_S:
            self.early_deaths = 0
        if early:
            self.early_deaths += 1
            self.last_early_death = now
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.early_deaths - 1)) if self.early_deaths else 0.0
        log.warning("worker %d %s after %.1f s: starting another in %g s", worker.pid, _ended(status), lived, delay)
        self.due.append(now + delay)
        self.due.sort()

    def _forward(self, signum):
        for pid in self.workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # exited meanwhile: reaped next

    def _stop(self, status):
        """Every worker told to drain; those still running past their grace and a margin are killed."""
        self.due.clear()
        for sock in self.sockets:
            sock.close()
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + (self.grace or 0.0) + STOP_MARGIN_S
        while self.workers and time.monotonic() < deadline:
            select.select([self.wake], [], [], max(0.0, deadline - time.monotonic()))
            try:
                os.read(self.wake, 512)
            except BlockingIOError:
                pass
            for pid, _ in self._reaped():
                del self.workers[pid]
        if self.workers:
            log.warning("%d workers still running past the shutdown grace: killed", len(self.workers))
            self._forward(signal.SIGKILL)
            for pid in self.workers:
                os.waitpid(pid, 0)
        return status


def _exit_status(status):
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


def _ended(status):
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"
