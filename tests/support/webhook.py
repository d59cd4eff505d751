"""What the webhook tests share: a real local HTTP receiver answering as each test scripts it,
webhook API definitions, push subscriptions and their delivery state."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALLOW_PRIVATE = {"GATEHOUSE_WEBHOOK_ALLOW_PRIVATE": "true"}  # the receivers listen on 127.0.0.1
PUSH_PLAN = {"id": "push-plan", "name": "Push", "mode": "push", "status": "published", "validation": "AUTO"}


class Call:
    def __init__(self, path, headers, body, status):
        self.at = time.monotonic()
        self.path, self.headers, self.body, self.status = path, headers, body, status


class Receiver:
    """A callback on 127.0.0.1. answer(call number from 1, body, headers) -> status (or (status,
    JSON body)); every call is kept, in order."""

    def __init__(self, answer=lambda n, body, headers: 200):
        self.answer = answer
        self.calls = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    result = receiver.answer(len(receiver.calls) + 1, body, self.headers)
                    status, payload = result if isinstance(result, tuple) else (result, {"status": result})
                    receiver.calls.append(Call(self.path, self.headers, body, status))  # names case-insensitive
                    receiver.changed.notify_all()
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self, path="/hook"):
        return [c.body.decode() for c in self.calls if 200 <= c.status < 300 and c.path == path]

    def wait(self, predicate, timeout=15, what="the expected calls"):
        """Until predicate(calls) holds (the receiver notifies each call; no polling)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{what} did not come within {timeout}s; calls: "
                        f"{[(c.path, c.status, c.body[:40]) for c in self.calls]}"
                    )
                self.changed.wait(left)
        return list(self.calls)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def webhook_api(endpoint_groups, qos="auto", configuration=None, dlq=None, name="Webhook API"):
    entrypoint = {"type": "webhook", "qos": qos, "configuration": configuration or {}}
    if dlq:
        entrypoint["dlq"] = {"endpoint": dlq}
    return {
        "name": name,
        "apiVersion": "1.0",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [{"type": "subscription", "entrypoints": [entrypoint]}],
        "endpointGroups": endpoint_groups,
        "plans": [dict(PUSH_PLAN)],
    }


def mock_group(count, content="message", interval=1, name="default"):
    return {
        "name": name,
        "type": "mock",
        "endpoints": [
            {
                "name": f"{name}-mock",
                "type": "mock",
                "inheritConfiguration": False,
                "configuration": {"messageInterval": interval, "messageContent": content, "messageCount": count},
            }
        ],
    }


def kafka_group(bootstrap, topic, consume=True, name="default", reset="earliest"):
    side = (
        {"consumer": {"enabled": True, "topics": [topic], "autoOffsetReset": reset}}
        if consume
        else {"producer": {"enabled": True, "topics": [topic]}}
    )
    return {
        "name": name,
        "type": "kafka",
        "endpoints": [
            {
                "name": f"{name}-kafka",
                "type": "kafka",
                "inheritConfiguration": False,
                "configuration": {"bootstrapServers": bootstrap},
                "sharedConfigurationOverride": side,
            }
        ],
    }


def hook(url, retry=None, **settings):
    """consumerConfiguration for a subscription calling url; retry: (strategy, attempts, initial, max)."""
    configuration = {"callbackUrl": url, **settings}
    if retry == "none":
        configuration["retry"] = {"retryOption": "No Retry"}
    elif retry:
        strategy, attempts, initial, ceiling = retry
        configuration["retry"] = {
            "retryOption": "Retry On Fail",
            "retryStrategy": strategy,
            "maxAttempts": attempts,
            "initialDelaySeconds": initial,
            "maxDelaySeconds": ceiling,
        }
    return {"entrypointId": "webhook", "entrypointConfiguration": configuration}


def push_subscribe(server, api_id, consumer, plan_id=PUSH_PLAN["id"], expect=201):
    application = server.application()
    response = server.mgmt(
        "POST",
        f"/apis/{api_id}/subscriptions",
        json={"applicationId": application["id"], "planId": plan_id, "consumerConfiguration": consumer},
    )
    assert response.status_code == expect, response.text
    return response.json()


def webhook_state(server, api_id, subscription_id):
    response = server.mgmt("GET", f"/apis/{api_id}/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.text
    return response.json()["gatehouse"]["webhook"]


def wait_state(server, api_id, subscription_id, state=None, until=None, timeout=15):
    """The subscription's webhook state once it is `state` and until(state) holds (the gateway
    writes states and attempts every half second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = webhook_state(server, api_id, subscription_id)
        if (state is None or found["state"] == state) and (until is None or until(found)):
            return found
        time.sleep(0.1)
    raise AssertionError(f"subscription {subscription_id} not as expected within {timeout}s: {found}")
