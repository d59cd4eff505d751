"""Choosing the endpoint of a call: the Balancer (the group's load balancer over the endpoints that
are up), and failover, the API's `failover` block: a call that fails is retried on another
endpoint, and a circuit breaker stops calling backends that keep failing.

As in Gravitee, one call (with its retries) is one outcome for the breaker: after `maxFailures`
failed calls in a row the circuit opens; for `openStateDuration` calls fail at once with 502;
then one trial call decides whether it closes again. A call fails when the backend cannot be
reached, answers later than `slowCallDuration`, or answers with a status that `failureCondition`
names.

Unlike Gravitee, a request that is not idempotent (POST, PATCH) is sent again only when the
backend cannot have acted on it: it was never delivered (refused, unresolvable, TLS handshake
failed) or the backend answered with a status the failure condition names. A POST that was
delivered and is merely slow is not repeated: the backend may still apply it.
"""

import collections
import itertools
import random
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import gevent

from .conditions import ResponseCondition
from .expressions import ExpressionError
from .messages import EndpointConnector, EndpointError, NotFound, Request, Unreachable
from .settings import Field, Settings

IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
MAX_BREAKERS = 10_000  # per-subscription breakers kept, the least recently used dropped first
T = TypeVar("T")


class ProxyConnector(Protocol):
    """An endpoint connector of a proxy API (http-proxy): it forwards requests."""

    def forward(self, request: Request) -> Any: ...


def _check_condition(values: dict[str, Any], settings: Settings) -> dict[str, str]:
    condition = values.get("failureCondition")
    if condition:
        try:
            ResponseCondition(condition, "failover failure condition")
        except ExpressionError as exc:
            return {"failureCondition": f"Failure condition: {exc}"}
    return {}


SETTINGS = Settings(
    fields=(
        Field("enabled", "boolean", "Enable failover", default=False),
        Field(
            "maxRetries",
            "integer",
            "Max retries",
            default=2,
            minimum=0,
            maximum=100,
            when=("enabled", (True,)),
            help="Further endpoints tried after a failed call.",
        ),
        Field(
            "slowCallDuration",
            "integer",
            "Slow call duration (ms)",
            default=2000,
            minimum=1,
            when=("enabled", (True,)),
            help="A call slower than this is abandoned and counts as failed.",
        ),
        Field(
            "openStateDuration",
            "integer",
            "Open state duration (ms)",
            default=10000,
            minimum=1,
            when=("enabled", (True,)),
            help="How long calls fail at once after the circuit opened.",
        ),
        Field(
            "maxFailures",
            "integer",
            "Max failures",
            default=5,
            minimum=1,
            maximum=10000,
            when=("enabled", (True,)),
            help="Failed calls in a row that open the circuit.",
        ),
        Field("perSubscription", "boolean", "One circuit per subscription", default=True, when=("enabled", (True,))),
        Field(
            "forceNextEndpointOnFailure",
            "boolean",
            "Retry on the next endpoint of the group",
            default=False,
            when=("enabled", (True,)),
        ),
        Field(
            "failureCondition",
            "expression",
            "Failure condition",
            when=("enabled", (True,)),
            help="An answer that counts as a failure, e.g. {#response.status >= 500}.",
        ),
    ),
    checks=(_check_condition,),
)


def problems(failover: object) -> list[str]:
    """What in a `failover` block this gateway cannot run, for the blocking parts."""
    if not isinstance(failover, dict) or not failover.get("enabled"):
        return []
    return [f"failover: {message}" for message in SETTINGS.validate(failover)[1].values()]


class CircuitOpen(EndpointError):
    pass


class SlowCall(Exception):
    pass


class CircuitBreaker:
    def __init__(self, max_failures: int, open_seconds: float) -> None:
        self.max_failures, self.open_seconds = max_failures, open_seconds
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False  # a half-open trial call is in flight

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self.trial or time.monotonic() - self.opened_at < self.open_seconds:
            return False
        self.trial = True
        return True

    def record(self, succeeded: bool) -> None:
        if self.trial:
            self.trial = False
            self.opened_at = None if succeeded else time.monotonic()
            self.failures = 0
        elif succeeded:
            self.failures = 0
        else:
            self.failures += 1
            if self.failures >= self.max_failures:
                self.opened_at, self.failures = time.monotonic(), 0


class Failover:
    def __init__(self, config: dict[str, Any]) -> None:
        self.retries = config["maxRetries"]
        self.slow_seconds = config["slowCallDuration"] / 1000
        self.force_next = config["forceNextEndpointOnFailure"]
        condition = config.get("failureCondition")
        self.fails = ResponseCondition(condition, "failover failure condition") if condition else None
        self.per_subscription = config["perSubscription"]
        self._new_breaker: Callable[[], CircuitBreaker] = lambda: CircuitBreaker(
            config["maxFailures"], config["openStateDuration"] / 1000
        )
        self._breaker = self._new_breaker()
        self._breakers: collections.OrderedDict[str | None, CircuitBreaker] = collections.OrderedDict()

    def breaker(self, client_id: str | None) -> CircuitBreaker:
        if not self.per_subscription:
            return self._breaker
        breaker = self._breakers.pop(client_id, None) or self._new_breaker()
        self._breakers[client_id] = breaker
        if len(self._breakers) > MAX_BREAKERS:
            self._breakers.popitem(last=False)
        return breaker

    def forward(self, balancer: "Balancer", request: Request, client_id: str | None) -> Any:
        """Send an HTTP request (messages.Request) on, retrying as configured; return the first
        answer that is not a failure."""

        def failed(answer: Any) -> str | None:
            if self.fails is None or not self.fails(answer.status_code, answer.headers):
                return None
            answer.discard()
            return f"the backend answered {answer.status_code}, which the API's failure condition counts as a failure"

        replayable = request.make_replayable()
        # A streamed upload may take any time: only its endpoint's own timeouts apply to it.
        return self.call(
            balancer,
            client_id,
            lambda connector: cast(ProxyConnector, connector).forward(request),
            idempotent=request.method in IDEMPOTENT,
            replayable=replayable,
            slow_seconds=self.slow_seconds if replayable else None,
            failed=failed,
        )

    def call(
        self,
        balancer: "Balancer",
        client_id: str | None,
        send: Callable[[EndpointConnector], T],
        idempotent: bool,
        replayable: bool = True,
        slow_seconds: float | None = None,
        failed: Callable[[T], str | None] | None = None,
    ) -> T:
        """send(connector) on endpoints picked by the balancer until one succeeds or the retries
        are spent. `failed(result)` names why a result counts as a failure (None when it does not)."""
        breaker = self.breaker(client_id)
        if not breaker.allow():
            raise CircuitOpen("the backends of this API keep failing: calls are paused for a while (circuit open)")
        connector = balancer.pick()
        attempt = 0
        while True:
            try:
                with gevent.Timeout(slow_seconds, SlowCall):
                    result = send(connector)
            except SlowCall:
                assert slow_seconds is not None  # only a timeout raises it
                error, may_retry = (
                    EndpointError(f"the backend did not answer within {slow_seconds * 1000:g} ms"),
                    idempotent,
                )
            except NotFound:
                breaker.record(True)  # the backend answered: what was asked for does not exist
                raise
            except EndpointError as exc:
                error, may_retry = exc, idempotent or isinstance(exc, Unreachable)
            else:
                why = failed(result) if failed else None
                if why is None:
                    breaker.record(True)
                    return result
                error, may_retry = EndpointError(why), True
            attempt += 1
            if not (may_retry and replayable) or attempt > self.retries:
                breaker.record(False)
                if attempt > 1:
                    # of the kind of the last failure: a 504 "outcome unknown" must not turn into a 502
                    raise type(error)(f"{error} (after {attempt} attempts)") from None
                raise error
            connector = balancer.next_after(connector) if self.force_next else balancer.pick()


class NoEndpointUp(EndpointError):
    status = "503 Service Unavailable"


class Balancer:
    """Picks the connector for one call among the endpoints that are up (health checks take them
    out of rotation and back). Secondary endpoints serve only when no primary one is up."""

    def __init__(self, kind: str, endpoints: list[tuple[EndpointConnector, int, bool]]) -> None:
        self.kind = kind
        self.endpoints = endpoints  # (connector, weight, secondary)
        self.down: set[EndpointConnector] = set()
        self._arrange()

    def set_up(self, connector: EndpointConnector, up: bool) -> None:
        (self.down.discard if up else self.down.add)(connector)
        self._arrange()

    def _arrange(self) -> None:
        live = [e for e in self.endpoints if e[0] not in self.down]
        self.pool = [e for e in live if not e[2]] or live
        self.weights = [e[1] for e in self.pool]
        if self.kind == "weighted-round-robin":
            self.cycle = itertools.cycle([e[0] for e in self.pool for _ in range(e[1])])
        else:
            self.cycle = itertools.cycle([e[0] for e in self.pool])

    def next_after(self, connector: EndpointConnector) -> EndpointConnector:
        """The endpoint after this one in the group's order (failover's forceNextEndpointOnFailure)."""
        connectors = [e[0] for e in self.pool]
        if not connectors:
            return self.pick()
        position = connectors.index(connector) if connector in connectors else -1
        return connectors[(position + 1) % len(connectors)]

    def pick(self) -> EndpointConnector:
        if not self.pool:
            raise NoEndpointUp("no endpoint of this API is up (all fail their health checks)")
        if self.kind == "random":
            return random.choice(self.pool)[0]
        if self.kind == "weighted-random":
            return random.choices(self.pool, self.weights)[0][0]
        return next(self.cycle)
