"""Clients of a message API's entrypoints for the connector tests: an http-get poll, an http-post,
an SSE stream (returned once subscribed) and a WebSocket, each named by a client identifier."""

import requests
import websocket

from support.streams import read_sse

JSON = {"Accept": "application/json"}


def clients_for(default_path):
    """(poll, post, sse, ws_connect) whose context path is `default_path` unless given."""

    def poll(server, path=default_path, client="a", **params):
        response = requests.get(
            server.gateway + path, params=params, timeout=20, headers={**JSON, "X-Gravitee-Client-Identifier": client}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "error" not in body, body
        return body

    def post(server, body, path=default_path, **headers):
        response = requests.post(server.gateway + path, data=body, timeout=15, headers=headers)
        assert response.status_code == 202, response.text

    def sse(server, path=default_path, client="s"):
        stream = requests.get(
            server.gateway + path,
            stream=True,
            timeout=20,
            headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": client},
        )
        assert stream.status_code == 200
        assert read_sse(stream, 1) == [{"retry": "5000"}]  # subscribed: what comes now is delivered
        return stream

    def ws_connect(server, path=default_path, client="w"):
        return websocket.create_connection(
            server.gateway.replace("http", "ws", 1) + path,
            timeout=15,
            header=[f"X-Gravitee-Client-Identifier: {client}"],
        )

    return poll, post, sse, ws_connect
