"""Flows on proxy APIs over real sockets: selectors, modes, phases and each policy, as the backend
and the client see them."""

import pytest
import requests

from support.apis import proxy_api
from support.http_backends import url


@pytest.fixture
def server(shared_server):
    return shared_server


def step(policy, configuration=None, **extra):
    return {"name": policy, "policy": policy, "enabled": True, "configuration": configuration or {}, **extra}


def http_flow(path="/", operator="STARTS_WITH", methods=(), request=(), response=(), **extra):
    selector = {"type": "http", "path": path, "pathOperator": operator, "methods": list(methods)}
    return {
        "name": path,
        "enabled": True,
        "selectors": [selector],
        "request": list(request),
        "response": list(response),
        **extra,
    }


def with_flows(api, flows, mode=None, match_required=None):
    api["flows"] = flows
    if mode or match_required is not None:
        api["flowExecution"] = {"mode": mode or "DEFAULT", "matchRequired": bool(match_required)}
    return api


def set_headers(*pairs, remove=(), whitelist=()):
    return step(
        "transform-headers",
        {
            "addHeaders": [{"name": n, "value": v} for n, v in pairs],
            "removeHeaders": list(remove),
            "whitelistHeaders": list(whitelist),
        },
    )


def test_transform_headers_on_the_request_and_the_response(server, http_backends):
    flow = http_flow(
        request=[set_headers(("X-Added", "{#request.method}-{#request.pathInfo}"), remove=["X-Secret"])],
        response=[set_headers(("X-Status", "{#response.status}"), remove=["X-Backend"])],
    )
    server.deploy_api(with_flows(proxy_api([url(http_backends[0])]), [flow]))
    got = requests.get(server.gateway + "/shop/orders/7", headers={"X-Secret": "s", "X-Kept": "k"}, timeout=10)
    assert got.status_code == 200
    echo = got.json()
    assert echo["headers"]["X-Added"] == "GET-/orders/7"
    assert "X-Secret" not in echo["headers"] and echo["headers"]["X-Kept"] == "k"
    assert got.headers["X-Status"] == "200" and "X-Backend" not in got.headers
