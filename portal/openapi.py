"""OpenAPI 3.1 description of the management REST API: every route, body and answer (the fuzz
test generates its requests from it, and checks the answers against it)."""

ERROR = {"$ref": "#/components/schemas/Error"}
API = {"$ref": "#/components/schemas/Api"}
CODES = {400: "Invalid input", 401: "Authentication required (HTTP Basic or a personal access token)",
         403: "The user's role does not allow it; the message says what to do", 404: "No such API",
         409: "Context path already used by another API",
         429: "Too many failed logins for this user name or client address; see Retry-After"}
AUTHENTICATED = (401, 403, 429)


def _op(summary, ok, body=False, codes=()):
    responses = {str(code): {"description": text, **({"content": {"application/json": {"schema": schema}}}
                                                     if schema else {})}
                 for code, (text, schema) in ok.items()}
    for code in (*codes, *AUTHENTICATED):
        responses[str(code)] = {"description": CODES[code], "content": {"application/json": {"schema": ERROR}}}
    op = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "description": "A Gravitee v4 export envelope, or a bare v4 API in the gateway (definitionVersion "
                           "4.0.0) or management (V4) form.",
            "anyOf": [{"$ref": "#/components/schemas/Definition"}, {"$ref": "#/components/schemas/Envelope"}]}}}}
    return op


def _object(properties, required=()):
    return {"type": "object", "properties": properties, **({"required": list(required)} if required else {})}


STRING, CONFIGURATION = {"type": "string"}, {"type": "object"}
SCHEMAS = {
    "Error": _object({"message": STRING, "errors": {"type": "array", "items": _object(
        {"field": STRING, "message": STRING})}}, ("message", "errors")),
    "Api": _object({"id": STRING, "name": STRING, "apiVersion": STRING, "definitionVersion": STRING,
                    "type": {"enum": ["MESSAGE", "PROXY"]}, "state": {"enum": ["STARTED", "STOPPED"]},
                    "listeners": {"type": "array"}, "endpointGroups": {"type": "array"}},
                   ("id", "name", "type", "state")),
    "Definition": _object({
        "name": STRING, "apiVersion": STRING, "description": STRING,
        "definitionVersion": {"enum": ["4.0.0", "V4"]},
        "type": {"enum": ["message", "proxy", "MESSAGE", "PROXY"]},
        "listeners": {"type": "array", "items": _object({
            "type": {"enum": ["http", "subscription", "tcp", "HTTP", "SUBSCRIPTION", "TCP"]},
            "paths": {"type": "array", "items": _object({"path": STRING, "host": STRING}, ("path",))},
            "entrypoints": {"type": "array", "items": _object(
                {"type": STRING, "qos": STRING, "configuration": CONFIGURATION}, ("type",))}}, ("type",))},
        "endpointGroups": {"type": "array", "items": _object({
            "name": STRING, "type": STRING, "loadBalancer": _object({"type": STRING}),
            "sharedConfiguration": CONFIGURATION,
            "endpoints": {"type": "array", "items": _object({
                "name": STRING, "type": STRING, "weight": {"type": "integer"}, "inheritConfiguration":
                    {"type": "boolean"}, "secondary": {"type": "boolean"}, "configuration": CONFIGURATION,
                "sharedConfigurationOverride": CONFIGURATION}, ("name", "type"))}}, ("name", "type"))},
        "plans": {"type": "array", "items": _object({
            "id": STRING, "name": STRING, "security": _object({"type": STRING}, ("type",)),
            "mode": STRING, "status": STRING}, ("security",))}},
        ("name", "type", "listeners", "endpointGroups")),
    "Envelope": _object({"api": {"$ref": "#/components/schemas/Definition"}, "plans": {"type": "array"}},
                        ("api",)),
}


def document():
    api_id = {"name": "apiId", "in": "path", "required": True, "schema": {"type": "string"}}
    root = "/management/v2"
    base = root + "/environments/DEFAULT/apis"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gatehouse management API", "version": "0.1.0",
                 "description": "The Gravitee APIM v2 management API subset that Gatehouse implements. Viewers "
                                "read; owners create APIs and change those they own; admins change every API."},
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "token": {"type": "http", "scheme": "bearer",
                                          "description": "A personal access token from the portal's Tokens page"}},
            "schemas": SCHEMAS,
        },
        "security": [{"basic": []}, {"token": []}],
        "paths": {
            root + "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {
                    "type": "object"}}}}}}},
            base: {"get": _op("List APIs", {200: ("The APIs", {"type": "object"})})},
            base + "/_import/definition": {"post": _op(
                "Create an API from a definition (it starts stopped; the caller owns it). Owner role",
                {201: ("The created API", API)}, True, (400, 409))},
            base + "/{apiId}": {"parameters": [api_id],
                                "get": _op("Get an API", {200: ("The API", API)}, codes=(404,)),
                                "delete": _op("Delete a stopped API. Its owner or an admin",
                                              {204: ("Deleted", None)}, codes=(400, 404))},
            base + "/{apiId}/_import/definition": {"parameters": [api_id], "put": _op(
                "Replace an API's definition (id, state, owner and deployments are kept). Its owner or an admin",
                {200: ("The API", API)}, True, (400, 404, 409))},
            base + "/{apiId}/_start": {"parameters": [api_id], "post": _op(
                "Start an API (deploys first if never deployed). Its owner or an admin", {204: ("Started", None)},
                codes=(400, 404))},
            base + "/{apiId}/_stop": {"parameters": [api_id], "post": _op(
                "Stop an API. Its owner or an admin", {204: ("Stopped", None)}, codes=(400, 404))},
            base + "/{apiId}/deployments": {"parameters": [api_id], "post": _op(
                "Deploy the current definition. Its owner or an admin", {202: ("Deployed", {"type": "object"})},
                codes=(400, 404))},
            base + "/{apiId}/_export/definition": {"parameters": [api_id, {
                "name": "includeSecrets", "in": "query", "schema": {"type": "boolean", "default": False}}],
                "get": _op("Export the definition (secrets masked unless an admin asks for them)",
                           {200: ("An export envelope", {"type": "object"})}, codes=(404,))},
            root + "/environments/DEFAULT/_runtime": {"get": _op(
                "What this process's gateway serves, and its greenlet and file descriptor counts",
                {200: ("Runtime counters", {"type": "object"})}, codes=(404,))},
        },
    }
