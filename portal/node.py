"""The node's health for load balancers and operators, at Gravitee's `/_node/health`: one entry per
probe, `{"healthy": bool, "message": ...}`, 200 when every probe asked about is healthy, 500
otherwise; `?probes=a,b` asks about some only. Open to anyone (a load balancer has no session):
the messages name what is down, never a credential."""

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

from gateway_runtime.counters import RedisCounters, counters
from gateway_runtime.outage import one_line

from .auth import public
from .models import db

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


def _probes():
    """name -> probe() -> (healthy, message), the probes this node has."""
    probes = {"database": _database}
    shared = counters()
    if isinstance(shared, RedisCounters):  # the traffic-control policies count there
        probes["redis"] = shared.health
    return probes


@bp.get("/_node/health")
@public
def health():
    probes = _probes()
    asked = [name.strip() for name in request.args.get("probes", "").split(",") if name.strip()]
    unknown = [name for name in asked if name not in probes]
    if unknown:
        known = ", ".join(sorted(probes))
        return jsonify({"message": f"No such probe: {', '.join(unknown)[:200]}. This node has: {known}."}), 400
    answers = {}
    for name in asked or probes:
        healthy, message = probes[name]()
        answers[name] = {"healthy": healthy, **({"message": message} if message else {})}
    return jsonify(answers), 200 if all(a["healthy"] for a in answers.values()) else 500
