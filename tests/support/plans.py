"""Plans as a consumer meets them: plan definitions, a JSON backend, a proxy API with plans, JWTs,
and what a served or refused call looks like."""

import time

import jwt
import requests

from support.http_backends import JsonHandler

SECRET = "a-long-enough-hmac-secret-for-hs256-tokens!"
JSON = {"Accept": "application/json"}


class Backend(JsonHandler):
    def payload(self):
        return {"backend": "ok", "apiKeyHeader": self.headers.get("X-Gravitee-Api-Key")}


def plan(plan_id, kind, configuration=None, status="PUBLISHED", validation="AUTO"):
    security = {"type": kind}
    if configuration:
        security["configuration"] = configuration
    return {
        "id": plan_id,
        "name": plan_id.title(),
        "security": security,
        "mode": "STANDARD",
        "status": status,
        "validation": validation,
    }


def hs_plan(plan_id="jwt-hs"):
    return plan(
        plan_id, "JWT", {"signature": "HMAC_HS256", "publicKeyResolver": "GIVEN_KEY", "resolverParameter": SECRET}
    )


def proxy_api(path, backend_url, plans):
    return {
        "name": f"Proxy {path}",
        "apiVersion": "1.0",
        "definitionVersion": "4.0.0",
        "type": "proxy",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": [{"type": "http-proxy"}]}],
        "endpointGroups": [
            {
                "name": "default",
                "type": "http-proxy",
                "endpoints": [
                    {
                        "name": "backend",
                        "type": "http-proxy",
                        "inheritConfiguration": False,
                        "configuration": {"target": backend_url},
                    }
                ],
            }
        ],
        "plans": plans,
    }


def call(url, headers=None, **kwargs):
    return requests.get(url, headers={**JSON, **(headers or {})}, timeout=10, **kwargs)


def served(response):
    """The API answered for real: the backend (proxy) or the Mock endpoint (message)."""
    body = response.json()
    return response.status_code == 200 and (body.get("backend") == "ok" or body["items"][0]["content"] == "message")


def refused(response, status, words):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert words in response.json()["message"], response.json()
    return True


def token(client_id, key=SECRET, algorithm="HS256", kid=None, **claims):
    now = int(time.time())
    payload = {"sub": "someone", "client_id": client_id, "iat": now, "exp": now + 60, **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def bearer(value):
    return {"Authorization": f"Bearer {value}"}
