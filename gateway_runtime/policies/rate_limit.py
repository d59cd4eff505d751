"""rate-limit: at most `limit` requests per period for each consumer (its subscription, or its
client identifier on a key-less plan), counted for this step alone, as Gravitee's policy does;
`key` (a template) counts by something else too, or alone with `useKeyOnly`. The quota policy is
the same over longer periods."""

import math
import time

from .. import metrics
from ..counters import counters
from ..http import client_identifier
from ..messages import Interrupted
from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import evaluate, template

UNITS = {"SECONDS": 1, "MINUTES": 60, "HOURS": 3600, "DAYS": 86400, "WEEKS": 7 * 86400, "MONTHS": 30 * 86400}


class Limit:
    """Counting shared by rate-limit, quota and spike-arrest; NAME the settings' key, the rest what is
    answered."""

    NAME, ERROR_KEY, HEADER, EXCEEDED = "rate", "RATE_LIMIT_TOO_MANY_REQUESTS", "X-Rate-Limit", "Rate limit exceeded"
    POLICY = "rate-limit"

    def __init__(self, configuration):
        settings = configuration[self.NAME]
        self.limit = settings["limit"]
        self.period = settings["periodTime"]
        self.unit = settings["periodTimeUnit"]
        self.allowed, self.seconds = self.window()
        self.key = template(settings.get("key") or "", f"{self.NAME}.key")
        self.key_only = settings["useKeyOnly"]
        self.add_headers = configuration["addHeaders"]
        self.counters = counters(strict=not configuration["async"])
        self.place = ""  # the step's place in the flows, set when the step is compiled

    def window(self):
        """(requests allowed, per so many seconds) as counted."""
        return self.limit, self.period * UNITS[self.unit]

    def exceeded(self):
        return f"{self.EXCEEDED} ! You reach the limit of {self.limit} requests per {self.period} {self.unit.lower()}"

    def parameters(self):
        """A response template's #error.parameters, named as Gravitee names them."""
        return {"limit": self.limit, "period_time": self.period, "period_unit": self.unit}

    def headers(self, count):
        return (
            (f"{self.HEADER}-Limit", str(self.allowed)),
            (f"{self.HEADER}-Remaining", str(max(self.allowed - count.used, 0))),
            (f"{self.HEADER}-Reset", str(count.reset_ms)),
        )

    def _counter_key(self, exchange):
        chosen = evaluate(self.key, exchange.context, "The key", self.ERROR_KEY) if self.key.text else ""
        if self.key_only and chosen:
            return f"{exchange.api.get('id')}:{self.place}:key:{chosen}"
        subscription = exchange.subscription
        who = subscription["id"] if subscription else client_identifier(exchange.request.environ)
        return f"{exchange.api.get('id')}:{self.place}:{who}:{chosen}"

    def on_request(self, exchange):
        count = self.counters.hit(self._counter_key(exchange), self.seconds)
        headers = self.headers(count)
        if count.used > self.allowed:
            wait = max(1, math.ceil(count.reset_ms / 1000 - time.time()))
            answer = (headers if self.add_headers else ()) + (("Retry-After", str(wait)),)
            metrics.RATE_LIMITED.labels(exchange.api.get("id") or "", self.POLICY).inc()
            raise Interrupted(429, self.exceeded(), self.ERROR_KEY, answer, self.parameters())
        if self.add_headers:
            exchange.answer_headers.extend(headers)

    def on_message(self, exchange, message):
        """Each message a client publishes counts as a request does (Gravitee's onMessageRequest)."""
        self.on_request(exchange)


def settings(name, units, default_unit, add_headers):
    return Settings(
        fields=(
            Field(f"{name}.limit", "integer", "Requests allowed", required=True, minimum=0, maximum=2**53 - 1),
            Field(f"{name}.periodTime", "integer", "Per", default=1, minimum=1, maximum=1_000_000),
            Field(f"{name}.periodTimeUnit", "enum", "Unit", default=default_unit, choices=units),
            Field(f"{name}.key", "expression", "Count by", help="Empty: the subscription (or client) alone"),
            Field(f"{name}.useKeyOnly", "boolean", "Count by this key alone", default=False),
            Field("addHeaders", "boolean", "Tell the client (X-...-Limit, -Remaining, -Reset)", default=add_headers),
            Field(
                "async",
                "boolean",
                "Non-strict mode",
                default=False,
                help="Counted in this process and added to the shared count in the background: no wait on Redis, "
                "but the limit may be passed by what other processes counted meanwhile",
            ),
        )
    )


SPEC = PolicySpec(
    type="rate-limit",
    label="Rate limit",
    policy=Limit,
    phases=("request", "publish"),
    description="Allow each consumer so many requests (or published messages) per second or minute.",
    configuration=settings("rate", ("SECONDS", "MINUTES"), "SECONDS", False),
)
