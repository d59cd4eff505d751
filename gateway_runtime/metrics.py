"""Prometheus metrics of the gateway (prometheus-client): requests by API, entrypoint, plan, method
and status class, and their durations, counted in the process that answers them. With `--workers
N` every worker writes its values to files of one folder (prometheus-client's multiprocess mode,
PROMETHEUS_MULTIPROC_DIR, set by `gatehouse serve` before it forks), so that a scrape of any worker
gives the node's totals.

Labels are bounded: API ids (not paths), entrypoint types, plan ids, the standard methods (any
other is OTHER) and status classes (2xx ...). A request no API takes is counted under api ""."""

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .plans import PLAN

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
SWITCH = "GATEHOUSE_METRICS"
LABELS = "gatehouse.metric_labels"  # environ key: (api id, entrypoint type) of the request; its plan is PLAN's
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# Seconds: from the gateway's own sub-millisecond answers to a long poll's.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "gatehouse_requests",
    "Requests the gateway answered",
    ["api", "entrypoint", "plan", "method", "status"],
)
DURATION = Histogram(
    "gatehouse_request_duration_seconds",
    "Time from a request's head to the end of its answer (a stream's: when it ends)",
    ["api", "entrypoint"],
    buckets=BUCKETS,
)
RATE_LIMITED = Counter(
    "gatehouse_rate_limited",
    "Requests and messages refused by a rate-limit, quota or spike-arrest step",
    ["api", "policy"],
)


# Children by label values, kept: prometheus-client's labels() takes a lock and builds its key each call
# (~4 µs here, more than the inc() it leads to).
_counted: dict[tuple[str, ...], Any] = {}
_timed: dict[tuple[str, ...], Any] = {}


def labels(environ: dict[str, Any]) -> tuple[str, str, str]:
    """(API id, entrypoint type, plan id) of a request, "" for what it did not reach."""
    api, entrypoint = environ.get(LABELS) or ("", "")
    return api, entrypoint, environ.get(PLAN) or ""


def record(environ: dict[str, Any], status: str, began: float) -> None:
    api, entrypoint, plan = labels(environ)
    method = environ.get("REQUEST_METHOD", "")
    key = (api, entrypoint, plan, method if method in METHODS else "OTHER", status[:1] + "xx")
    counted = _counted.get(key)
    if counted is None:
        counted = _counted[key] = REQUESTS.labels(*key)
    counted.inc()
    timed = _timed.get(key[:2])
    if timed is None:
        timed = _timed[key[:2]] = DURATION.labels(api, entrypoint)
    timed.observe(time.perf_counter() - began)


class Measured:
    """A streamed answer, told to the recorders when it ends (the server closes it)."""

    __slots__ = ("began", "body", "environ", "recorders", "status")

    def __init__(self, body: Any, environ: dict[str, Any], status: list[str], began: float, recorders: Any) -> None:
        self.body, self.environ, self.status, self.began, self.recorders = body, environ, status, began, recorders

    def __iter__(self) -> Any:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            for recorder in self.recorders:
                recorder(self.environ, self.status[0] if self.status else "500", self.began)


def measured(app: Any, recorders: list[Any]) -> Any:
    """The gateway's WSGI callable, each answer told to `recorders(environ, status line, start time)`. A
    whole answer (a list) is told at once and returned as it is: the server writes it with its length,
    in one send."""

    def answer(environ: dict[str, Any], start_response: Any) -> Any:
        began = time.perf_counter()
        status: list[str] = []

        def started(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)
            return start_response(line, headers, exc_info)

        body = app(environ, started)
        if isinstance(body, list):
            for recorder in recorders:
                recorder(environ, status[0] if status else "500", began)
            return body
        return Measured(body, environ, status, began, recorders)

    return answer


def on_off(name: str, default: str) -> bool:
    """A switch of the environment, on or off; anything else is a ValueError naming it (the start stops)."""
    value = os.environ.get(name, default).strip().lower() or default
    if value not in ("on", "off"):
        raise ValueError(f"{name} must be on or off, not {value[:40]!r}")
    return value == "on"


def metrics_on() -> bool:
    """GATEHOUSE_METRICS: on by default."""
    return on_off(SWITCH, "on")


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: this process's metrics, or with workers the node's (every worker's files)."""
    if os.environ.get(MULTIPROCESS):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
