"""One line per request the gateway answers (GATEHOUSE_ACCESS_LOG=on), beside the log's other lines
and in their format (GATEHOUSE_LOG_FORMAT: text, or json with these fields as keys): method, path,
status, time taken, and the API, entrypoint, plan, subscription and client address. The path is
written without its query, which can carry an API key or a token.

Not through `logging`: its record, formatting, lock and one write per line cost a proxied request
~40 % of its rate here. The lines are kept in memory and written together every FLUSH_S, in one
write, and at exit."""

import atexit
import json
import sys
import time
from typing import Any

import gevent

from .http import SUBSCRIPTION, client_address
from .metrics import labels, on_off
from .request_target import raw_target

SWITCH = "GATEHOUSE_ACCESS_LOG"
FLUSH_S = 0.2
LOGGER = "gatehouse.access"


def access_log_on() -> bool:
    """GATEHOUSE_ACCESS_LOG: off by default."""
    return on_off(SWITCH, "off")


class AccessLog:
    def __init__(self, as_json: bool, stream: Any = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stderr  # where logging's own lines go
        self.pending: list[str] = []
        self.flusher: gevent.Greenlet | None = None
        self.second, self.stamp = -1, ""
        atexit.register(self.flush)

    def write(self, environ: dict[str, Any], status: str, began: float) -> None:
        now = time.time()
        api, entrypoint, plan = labels(environ)
        method = environ.get("REQUEST_METHOD", "")
        path = raw_target(environ).partition("?")[0][:500]
        code = int(status[:3])
        took = round((time.perf_counter() - began) * 1000, 3)
        subscription = environ.get(SUBSCRIPTION) or ""
        client = client_address(environ)
        if self.as_json:
            line = json.dumps(
                {
                    "time": self._stamp(now, "%Y-%m-%dT%H:%M:%S", "."),
                    "level": "INFO",
                    "logger": LOGGER,
                    "message": f"{method} {path} {code}",
                    "method": method,
                    "path": path,
                    "status": code,
                    "duration_ms": took,
                    "api": api,
                    "entrypoint": entrypoint,
                    "plan": plan,
                    "subscription": subscription,
                    "client": client,
                }
            )
        else:
            # A path holding anything unprintable is written quoted: it cannot forge a line of the log.
            shown = path if path.isprintable() else repr(path)
            line = (
                f"{self._stamp(now, '%Y-%m-%d %H:%M:%S', ',')} INFO {LOGGER}: {method} {shown} {code} {took:.1f} ms "
                f"api={api or '-'} entrypoint={entrypoint or '-'} plan={plan or '-'} "
                f"subscription={subscription or '-'} client={client}"
            )
        self.pending.append(line)
        if self.flusher is None:
            self.flusher = gevent.spawn_later(FLUSH_S, self.flush)

    def _stamp(self, now: float, form: str, dot: str) -> str:
        second = int(now)
        if second != self.second:  # formatted once a second, not once a line
            self.second, self.stamp = second, time.strftime(form, time.localtime(second))
        return f"{self.stamp}{dot}{int((now - second) * 1000):03d}"

    def flush(self) -> None:
        self.flusher = None
        lines, self.pending = self.pending, []
        if lines:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the stream is gone (at exit): nothing left to tell
                pass
