"""HTTP health checks of proxy endpoints (Gravitee's `http-health-check` service): a cron
schedule with seconds, a request, an assertion on the status, success and failure thresholds."""

import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import gevent
from croniter import croniter

from .conditions import ResponseCondition
from .definition.slots import without_password
from .expressions import ExpressionError
from .http_client import ClientError, HttpClient, split_url

log = logging.getLogger("gatehouse.health")
DEFAULTS = {
    "method": "GET",
    "target": "/",
    "overrideEndpointPath": True,
    "assertion": "{#response.status == 200}",
    "successThreshold": 2,
    "failureThreshold": 2,
}
CHECK_TIMEOUT_S = 5
# A check asks whether the endpoint answers, not who it is: its certificate is not verified (so no
# certificate authorities are loaded for it either).
UNVERIFIED = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
UNVERIFIED.check_hostname, UNVERIFIED.verify_mode = False, ssl.CERT_NONE


def settings_of(group: dict[str, Any], endpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The health check that applies to an endpoint (its own, else its group's), or None."""
    for services in ((endpoint.get("services") or {}), (group.get("services") or {})):
        check = services.get("healthCheck")
        if isinstance(check, dict) and check.get("enabled", True):
            return {**DEFAULTS, **(check.get("configuration") or {})}
    return None


def problems(check):
    """What in a health check this gateway cannot run, for the blocking parts."""
    found = []
    try:
        croniter(check.get("schedule") or "", second_at_beginning=True)
    except (ValueError, KeyError):
        found.append(
            f"health check schedule '{check.get('schedule')}' is not a cron expression "
            "(seconds minutes hours day month weekday)"
        )
    try:
        ResponseCondition(check.get("assertion") or "", "health check assertion")
    except ExpressionError as exc:
        found.append(f"health check assertion '{check.get('assertion')}': {exc}")
    return found


class HealthCheck:
    """Runs one endpoint's checks in a greenlet and tells `on_change(up)` when it crosses a threshold."""

    def __init__(self, check: dict[str, Any], endpoint_target: str, on_change: Callable[[bool], None]) -> None:
        self.passes = ResponseCondition(check["assertion"], "health check assertion")
        self.check = check
        self.url = health_url(endpoint_target, check)
        self.on_change = on_change
        self.up = True
        self.streak = 0  # successes while down, failures while up
        self.origin, self.target = split_url(self.url)
        self.http = HttpClient(
            UNVERIFIED, connect_timeout=CHECK_TIMEOUT_S, read_timeout=CHECK_TIMEOUT_S, max_connections=1
        )
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        schedule = croniter(self.check["schedule"], datetime.now(), second_at_beginning=True)
        while True:
            gevent.sleep(max(0.0, schedule.get_next(float) - time.time()))
            self.record(self._probe())

    def _probe(self):
        try:
            body = self.check.get("body")
            response = self.http.request(
                self.origin,
                self.check["method"],
                self.target,
                {h["name"]: h["value"] for h in self.check.get("headers") or []},
                body.encode() if body else None,
            )
            content = response.read()  # to its end: the connection is kept for the next check
            return self.passes(response.status, response.headers, content.decode("utf-8", "replace"))
        except (ClientError, OSError):
            return False

    def record(self, passed):
        if passed == self.up:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= (self.check["successThreshold"] if passed else self.check["failureThreshold"]):
            self.up, self.streak = passed, 0
            log.info(
                "endpoint %s is %s", without_password(self.url), "back in rotation" if passed else "out of rotation"
            )
            self.on_change(passed)

    def stop(self) -> None:
        self.greenlet.kill()
        self.http.close()


def health_url(endpoint_target, check):
    path = check.get("target") or "/"
    if path.startswith(("http://", "https://")):
        return path
    path = path if path.startswith("/") else "/" + path
    if check.get("overrideEndpointPath", True):  # the check's path replaces the endpoint's
        parts = urlsplit(endpoint_target)
        return f"{parts.scheme}://{parts.netloc}{path}"
    return endpoint_target.rstrip("/") + path
