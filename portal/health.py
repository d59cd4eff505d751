"""An API's health as the portal shows it: stopped, started, or degraded (started, but an endpoint of
its deployed revision cannot be reached, with the endpoint's name and what is wrong).

The connectors' probes open a connection to the backend (about 1 s at worst). Every endpoint of
every API asked about is probed at once, in greenlets, and each answer is kept for CACHE_SECONDS,
so that many tabs polling the same APIs cost the brokers one connection per endpoint every
couple of seconds, and a page waits at most WAIT_SECONDS.
"""

import hashlib
import json
import time
from dataclasses import dataclass

import gevent

from gateway_runtime import registry

CACHE_SECONDS = 2.0
WAIT_SECONDS = 1.5  # a probe gives up connecting after 1 s; this bounds a page that asks
_probes = {}  # (endpoint type, configuration as JSON) -> (greenlet, started at)


@dataclass(frozen=True)
class Health:
    state: str  # started | stopped | degraded
    problems: tuple  # (endpoint name, error) of each endpoint that cannot be reached

    @property
    def digest(self):
        """What the page shows, in short: a poll that sends it back gets nothing when it still holds."""
        text = json.dumps([self.state, self.problems])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def of_apis(apis):
    """{api id: Health} of the APIs, their endpoints probed in parallel."""
    probed = {api.id: _probe_deployed(api) for api in apis}
    gevent.joinall([greenlet for pending in probed.values() for _, greenlet in pending], timeout=WAIT_SECONDS)
    return {api.id: _health(api, probed[api.id]) for api in apis}


def of_api(api):
    return of_apis([api])[api.id]


def unprobed(api):
    """What the API's row alone says, for pages that must not wait on probes: their poll asks for
    the probed state as soon as they are shown."""
    return Health("started" if api.state == "started" else "stopped", ())


def _health(api, pending):
    if api.state != "started":
        return Health("stopped", ())
    answers = [(name, _answer(greenlet)) for name, greenlet in pending]
    problems = tuple((name, error) for name, error in answers if error)
    return Health("degraded" if problems else "started", problems)


def _answer(greenlet):
    if not greenlet.ready():
        return f"no answer within {WAIT_SECONDS:g} s"
    return greenlet.value


def _probe_deployed(api):
    """[(endpoint name, greenlet of its probe)] for each endpoint of the deployed revision whose
    connector can be probed; none for a stopped API."""
    deployment = api.deployments.first() if api.state == "started" else None
    if deployment is None:
        return []
    pending = []
    for group in deployment.definition.get("endpointGroups", []):
        for endpoint in group.get("endpoints", []):
            spec = registry.endpoint(endpoint.get("type"))
            if spec is not None and spec.probe is not None:
                pending.append((endpoint.get("name"), _probe(spec, endpoint.get("configuration") or {})))
    return pending


def _probe(spec, configuration):
    """The greenlet of a probe of this backend: one started less than CACHE_SECONDS ago, or a new one."""
    now = time.monotonic()
    for key, (greenlet, started) in list(_probes.items()):
        if greenlet.ready() and now - started > CACHE_SECONDS:
            del _probes[key]
    key = (spec.type, json.dumps(configuration, sort_keys=True, default=str))
    if key not in _probes:
        _probes[key] = (gevent.spawn(_run, spec, configuration), now)
    return _probes[key][0]


def _run(spec, configuration):
    try:
        return spec.probe(spec.configuration.with_defaults(configuration))
    except Exception as exc:
        return f"cannot be checked: {exc}"
