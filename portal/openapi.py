"""OpenAPI 3.1 description of the management REST API."""

ERROR = {"$ref": "#/components/schemas/Error"}
API = {"$ref": "#/components/schemas/Api"}


def _op(summary, ok, body=False, codes=(401, 404)):
    op = {"summary": summary, "responses": {str(code): {"description": text, **(
        {"content": {"application/json": {"schema": schema}}} if schema else {})}
        for code, (text, schema) in ok.items()}}
    for code in codes:
        op["responses"][str(code)] = {"description": {400: "Invalid input", 401: "Authentication required",
                                                      404: "No such API", 409: "Context path already used"}[code],
                                      "content": {"application/json": {"schema": ERROR}}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "A Gravitee v4 export envelope, or a bare v4 API in the gateway "
                                             "(definitionVersion 4.0.0) or management (V4) form."}}}}
    return op


def document():
    api_id = {"name": "apiId", "in": "path", "required": True, "schema": {"type": "string"}}
    base = "/management/v2/environments/DEFAULT/apis"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gatehouse management API", "version": "0.1.0",
                 "description": "The Gravitee APIM v2 management API subset that Gatehouse implements."},
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": {
                "Error": {"type": "object", "required": ["message", "errors"], "properties": {
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "message": {"type": "string"}}}}}},
                "Api": {"type": "object", "required": ["id", "name", "type", "state"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "apiVersion": {"type": "string"},
                    "definitionVersion": {"type": "string"}, "type": {"enum": ["MESSAGE", "PROXY"]},
                    "state": {"enum": ["STARTED", "STOPPED"]}, "listeners": {"type": "array"},
                    "endpointGroups": {"type": "array"}}},
            },
        },
        "security": [{"basic": []}],
        "paths": {
            base: {"get": _op("List APIs", {200: ("The APIs", {"type": "object"})}, codes=(401,))},
            base + "/_import/definition": {"post": _op(
                "Create an API from a definition (it starts stopped)", {201: ("The created API", API)}, True,
                (400, 401, 409))},
            base + "/{apiId}": {"parameters": [api_id],
                                "get": _op("Get an API", {200: ("The API", API)}),
                                "delete": _op("Delete a stopped API", {204: ("Deleted", None)}, codes=(400, 401, 404))},
            base + "/{apiId}/_import/definition": {"parameters": [api_id], "put": _op(
                "Replace an API's definition (id, state and deployments are kept)", {200: ("The API", API)}, True,
                (400, 401, 404, 409))},
            base + "/{apiId}/_start": {"parameters": [api_id], "post": _op(
                "Start an API (deploys first if never deployed)", {204: ("Started", None)}, codes=(400, 401, 404))},
            base + "/{apiId}/_stop": {"parameters": [api_id], "post": _op(
                "Stop an API", {204: ("Stopped", None)}, codes=(400, 401, 404))},
            base + "/{apiId}/deployments": {"parameters": [api_id], "post": _op(
                "Deploy the current definition", {202: ("Deployed", {"type": "object"})}, codes=(400, 401, 404))},
            base + "/{apiId}/_export/definition": {"parameters": [api_id, {
                "name": "includeSecrets", "in": "query", "schema": {"type": "boolean", "default": False}}],
                "get": _op("Export the definition (secrets masked unless asked for)",
                           {200: ("An export envelope", {"type": "object"})})},
        },
    }
