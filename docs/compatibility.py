"""Write docs/compatibility.md: which of the shared Gravitee v4 fixtures deploy on Gatehouse, and
what each of the others still lacks (its blocking parts), with the import warnings.

Each fixture is imported and deployed through the portal's Python API, in a throw-away instance
(temporary SQLite database, migrations applied), one at a time.

    python docs/compatibility.py [FIXTURES_DIR] [OUTPUT.md]
"""

import logging
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "gravitee-v4-fixtures"
DEFAULT_OUTPUT = ROOT / "docs" / "compatibility.md"


def survey(fixtures_dir):
    """[(relative path, status, blocking parts, warnings)], status one of deploys / blocked / refused."""
    import json

    sys.path.insert(0, str(ROOT))
    from flask_migrate import upgrade

    import app as gatehouse
    from gateway_runtime.definition import checks as v4
    from portal import apis

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GATEHOUSE_INSTANCE_PATH"] = os.path.join(tmp, "instance")
        os.environ.pop("GATEHOUSE_DATABASE_URL", None)
        application = gatehouse.create_app()
        application.logger.setLevel(logging.WARNING)
        with application.app_context():
            logging.getLogger("alembic").setLevel(logging.WARNING)
            upgrade(directory=str(ROOT / "migrations"))
            for path in sorted(p for p in Path(fixtures_dir).rglob("*.json") if p.is_file()):
                name = path.relative_to(fixtures_dir).as_posix()
                try:
                    api, _ = apis.create(json.loads(path.read_text()), None)
                except apis.DefinitionError as exc:
                    apis.db.session.rollback()
                    problems = [f"{e['field']}: {e['message']}" for e in exc.errors] or [exc.message]
                    rows.append((name, "refused", problems, []))
                    continue
                d = apis.definition_of(api)
                blocking, warnings = v4.blocking_parts(d), v4.warnings(d)
                try:
                    apis.deploy(api, "compatibility")
                    status = "deploys"
                except apis.DeployRefused:
                    status = "blocked"
                if (status == "deploys") == bool(blocking):
                    raise AssertionError(f"{name}: deploy result disagrees with its blocking parts {blocking}")
                rows.append((name, status, blocking, warnings))
                apis.delete(api)
    return rows


IMPORT_RULES = [
    "## What an import does with each part of a definition",
    "",
    "An import keeps every part of the definition (the export gives it back), but what the server that exported "
    "it set (`id` is replaced; `state`, `deployedAt`, `createdAt`, `updatedAt`, `lifecycleState`, "
    "`definitionContext`, `originContext`, `workflowState`, `primaryOwner`, `crossId` are dropped) and an export's "
    "`members`, `pages`, `metadata` and images. Whatever it keeps but does not apply is named, by its field, in the "
    "import answer (`gatehouse.warnings`, `gatehouse.blockingParts`; `warnings` for what the import did not take, "
    "such as `state STARTED`: an imported API is stopped until deployed and started) and on the API's page in the "
    "portal (`tests/test_reliability_imports.py`).",
    "",
    "**The rule.** A part is a *blocking part* (kept; Deploy is refused naming it) when ignoring it would let "
    "through a request, a client or a message that Gravitee refuses, or change what is delivered. It is a "
    "*warning* (kept; the API deploys) when ignoring it only loses the operator something (analytics, logs, "
    "traces), or makes Gatehouse refuse more than Gravitee would, never less (without CORS headers, browsers refuse "
    "calls from other origins).",
    "",
    "| part | on import |",
    "|---|---|",
    "| `type` message, proxy; `name`, `apiVersion`, `description` | applied |",
    "| `type` native (a `kafka` listener: `host`, `port`) | kept; blocks: the Kafka native listener (type NATIVE) "
    "is not supported yet |",
    "| `listeners[].paths[]` `path`, `host` | applied (`overrideAccess` is kept: only Gravitee's developer portal "
    "reads it) |",
    "| `listeners[].entrypoints[]` `type`, `qos`, `configuration`, `dlq` | applied for the connectors listed in the "
    "README (a dead-letter queue for webhook only); any other blocks |",
    "| `listeners[].cors` | applied: preflights answered, Access-Control-* on every answer, a request from "
    "an origin not allowed refused (403); a malformed block (an `allowOrigin` entry that is neither an origin "
    "nor a regular expression, a method or header name with spaces, `maxAge` below -1) is refused at import |",
    "| `listeners[].pathMappings` | warning (they group analytics only) |",
    "| `listeners[].servers` | blocks (the gateway port would serve what a named server only should) |",
    "| `endpointGroups[]`: `type`, `loadBalancer`, `sharedConfiguration`, `endpoints[]` (`weight`, `secondary`, "
    "`inheritConfiguration`, `configuration`, `sharedConfigurationOverride`) | applied for the connectors listed "
    "in the README; any other, and settings they cannot use, block |",
    "| endpoint and group `services` | HTTP health checks of http-proxy groups applied; any other service blocks |",
    "| endpoint `tenants` | blocks |",
    "| `failover` | applied (on a tcp listener's API it blocks) |",
    "| `flows[]`, plans' `flows` (`selectors`, steps per phase, `condition`, `messageCondition`) | applied for the "
    "policies listed in the README (Flows and policies); a step of any other policy blocks, naming it; steps in "
    "other phases (`connect`, `interact`) block; Gravitee's test-kit `message-flow-ready`: a warning; an `http` "
    "selector of a message API: a warning (Gravitee chooses a message API's flows by channel and condition) |",
    "| `flowExecution.mode`, `flowExecution.matchRequired` | applied (DEFAULT, BEST_MATCH; 404 when no flow ran) |",
    "| `gravitee.attribute...` set by `assign-attributes` | applied where the endpoint reads it when publishing "
    "(Kafka topics, the MQTT 5 topic); any other, or one set for consuming, blocks |",
    "| `plans[]` `security`, `mode`, `status`, `validation` | applied (key-less, API key, JWT, push; others block) |",
    "| `plans[].selectionRule`, `plans[].tags` | block |",
    "| `plans[]` `description`, `order`, `characteristics`, `commentRequired`, `generalConditions`, "
    "`excludedGroups` | kept: only Gravitee's developer portal reads them |",
    "| `analytics.enabled: true`, `analytics.logging`, `analytics.tracing`, `analytics.sampling`, "
    "`analytics.messageSampling` | warnings (while analytics are on, Gravitee's default) |",
    "| `properties` | applied: flows read them as `#api.properties` (`encrypted` ones are secrets) |",
    "| expression language `{#...}` | applied in flows, failover conditions and health-check assertions (refused "
    "at import when it cannot be parsed); in listeners or endpoint settings it blocks |",
    "| secret references `{#secrets...}` | block |",
    "| `responseTemplates` | applied to the gateway's own errors (policies', plans', CORS, the endpoint's 502/504),"
    " by error key, its parent key or DEFAULT, and Accept; a media type `*.*`: a warning (no Accept names it) |",
    "| `resources`, enabled API `services` (dynamic properties) | block |",
    "| `tags` (sharding tags) | block (every Gatehouse gateway would serve the API) |",
    "| `groups`, `categories`, `visibility: PRIVATE` | warnings (Gatehouse has no user groups, catalogue or "
    "per-API visibility) |",
    "| `disableMembershipNotifications` | kept: Gatehouse sends no membership notifications |",
    "| an export's `members`, `pages`, `metadata` | not imported: named in `warnings` |",
    "",
]


def kind(part):
    """A blocking part without the names of the API's own groups, endpoints and plans."""
    part = re.sub(r" on (endpoint|group) .*$", "", part)
    return re.sub(r" not available yet \(plan .*\)$", "", part)


def cell(items):
    return "<br>".join(item.replace("|", "\\|") for item in items) if items else ""


def render(rows, fixtures_dir):
    statuses = Counter(status for _, status, _, _ in rows)
    kinds = Counter(k for _, status, parts, _ in rows if status == "blocked" for k in {kind(p) for p in parts})
    alone = Counter(
        kind(parts[0]) for _, status, parts, _ in rows if status == "blocked" and len({kind(p) for p in parts}) == 1
    )
    lines = [
        "# Gravitee v4 fixture compatibility",
        "",
        f"Generated by `python docs/compatibility.py` from the {len(rows)} API definitions in "
        "`../shared/gravitee-v4-fixtures` (Gravitee APIM integration-test data). Each is imported and deployed in a "
        "fresh instance. *Deploys* means Gatehouse runs it as it is; otherwise the table lists the "
        "parts it keeps but cannot run yet (`gatehouse.blockingParts`, which block Deploy). Warnings "
        "name the parts kept but not applied, and the test-kit-only parts that are ignored.",
        "",
        f"- **{len(rows)}** fixtures, **{statuses['deploys']}** deploy, **{statuses['blocked']}** blocked"
        + (f", **{statuses['refused']}** refused at import" if statuses["refused"] else "")
        + f", {sum(1 for row in rows if row[3])} with warnings.",
        "",
        "Fixtures name placeholder hosts (`bootstrap-server`, `mqtt5-host`, ...): imported as they are, they are "
        "blocked by those settings until a real address is given; the connector tests rewrite them to the local "
        "brokers (`tests/test_kafka_fixtures.py`). A RabbitMQ host (`rabbitmq-host`) is a valid name, so those "
        "fixtures deploy as they are and answer 502 naming the broker that cannot be reached; "
        "`tests/test_rabbitmq_fixtures.py` runs them against the local broker.",
        "",
        *IMPORT_RULES,
        "## Connector features that cannot be tried end to end here",
        "",
        "- **Kafka SASL** (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER, GSSAPI): the local broker, Tansu, offers only "
        "SCRAM and cannot create users, so no SASL handshake is tested against a broker. What is tested: the "
        "JAAS config is parsed and checked against the mechanism at save (`tests/test_jaas.py`, "
        "`tests/test_kafka_portal.py`), and each mechanism's form input becomes the exact kafka-python client "
        "settings, down to the first bytes of kafka-python's own SASL exchange (`tests/test_kafka_settings.py`, "
        "`tests/test_jaas.py`). GSSAPI needs the `gssapi` package, which is not installed: choosing it is "
        "refused at save with that reason.",
        "- **RabbitMQ TLS**: the local broker (shared, not ours to reconfigure) has no TLS listener; the tests put "
        "stunnel in front of it with a CA of their own, so TLS is tried end to end through that "
        "(`tests/test_rabbitmq_settings.py`), not against RabbitMQ's own TLS.",
        "- **Solace**: no PubSub+ broker can run here, so nothing Solace-specific was verified against a real broker. "
        "Verified with the real solace-pubsubplus 1.11 library: a closed port gives `Connection refused to "
        "tcp://host:port` (a 502, an SSE error event, WebSocket close 1011, the portal's endpoint status) in about "
        "half a second including the worker's start, while the gateway serves other APIs "
        "(`tests/test_solace_real.py`), and every Solace fixture deploys and reports it, or is blocked naming what it "
        "lacks (`tests/test_solace_fixtures.py`). Verified with a test double standing in for the library inside the "
        "real worker process (`tests/support/solace_double.py`): publish and direct / persistent subscribe, "
        "acknowledgements and redelivery (`isRedelivered`), user properties as headers, metadata, authentication and "
        "VPN errors, a killed worker, after which open streams subscribe again on a new one, up to 3 times per client "
        "(`tests/test_solace.py`); the double's broker behaviour and error texts are our reading of the library's "
        "documentation. `tests/test_solace_contract.py` checks them against a real broker when `SOLACE_URL`, "
        "`SOLACE_VPN`, `SOLACE_USERNAME` and `SOLACE_PASSWORD` are set; it has not been run. TLS (`tcps://`) was "
        "checked only as far as the trust store becoming a PEM directory.",
        "",
        "## Where Gatehouse deliberately differs from Gravitee",
        "",
        "- **Failover of non-idempotent requests**: a POST or PATCH is sent to another endpoint only when it never "
        "reached its backend (refused, unresolvable, TLS handshake failed) or the failure condition names the "
        "answer it got; Gravitee also resends it after a slow call, which may apply it twice. Bodies over 1 MiB "
        "stream and are sent once.",
        "- **Queue names** of the RabbitMQ and Solace consumers are `gravitee/gio-gateway/<api id>-<client "
        "identifier>`: with Gravitee's `gravitee/gio-gateway/<client identifier>`, one key-less client of two "
        "APIs would read both APIs' messages from one queue.",
        "",
        "## What blocks the most fixtures",
        "",
        "| part | fixtures it blocks | fixtures blocked by it alone |",
        "|---|---:|---:|",
    ]
    for name, count in sorted(kinds.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| {cell([name])} | {count} | {alone.get(name, 0)} |")
    lines += ["", "## Fixtures", "", "| fixture | result | still lacks | warnings |", "|---|---|---|---|"]
    for name, status, parts, warnings in rows:
        result = {"deploys": "deploys", "blocked": "blocked", "refused": "**refused at import**"}[status]
        lines.append(f"| `{name}` | {result} | {cell(parts)} | {cell(warnings)} |")
    return "\n".join(lines) + "\n"


def main(argv):
    fixtures_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_FIXTURES
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    rows = survey(fixtures_dir)
    output.write_text(render(rows, fixtures_dir))
    counts = Counter(status for _, status, _, _ in rows)
    print(f"{output}: {len(rows)} fixtures, " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 1 if counts["refused"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
