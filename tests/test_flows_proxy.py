"""Flows on proxy APIs over real sockets: every selector, operator and mode, matchRequired, plan
flows before API flows, step conditions, and each policy, as the backend and the client see them."""

import json
import socket
import time

import pytest
import requests

from support.apis import proxy_api
from support.gatehouse import until
from support.http_backends import url
from support.plans import plan

JSON = {"Accept": "application/json"}


@pytest.fixture
def server(shared_server):
    return shared_server


def step(policy, configuration=None, **extra):
    return {"name": policy, "policy": policy, "enabled": True, "configuration": configuration or {}, **extra}


def http_flow(path="/", operator="STARTS_WITH", methods=(), request=(), response=(), selectors=(), **extra):
    selector = {"type": "http", "path": path, "pathOperator": operator, "methods": list(methods)}
    return {
        "name": path,
        "enabled": True,
        "selectors": [selector, *selectors],
        "request": list(request),
        "response": list(response),
        **extra,
    }


def with_flows(api, flows, mode=None, match_required=None):
    api["flows"] = flows
    if mode or match_required is not None:
        api["flowExecution"] = {"mode": mode or "DEFAULT", "matchRequired": bool(match_required)}
    return api


def headers(*pairs, append=(), remove=(), whitelist=(), **extra):
    return step(
        "transform-headers",
        {
            "addHeaders": [{"name": n, "value": v} for n, v in pairs],
            "appendHeaders": [{"name": n, "value": v} for n, v in append],
            "removeHeaders": list(remove),
            "whitelistHeaders": list(whitelist),
        },
        **extra,
    )


def deploy(server, backend, flows, path="/shop", **options):
    return server.deploy_api(with_flows(proxy_api([url(backend)], path=path), flows, **options))


def test_transform_headers_sets_appends_and_removes_on_the_request_and_the_response(server, http_backends):
    flow = http_flow(
        request=[
            headers(
                ("X-Added", "{#request.method}-{#request.pathInfo}"),
                append=[("X-Kept", "second")],
                remove=["X-Secret", "X-Added-Then-Removed"],
            )
        ],
        response=[headers(("X-Status", "{#response.status}"), ("X-Added-Then-Removed", "x"), remove=["X-Backend"])],
    )
    deploy(server, http_backends[0], [flow])
    got = requests.get(server.gateway + "/shop/orders/7", headers={"X-Secret": "s", "X-Kept": "k"}, timeout=10)
    assert got.status_code == 200
    echo = got.json()
    assert echo["headers"]["X-Added"] == "GET-/orders/7"
    assert "X-Secret" not in echo["headers"] and echo["headers"]["X-Kept"] == "k, second"
    assert got.headers["X-Status"] == "200" and "X-Backend" not in got.headers
    assert got.headers["X-Added-Then-Removed"] == "x"  # removal is of the request's step only


def test_a_whitelist_keeps_only_the_headers_it_names(server, http_backends):
    deploy(server, http_backends[0], [http_flow(request=[headers(whitelist=["X-Keep", "Host"])])])
    echo = requests.get(server.gateway + "/shop", headers={"X-Keep": "1", "X-Drop": "2"}, timeout=10).json()
    assert echo["headers"]["X-Keep"] == "1" and "X-Drop" not in echo["headers"]


@pytest.mark.parametrize(
    "path, operator, asked, selected",
    [
        ("/orders", "STARTS_WITH", "/orders/7", True),
        ("/orders", "STARTS_WITH", "/ordersx", True),  # a prefix, as Gravitee's selector matches
        ("/orders", "STARTS_WITH", "/other", False),
        ("/orders", "EQUALS", "/orders", True),
        ("/orders", "EQUALS", "/orders/", True),
        ("/orders", "EQUALS", "/orders/7", False),
        ("/orders/:id", "EQUALS", "/orders/7", True),
        ("/orders/:id/lines", "STARTS_WITH", "/orders/7/lines/2", True),
        ("/orders/:id/lines", "STARTS_WITH", "/orders/7", False),
        ("/", "STARTS_WITH", "/anything/at/all", True),
    ],
)
def test_the_http_selector_s_path_and_operator(server, http_backends, path, operator, asked, selected):
    flow = http_flow(path, operator, request=[headers(("X-Flow", "ran"))])
    deploy(server, http_backends[0], [flow])
    echo = requests.get(server.gateway + "/shop" + asked, timeout=10).json()
    assert (echo["headers"].get("X-Flow") == "ran") is selected


def test_path_parameters_are_read_by_expressions(server, http_backends):
    flow = http_flow("/orders/:orderId", request=[headers(("X-Order", "{#request.pathParams['orderId']}"))])
    deploy(server, http_backends[0], [flow])
    assert requests.get(server.gateway + "/shop/orders/a-42", timeout=10).json()["headers"]["X-Order"] == "a-42"


def test_the_http_selector_s_methods(server, http_backends):
    deploy(server, http_backends[0], [http_flow(methods=["POST", "PUT"], request=[headers(("X-Flow", "ran"))])])
    assert "X-Flow" not in requests.get(server.gateway + "/shop", timeout=10).json()["headers"]
    assert requests.post(server.gateway + "/shop", data=b"x", timeout=10).json()["headers"]["X-Flow"] == "ran"
    assert requests.put(server.gateway + "/shop", data=b"x", timeout=10).json()["headers"]["X-Flow"] == "ran"


def test_a_condition_selector_and_a_step_condition(server, http_backends):
    condition = {"type": "condition", "condition": "{#request.headers['X-Tier'][0] == 'gold'}"}
    flow = http_flow(
        selectors=[condition],
        request=[
            headers(("X-Gold", "yes")),
            headers(("X-Big", "yes"), condition="{#request.params['size'][0] == 'big'}"),
        ],
    )
    deploy(server, http_backends[0], [flow])
    plain = requests.get(server.gateway + "/shop?size=big", timeout=10).json()["headers"]
    gold = requests.get(server.gateway + "/shop", headers={"X-Tier": "gold"}, timeout=10).json()["headers"]
    both = requests.get(server.gateway + "/shop?size=big", headers={"X-Tier": "gold"}, timeout=10).json()["headers"]
    assert "X-Gold" not in plain and "X-Big" not in plain
    assert gold["X-Gold"] == "yes" and "X-Big" not in gold
    assert both["X-Gold"] == "yes" and both["X-Big"] == "yes"


def test_default_mode_runs_every_matching_flow_in_order_and_best_match_only_the_best(server, http_backends):
    flows = [
        http_flow("/books", request=[headers(append=[("X-Flows", "/books")])]),
        http_flow("/books/:bookId", request=[headers(append=[("X-Flows", "/books/:bookId")])]),
        http_flow("/books/:bookId/chapters", request=[headers(append=[("X-Flows", "/books/:bookId/chapters")])]),
        http_flow("/books/9999", request=[headers(append=[("X-Flows", "/books/9999")])]),
    ]
    deploy(server, http_backends[0], flows, path="/default")
    deploy(server, http_backends[0], json.loads(json.dumps(flows)), path="/best", mode="BEST_MATCH")

    def seen(base, path):
        return requests.get(server.gateway + base + path, timeout=10).json()["headers"].get("X-Flows")

    assert seen("/default", "/books/12/chapters") == "/books, /books/:bookId, /books/:bookId/chapters"
    assert seen("/best", "/books/12/chapters") == "/books/:bookId/chapters"
    assert seen("/best", "/books/9999") == "/books/9999"  # a literal segment beats a parameter
    assert seen("/best", "/books/12") == "/books/:bookId"
    assert seen("/best", "/books") == "/books"
    assert seen("/best", "/other") is None


def test_match_required_answers_404_when_no_flow_matches(server, http_backends):
    deploy(server, http_backends[0], [http_flow("/orders", request=[headers(("X-Flow", "ran"))])], match_required=True)
    assert requests.get(server.gateway + "/shop/orders", timeout=10).json()["headers"]["X-Flow"] == "ran"
    missed = requests.get(server.gateway + "/shop/other", headers=JSON, timeout=10)
    assert missed.status_code == 404
    assert missed.json() == {"message": "No flow of this API matches the request.", "http_status_code": 404}
    # A flow whose condition fails does not count as matched.
    condition = {"type": "condition", "condition": "{#request.headers['X-Go'] != null}"}
    deploy(server, http_backends[0], [http_flow(selectors=[condition])], path="/cond", match_required=True)
    assert requests.get(server.gateway + "/cond", timeout=10).status_code == 404
    assert requests.get(server.gateway + "/cond", headers={"X-Go": "1"}, timeout=10).status_code == 200


def test_plan_flows_run_before_api_flows_and_only_for_the_plan_that_admitted_the_request(server, http_backends):
    api = proxy_api([url(http_backends[0])], path="/planned")
    api["flows"] = [http_flow(request=[headers(append=[("X-Order", "api")])])]
    keyed, free = plan("gold", "API_KEY"), plan("free", "KEY_LESS")
    keyed["flows"] = [http_flow(request=[headers(append=[("X-Order", "gold plan")])])]
    free["flows"] = [http_flow(request=[headers(append=[("X-Order", "free plan")])])]
    api["plans"] = [keyed, free]
    api_id = server.deploy_api(api)
    key = server.subscribe(api_id, "gold")["apiKey"]
    keyed_call = {"X-Gravitee-Api-Key": key}
    until(lambda: requests.get(server.gateway + "/planned", headers=keyed_call, timeout=10).status_code == 200, 5)
    with_key = requests.get(server.gateway + "/planned", headers=keyed_call, timeout=10)
    assert with_key.json()["headers"]["X-Order"] == "gold plan, api"
    assert requests.get(server.gateway + "/planned", timeout=10).json()["headers"]["X-Order"] == "free plan, api"


def test_assign_attributes_are_read_by_later_steps_with_their_type(server, http_backends):
    flow = http_flow(
        request=[
            step(
                "assign-attributes", {"attributes": [{"name": "size", "value": "{#request.params['n'][0].length()}"}]}
            ),
            headers(("X-Size", "{#context.attributes['size'] + 1}")),
        ],
        response=[headers(("X-Size-Back", "{#context.attributes['size']}"))],
    )
    deploy(server, http_backends[0], [flow])
    got = requests.get(server.gateway + "/shop?n=abcd", timeout=10)
    assert got.json()["headers"]["X-Size"] == "5" and got.headers["X-Size-Back"] == "4"


def test_api_properties_are_read_by_expressions_and_encrypted_ones_stay_secret(server, http_backends):
    flow = http_flow(
        request=[headers(("X-Region", "{#api.properties['region']}"), ("X-Token", "{#api.properties['token']}"))]
    )
    api = with_flows(proxy_api([url(http_backends[0])]), [flow])
    api["properties"] = [{"key": "region", "value": "eu-west"}, {"key": "token", "value": "s3cr3t", "encrypted": True}]
    api_id = server.deploy_api(api)
    sent = requests.get(server.gateway + "/shop", timeout=10).json()["headers"]
    assert sent["X-Region"] == "eu-west" and sent["X-Token"] == "s3cr3t"
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").text
    assert "s3cr3t" not in exported and "eu-west" in exported


def test_connector_to_header_names_the_connectors(server, http_backends):
    deploy(server, http_backends[0], [http_flow(response=[step("connector-to-header")])])
    got = requests.get(server.gateway + "/shop", timeout=10)
    assert got.headers["X-Entrypoint-Used"] == "http-proxy" and got.headers["X-Endpoint-Used"] == "http-proxy"


def test_assign_content_replaces_the_request_body_and_the_answer(server, http_backends):
    flow = http_flow(
        request=[
            step("policy-assign-content", {"body": '{"wrapped": "${request.content}", "id": "{#request.method}"}'})
        ],
        response=[
            step("policy-assign-content", {"body": "status {#response.status}, size {#response.jsonContent['size']}"})
        ],
    )
    deploy(server, http_backends[0], [flow])
    got = requests.post(server.gateway + "/shop", data=b"abc", timeout=10)
    sent = len('{"wrapped": "abc", "id": "POST"}')
    assert got.status_code == 200 and got.text == f"status 200, size {sent}"
    assert got.headers["Content-Length"] == str(len(got.text))


def test_json_to_xml_on_the_request_and_xml_to_json_on_the_answer(server, http_backends):
    flow = http_flow(request=[step("json-xml", {"rootElement": "order"})], response=[step("xml-json")])
    deploy(server, http_backends[0], [flow], path="/convert")
    got = requests.post(server.gateway + "/convert/xml", json={"id": 7, "lines": ["a", "b"]}, timeout=10)
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/json;charset=UTF-8"
    # The backend's /xml answer wraps what it received: <echo>...</echo>
    assert got.json() == {"echo": {"order": {"id": 7, "lines": ["a", "b"]}}}
    bad = requests.post(server.gateway + "/convert/xml", data=b"[1, 2]", headers=JSON, timeout=10)
    assert bad.status_code == 400
    assert bad.json() == {"message": "Unable to transform invalid JSON payload to XML", "http_status_code": 400}


def test_transform_queryparams_clears_sets_appends_and_removes(server, http_backends):
    flow = http_flow(
        request=[
            step(
                "transform-queryparams",
                {
                    "addQueryParameters": [
                        {"name": "added", "value": "{#request.method} x"},
                        {"name": "tag", "value": "two", "appendToExistingArray": True},
                        {"name": "page", "value": "1"},
                    ],
                    "removeQueryParameters": ["secret"],
                },
            )
        ]
    )
    deploy(server, http_backends[0], [flow])
    echo = requests.get(server.gateway + "/shop/q?tag=one&page=9&secret=s", timeout=10).json()
    assert echo["path"] == "/q?tag=one&tag=two&page=1&added=GET%20x"


def test_url_rewriting_rewrites_the_answer_s_headers_and_body(server, http_backends):
    backend = url(http_backends[0])
    flow = http_flow(
        response=[
            step(
                "url-rewriting",
                {"fromRegex": r"http://127\.0\.0\.1:(\d+)/", "toReplacement": "https://gateway.example/{#group[0]}/"},
            )
        ]
    )
    deploy(server, http_backends[0], [flow])
    got = requests.get(server.gateway + "/shop/redirect-to-self", allow_redirects=False, timeout=10)
    port = backend.rsplit(":", 1)[1]
    assert got.headers["Location"] == f"https://gateway.example/{port}/landing"
    assert f"https://gateway.example/{port}/landing" in got.text


def test_interrupt_answers_500_with_its_message_as_json_or_text(server, http_backends):
    flow = http_flow(
        request=[step("policy-interrupt", {"errorKey": "CLOSED", "message": "Closed for {#request.params['why'][0]}"})],
    )
    deploy(server, http_backends[0], [flow])
    as_json = requests.get(server.gateway + "/shop?why=lunch", headers=JSON, timeout=10)
    assert as_json.status_code == 500
    assert as_json.json() == {"message": "Closed for lunch", "http_status_code": 500}
    as_text = requests.get(server.gateway + "/shop?why=lunch", headers={"Accept": "text/html"}, timeout=10)
    assert as_text.status_code == 500 and as_text.text == "Closed for lunch"
    assert as_text.headers["Content-Type"].startswith("text/plain")


def test_latency_holds_the_request(server, http_backends):
    deploy(server, http_backends[0], [http_flow(request=[step("latency", {"time": 300})])])
    started = time.monotonic()
    assert requests.get(server.gateway + "/shop", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_header_value_that_cannot_be_evaluated_fails_the_request_as_gravitee_does(server, http_backends):
    deploy(server, http_backends[0], [http_flow(request=[headers(("X-Bad", "{#request.headers['X-None'][0]}"))])])
    got = requests.get(server.gateway + "/shop", headers=JSON, timeout=10)
    assert got.status_code == 500
    assert got.json() == {"message": "Unable to apply headers transformation", "http_status_code": 500}


def test_a_policy_cannot_change_the_framing_an_attacker_sends_past_it(server, http_backends):
    """A flow that sets Content-Length or Transfer-Encoding does not reach the framing of either
    hop: the next request on the connection is served as itself."""
    flow = http_flow(
        request=[headers(("Content-Length", "0"), ("Transfer-Encoding", "chunked"))],
        response=[headers(("Content-Length", "1"))],
    )
    deploy(server, http_backends[0], [flow])
    host, port = server.gateway.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /shop/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /shop/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200", b"200"], data
    head, body = answers[0].split(b"\r\n\r\n", 1)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length > 1 and json.loads(body[:length])["size"] == 5  # the answer framed as sent, not as set
    assert b'"path": "/b"' in answers[1]


def test_a_flow_without_steps_costs_nothing_and_a_disabled_step_or_flow_does_not_run(server, http_backends):
    flows = [
        http_flow(request=[headers(("X-Off", "1"), enabled=False)]),
        {**http_flow(request=[headers(("X-Off-Flow", "1"))]), "enabled": False},
    ]
    deploy(server, http_backends[0], flows)
    echo = requests.get(server.gateway + "/shop", timeout=10).json()
    assert "X-Off" not in echo["headers"] and "X-Off-Flow" not in echo["headers"]


def routing(*rules):
    return step("dynamic-routing", {"rules": [{"pattern": p, "url": u} for p, u in rules]})


def test_dynamic_routing_to_a_url_with_named_groups_and_the_query_kept(server, http_backends):
    other = url(http_backends[1])
    flow = http_flow(request=[routing((r"/v(?<version>\d+)/(.*)", other + "/api/{#groupName['version']}/{#group[1]}"))])
    deploy(server, http_backends[0], [flow])
    got = requests.get(server.gateway + "/shop/v2/orders/7?expand=lines", timeout=10)
    assert got.status_code == 200 and got.headers["X-Backend"] == "b1"
    assert got.json()["path"] == "/api/2/orders/7?expand=lines"
    missed = requests.get(server.gateway + "/shop/orders", headers=JSON, timeout=10)
    assert missed.status_code == 400 and missed.json()["message"] == "No routing rule is matching path"


def test_dynamic_routing_refuses_what_it_cannot_use(server, http_backends):
    # #endpoints['missing'] is null (no endpoint of that name): the route is its path alone. That, or
    # a URL that is not http(s), is the gateway's 502.
    flow = http_flow(
        request=[routing(("/nowhere/(.*)", "{#endpoints['missing']}/{#group[0]}"), ("/file", "file:///etc/passwd"))]
    )
    deploy(server, http_backends[0], [flow])
    nowhere = requests.get(server.gateway + "/shop/nowhere/x", timeout=10)
    assert nowhere.json() == {"message": "the dynamic route '/x' is not an http(s) URL nor an endpoint of this API"}
    local = requests.get(server.gateway + "/shop/file", timeout=10)
    assert local.status_code == 502 and "is not an http(s) URL" in local.json()["message"]
    # A pattern that is not a regular expression is refused at import, naming the rule.
    api = with_flows(proxy_api([url(http_backends[0])], path="/bad"), [http_flow(request=[routing(("/(", "x"))])])
    refused = server.mgmt("POST", "/apis/_import/definition", json=api)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "flows[0].request[0].configuration.rules[0].pattern"
    # And on a message API it cannot run: refused naming the step.
    from support.apis import mock_api

    message = mock_api(path="/routed")
    message["flows"] = [{"name": "r", "selectors": [], "request": [routing(("/(.*)", "http://x/{#group[0]}"))]}]
    refused = server.mgmt("POST", "/apis/_import/definition", json=message)
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {
            "field": "flows[0].request[0].policy",
            "message": "Dynamic routing (dynamic-routing) applies to proxy APIs only",
        }
    ]
