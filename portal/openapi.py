"""OpenAPI 3.1 description of the management REST API: every route, body and answer (the fuzz
test generates its requests from it, and checks the answers against it)."""

from gateway_runtime import plans as rules

from .models import MAX_ROW_ID


def _ref(name):
    return {"$ref": "#/components/schemas/" + name}


ERROR, API = _ref("Error"), _ref("Api")
CODES = {
    400: "Invalid input",
    401: "Authentication required (HTTP Basic or a personal access token)",
    403: "The user's role does not allow it; the message says what to do",
    404: "No such API, or no such plan, application, subscription or API key (the message says which)",
    409: "Context path already used by another API, or (deploy) another deploy made the same revision",
    429: "Too many failed logins for this user name or client address; see Retry-After",
}
AUTHENTICATED = (401, 403, 429)


def _op(summary, ok, body=None, codes=(), body_required=True):
    """body: the request body's schema (None: the operation takes none)."""
    responses = {
        str(code): {"description": text, **({"content": {"application/json": {"schema": schema}}} if schema else {})}
        for code, (text, schema) in ok.items()
    }
    for code in (*codes, *AUTHENTICATED):
        responses[str(code)] = {"description": CODES[code], "content": {"application/json": {"schema": ERROR}}}
    op = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    return op


def _object(properties, required=()):
    return {"type": "object", "properties": properties, **({"required": list(required)} if required else {})}


def _page(name):
    """A list answer: {"data": [...]}, as Gravitee's."""
    return _object({"data": {"type": "array", "items": _ref(name)}}, ("data",))


DEFINITION = {
    "description": "A Gravitee v4 export envelope, or a bare v4 API in the gateway (definitionVersion "
    "4.0.0) or management (V4) form.",
    "anyOf": [_ref("Definition"), _ref("Envelope")],
}
STRING, CONFIGURATION = {"type": "string"}, {"type": "object"}
METADATA = {
    "type": "object",
    "additionalProperties": {"type": "string", "maxLength": 2000},
    "maxProperties": 64,
    "description": "What the API's flows read of the subscription (#subscription.metadata)",
}
KEY_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
OPTIONAL_STRING, TIME = {"type": ["string", "null"]}, {"type": "string", "format": "date-time"}
# A plan as sent: the security type counts only when the plan is made (a plan's type never changes);
# the configuration fields are those of JWT plans (api-key and key-less plans have none).
PLAN_FIELDS = {
    "name": STRING,
    "description": STRING,
    "validation": {"enum": list(rules.VALIDATIONS)},
    "security": _object(
        {
            "type": {"enum": ["API_KEY", "JWT", "KEY_LESS", *rules.TYPES]},
            "configuration": _object(
                {
                    "signature": {"enum": list(rules.SIGNATURES)},
                    "publicKeyResolver": {"enum": list(rules.RESOLVERS)},
                    "resolverParameter": STRING,
                    rules.REQUIRE_EXP: {
                        "type": "boolean",
                        "description": ("Refuse tokens without an exp claim; a new plan's default is true."),
                    },
                }
            ),
        }
    ),
}
SCHEMAS = {
    "Error": _object(
        {"message": STRING, "errors": {"type": "array", "items": _object({"field": STRING, "message": STRING})}},
        ("message", "errors"),
    ),
    "Api": _object(
        {
            "id": STRING,
            "name": STRING,
            "apiVersion": STRING,
            "definitionVersion": STRING,
            "type": {"enum": ["MESSAGE", "PROXY", "NATIVE"]},
            "state": {"enum": ["STARTED", "STOPPED"]},
            "listeners": {"type": "array"},
            "endpointGroups": {"type": "array"},
        },
        ("id", "name", "type", "state"),
    ),
    "Definition": _object(
        {
            "name": STRING,
            "apiVersion": STRING,
            "description": STRING,
            "definitionVersion": {"enum": ["4.0.0", "V4"]},
            "type": {"enum": ["message", "proxy", "native", "MESSAGE", "PROXY", "NATIVE"]},
            "listeners": {
                "type": "array",
                "items": _object(
                    {
                        "type": {
                            "enum": ["http", "subscription", "tcp", "kafka", "HTTP", "SUBSCRIPTION", "TCP", "KAFKA"]
                        },
                        "paths": {"type": "array", "items": _object({"path": STRING, "host": STRING}, ("path",))},
                        "entrypoints": {
                            "type": "array",
                            "items": _object(
                                {"type": STRING, "qos": STRING, "configuration": CONFIGURATION}, ("type",)
                            ),
                        },
                    },
                    ("type",),
                ),
            },
            "endpointGroups": {
                "type": "array",
                "items": _object(
                    {
                        "name": STRING,
                        "type": STRING,
                        "loadBalancer": _object({"type": STRING}),
                        "sharedConfiguration": CONFIGURATION,
                        "endpoints": {
                            "type": "array",
                            "items": _object(
                                {
                                    "name": STRING,
                                    "type": STRING,
                                    "weight": {"type": "integer"},
                                    "inheritConfiguration": {"type": "boolean"},
                                    "secondary": {"type": "boolean"},
                                    "configuration": CONFIGURATION,
                                    "sharedConfigurationOverride": CONFIGURATION,
                                },
                                ("name", "type"),
                            ),
                        },
                    },
                    ("name", "type"),
                ),
            },
            "plans": {
                "type": "array",
                "items": _object(
                    {
                        "id": STRING,
                        "name": STRING,
                        "security": _object({"type": STRING}, ("type",)),
                        "mode": STRING,
                        "status": STRING,
                    },
                    ("security",),
                ),
            },
        },
        ("name", "type", "listeners", "endpointGroups"),
    ),
    "Envelope": _object({"api": _ref("Definition"), "plans": {"type": "array"}}, ("api",)),
    "NewPlan": _object(PLAN_FIELDS, ("name", "security")),
    "PlanUpdate": _object(PLAN_FIELDS, ("name",)),
    "Plan": _object(
        {
            "id": STRING,
            "apiId": STRING,
            "name": STRING,
            "description": STRING,
            "security": _object({"type": STRING, "configuration": CONFIGURATION}, ("type",)),
            "mode": STRING,
            "status": {"enum": ["STAGING", "PUBLISHED", "DEPRECATED", "CLOSED"]},
            "validation": {"enum": list(rules.VALIDATIONS)},
        },
        ("id", "apiId", "name", "security", "validation"),
    ),
    "NewApplication": _object(
        {
            "name": STRING,
            "description": STRING,
            "clientId": {
                "type": "string",
                "description": "Or settings.app.clientId; the application's id when neither is given",
            },
            "settings": _object({"app": _object({"clientId": STRING})}),
        },
        ("name",),
    ),
    "Application": _object(
        {
            "id": STRING,
            "name": STRING,
            "description": STRING,
            "settings": _object({"app": _object({"clientId": STRING}, ("clientId",))}, ("app",)),
            "owner": _object({"id": {"type": "integer"}}, ("id",)),
            "createdAt": TIME,
        },
        ("id", "name", "settings", "owner", "createdAt"),
    ),
    "NewSubscription": _object(
        {"applicationId": STRING, "planId": STRING, "consumerConfiguration": CONFIGURATION, "metadata": METADATA},
        ("applicationId", "planId"),
    ),
    "SubscriptionUpdate": _object({"consumerConfiguration": CONFIGURATION, "metadata": METADATA}),
    "Rejection": _object({"reason": STRING}),
    "Subscription": _object(
        {
            "id": STRING,
            "api": _object({"id": STRING}, ("id",)),
            "plan": _object({"id": STRING}, ("id",)),
            "application": _object({"id": STRING, "name": STRING}, ("id", "name")),
            "status": {"enum": ["PENDING", "ACCEPTED", "REJECTED", "CLOSED"]},
            "reason": OPTIONAL_STRING,
            "createdAt": TIME,
            "processedAt": OPTIONAL_STRING,
            "processedBy": OPTIONAL_STRING,
            "apiKey": {"type": "string", "description": "The API key, in the answer that made it only"},
            "metadata": METADATA,
            "consumerConfiguration": {
                "type": "object",
                "description": "A push subscription's webhook settings, secrets masked",
            },
            "gatehouse": _object(
                {"webhook": _object({"state": STRING, "detail": OPTIONAL_STRING, "deliveries": {"type": "array"}})}
            ),
        },
        ("id", "api", "plan", "application", "status", "createdAt"),
    ),
    "ApiKey": _object(
        {
            "id": STRING,
            "prefix": STRING,
            "revoked": {"type": "boolean"},
            "createdAt": TIME,
            "revokedAt": OPTIONAL_STRING,
            "key": {"type": "string", "description": "The key, in the answer that made it only"},
        },
        ("id", "prefix", "revoked", "createdAt"),
    ),
}


def _parameters(*names):
    """Path parameters by name: ids are strings, but an API key's is a row number."""
    return [
        {"name": name, "in": "path", "required": True, "schema": KEY_ID if name == "keyId" else STRING}
        for name in names
    ]


def document():
    root = "/management/v2"
    env = root + "/environments/DEFAULT"
    base = env + "/apis"
    plan, subscription = base + "/{apiId}/plans/{planId}", base + "/{apiId}/subscriptions/{subscriptionId}"
    plan_moves = {
        "_publish": "Publish a staging or deprecated plan",
        "_deprecate": "Deprecate a published plan: its subscriptions go on, new ones are refused",
        "_close": "Close a plan (final): its subscriptions are closed and their keys stop working",
    }
    subscription_moves = {
        "_accept": ("Accept a pending subscription. The API's owner or an admin", None),
        "_reject": (
            "Reject a pending subscription, with an optional reason. The API's owner or an admin",
            _ref("Rejection"),
        ),
        "_close": (
            "Close a pending or accepted subscription (its keys stop working). The API's owner, the "
            "application's owner or an admin",
            None,
        ),
        "_retry": (
            "A push subscription waiting to try a delivery again tries it now. The API's owner, the "
            "application's owner or an admin",
            None,
        ),
        "_resume": (
            "A failed push subscription delivers again. The API's owner, the application's owner or an admin",
            None,
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehouse management API",
            "version": "0.1.0",
            "description": "The Gravitee APIM v2 management API subset that Gatehouse implements. Viewers "
            "read; owners create APIs and change those they own; admins change every API.",
        },
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal access token from the portal's Tokens page",
                },
            },
            "schemas": SCHEMAS,
        },
        "security": [{"basic": []}, {"token": []}],
        "paths": {
            root + "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            base: {"get": _op("List APIs", {200: ("The APIs", {"type": "object"})})},
            base + "/_import/definition": {
                "post": _op(
                    "Create an API from a definition (it starts stopped; the caller owns it). Owner role",
                    {201: ("The created API", API)},
                    DEFINITION,
                    (400, 409),
                )
            },
            base + "/{apiId}": {
                "parameters": _parameters("apiId"),
                "get": _op("Get an API", {200: ("The API", API)}, codes=(404,)),
                "delete": _op(
                    "Delete a stopped API. Its owner or an admin", {204: ("Deleted", None)}, codes=(400, 404)
                ),
            },
            base + "/{apiId}/_import/definition": {
                "parameters": _parameters("apiId"),
                "put": _op(
                    "Replace an API's definition (id, state, owner and deployments are kept). Its owner or an admin",
                    {200: ("The API", API)},
                    DEFINITION,
                    (400, 404, 409),
                ),
            },
            base + "/{apiId}/_start": {
                "parameters": _parameters("apiId"),
                "post": _op(
                    "Start an API (deploys first if never deployed). Its owner or an admin",
                    {204: ("Started", None)},
                    codes=(400, 404),
                ),
            },
            base + "/{apiId}/_stop": {
                "parameters": _parameters("apiId"),
                "post": _op("Stop an API. Its owner or an admin", {204: ("Stopped", None)}, codes=(400, 404)),
            },
            base + "/{apiId}/deployments": {
                "parameters": _parameters("apiId"),
                "post": _op(
                    "Deploy the current definition. Its owner or an admin",
                    {
                        202: ("Deployed as a new revision", {"type": "object"}),
                        200: (
                            "Nothing to deploy: the draft equals the last revision, which is returned with the message "
                            "'Nothing to deploy: the draft equals revision N.'; no revision is made",
                            {"type": "object"},
                        ),
                    },
                    codes=(400, 404, 409),
                ),
            },
            base + "/{apiId}/_export/definition": {
                "parameters": [
                    *_parameters("apiId"),
                    {"name": "includeSecrets", "in": "query", "schema": {"type": "boolean", "default": False}},
                ],
                "get": _op(
                    "Export the definition (secrets masked unless an admin asks for them)",
                    {200: ("An export envelope", {"type": "object"})},
                    codes=(404,),
                ),
            },
            env + "/_runtime": {
                "get": _op(
                    "What this process's gateway serves, and its greenlet and file descriptor counts",
                    {200: ("Runtime counters", {"type": "object"})},
                    codes=(404,),
                )
            },
            # Plans, applications, subscriptions and API keys (portal/management_subscriptions.py).
            base + "/{apiId}/plans": {
                "parameters": _parameters("apiId"),
                "get": _op("List an API's plans", {200: ("The plans", _page("Plan"))}, codes=(404,)),
                "post": _op(
                    "Add a plan to an API, in staging (deploy to serve it). Its owner or an admin",
                    {201: ("The plan", _ref("Plan"))},
                    _ref("NewPlan"),
                    (400, 404),
                ),
            },
            plan: {
                "parameters": _parameters("apiId", "planId"),
                "get": _op("Get a plan", {200: ("The plan", _ref("Plan"))}, codes=(404,)),
                "put": _op(
                    "Change a plan's name, description, validation and security configuration (not its "
                    "security type). Its owner or an admin",
                    {200: ("The plan", _ref("Plan"))},
                    _ref("PlanUpdate"),
                    (400, 404),
                ),
            },
            **{
                plan + "/" + action: {
                    "parameters": _parameters("apiId", "planId"),
                    "post": _op(
                        summary + ", at once. The API's owner or an admin",
                        {200: ("The plan", _ref("Plan"))},
                        codes=(400, 404),
                    ),
                }
                for action, summary in plan_moves.items()
            },
            env + "/applications": {
                "get": _op("List applications", {200: ("The applications", _page("Application"))}),
                "post": _op(
                    "Create an application (the caller owns it). Owner role",
                    {201: ("The application", _ref("Application"))},
                    _ref("NewApplication"),
                    (400,),
                ),
            },
            env + "/applications/{applicationId}": {
                "parameters": _parameters("applicationId"),
                "get": _op("Get an application", {200: ("The application", _ref("Application"))}, codes=(404,)),
            },
            base + "/{apiId}/subscriptions": {
                "parameters": _parameters("apiId"),
                "get": _op(
                    "List an API's subscriptions: all of them for its owner or an admin, those of the "
                    "caller's applications for others",
                    {200: ("The subscriptions", _page("Subscription"))},
                    codes=(404,),
                ),
                "post": _op(
                    "Subscribe an application to a published plan (AUTO validation accepts at once, and "
                    "an api-key plan then gives the key). The application's owner or an admin",
                    {201: ("The subscription", _ref("Subscription"))},
                    _ref("NewSubscription"),
                    (400, 404),
                ),
            },
            subscription: {
                "parameters": _parameters("apiId", "subscriptionId"),
                "get": _op(
                    "Get a subscription (a push one with its delivery state and last deliveries)",
                    {200: ("The subscription", _ref("Subscription"))},
                    codes=(404,),
                ),
                "put": _op(
                    "Change a push subscription's webhook settings (a masked secret keeps the stored one). The "
                    "application's owner or an admin",
                    {200: ("The subscription", _ref("Subscription"))},
                    _ref("SubscriptionUpdate"),
                    (400, 404),
                ),
            },
            **{
                subscription + "/" + action: {
                    "parameters": _parameters("apiId", "subscriptionId"),
                    "post": _op(
                        summary,
                        {200: ("The subscription", _ref("Subscription"))},
                        body,
                        (400, 404),
                        body_required=False,
                    ),
                }
                for action, (summary, body) in subscription_moves.items()
            },
            subscription + "/api-keys": {
                "parameters": _parameters("apiId", "subscriptionId"),
                "get": _op(
                    "List a subscription's API keys (never the keys themselves)",
                    {200: ("The keys", _page("ApiKey"))},
                    codes=(404,),
                ),
            },
            subscription + "/api-keys/_renew": {
                "parameters": _parameters("apiId", "subscriptionId"),
                "post": _op(
                    "Give an accepted api-key subscription a new key; its other keys stop working at once. The "
                    "application's owner or an admin",
                    {201: ("The new key, shown this once", _ref("ApiKey"))},
                    codes=(400, 404),
                ),
            },
            subscription + "/api-keys/{keyId}/_revoke": {
                "parameters": _parameters("apiId", "subscriptionId", "keyId"),
                "post": _op(
                    "Revoke an API key. The API's owner, the application's owner or an admin",
                    {200: ("The key", _ref("ApiKey"))},
                    codes=(400, 404),
                ),
            },
        },
    }
