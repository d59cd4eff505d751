"""The node's health for load balancers, Kubernetes and operators, at Gravitee's paths.

`/_node/health`: one entry per probe, `{"healthy": bool, "message": ...}`, 200 when every probe
asked about is healthy, 500 otherwise; `?probes=a,b` asks about some only. Probes: the database,
Redis when the traffic-control policies count there, the gateway (its deployments loaded), and
each started API (its endpoints reachable, as its page shows it). `/_node/health/live` answers
while the process does; `/_node/health/ready` once the gateway has its deployments, 503 before.
Open to anyone (a load balancer has no session): the messages name what is down, never a
credential.
"""

import hmac
import os

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from sqlalchemy import text

from gateway_runtime import metrics
from gateway_runtime.counters import RedisCounters, counters
from gateway_runtime.outage import one_line

from . import health as api_health
from .auth import forbidden_message, has_role, public
from .models import Api, db

METRICS_TOKEN = "GATEHOUSE_METRICS_TOKEN"

bp = Blueprint("node", __name__)


def _database():
    if current_app.extensions.get("gatehouse_unreachable"):
        return False, current_app.extensions["gatehouse_unreachable"]
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # a driver raises many types; each means the database cannot answer
        db.session.rollback()
        return False, f"the database cannot be reached: {one_line(exc)}"
    return True, ""


def _gateway():
    gateway = current_app.extensions.get("gatehouse_gateway")
    if gateway is None or not gateway.loaded:
        return False, "the gateway has not loaded its deployments yet"
    return True, ""


def _api_probe(found):
    """The probe of one started API, from what its endpoints' probes answered."""

    def probe():
        if found.state == "degraded":
            return False, "; ".join(f"endpoint {name}: {error}" for name, error in found.problems)
        return True, ""

    return probe


def _probes(with_apis):
    """name -> probe() -> (healthy, message), the probes this node has; the APIs' ones (each probes
    its endpoints, in parallel, a second and a half at most) only when `with_apis`."""
    probes = {"database": _database, "gateway": _gateway}
    shared = counters()
    if isinstance(shared, RedisCounters):  # the traffic-control policies count there
        probes["redis"] = shared.health
    if with_apis and not current_app.extensions.get("gatehouse_unreachable"):
        try:
            started = Api.query.filter_by(state="started").order_by(Api.id).all()
        except Exception:  # the database went away since: its own probe says so
            db.session.rollback()
            started = []
        for api_id, found in api_health.of_apis(started).items():
            probes[f"api:{api_id}"] = _api_probe(found)
    return probes


@bp.get("/_node/health")
@public
def health():
    asked = [name.strip() for name in request.args.get("probes", "").split(",") if name.strip()]
    with_apis = not asked or any(name.startswith("api:") for name in asked)
    probes = _probes(with_apis)
    unknown = [name for name in asked if name not in probes]
    if unknown:
        known = ", ".join(sorted(probes if with_apis else _probes(True)))
        return jsonify({"message": f"No such probe: {', '.join(unknown)[:200]}. This node has: {known}."}), 400
    answers = {}
    for name in asked or probes:
        healthy, message = probes[name]()
        answers[name] = {"healthy": healthy, **({"message": message} if message else {})}
    return jsonify(answers), 200 if all(a["healthy"] for a in answers.values()) else 500


@bp.get("/_node/health/live")
@public
def live():
    return jsonify({"status": "UP"})


@bp.get("/_node/health/ready")
@public
def ready():
    healthy, message = _gateway()
    if not healthy:
        return jsonify({"status": "DOWN", "message": message}), 503, {"Retry-After": "1"}
    return jsonify({"status": "UP"})


def _may_scrape():
    """The metrics token (Authorization: Bearer, for a scraper), or a logged-in admin."""
    token = os.environ.get(METRICS_TOKEN, "")
    sent = request.headers.get("Authorization", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode()):
        return
    if g.user is None:
        needed = f"Metrics need the metrics token (Authorization: Bearer, set by {METRICS_TOKEN}) or an admin's login"
        response = jsonify({"message": needed + "."})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="gatehouse metrics"'
        abort(response)
    if not has_role(g.user, "admin"):
        abort(403, forbidden_message("admin"))


@bp.get("/metrics")
@bp.get("/_node/metrics/prometheus")
@public
def prometheus():
    _may_scrape()
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
