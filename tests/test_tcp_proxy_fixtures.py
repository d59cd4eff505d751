"""The shared Gravitee tcp fixtures, their targets rewritten to local backends: each deploys and
relays what its name says (plain bytes; a WebSocket conversation)."""

import json
from pathlib import Path

import pytest
import websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from support.tcp_backends import Backend, connect, exchange

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "gravitee-v4-fixtures" / "tcp"


def fixture(name, port):
    definition = json.loads((FIXTURES / name).read_text())
    for group in definition["endpointGroups"]:
        for endpoint in group["endpoints"]:
            endpoint["configuration"]["target"].update(host="127.0.0.1", port=port)
    return definition, definition["listeners"][0]["hosts"][0]


class WebSocketEcho(Backend):
    """A WebSocket server (wsproto over a plain socket) that answers each text message with `echo:<text>`."""

    def serve(self, conn):
        self.connections.append(conn)
        ws = WSConnection(ConnectionType.SERVER)
        while data := conn.recv(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    conn.sendall(ws.send(AcceptConnection()))
                elif isinstance(event, TextMessage):
                    conn.sendall(ws.send(TextMessage(data="echo:" + event.data)))
                elif isinstance(event, CloseConnection):
                    conn.sendall(ws.send(event.response()))
                    return


@pytest.fixture
def websocket_backend():
    backend = WebSocketEcho()
    yield backend
    backend.kill()


def test_api_json_relays_bytes(shared_server, tcp_backends):
    definition, host = fixture("api.json", tcp_backends("echo").port)
    shared_server.deploy_api(definition)
    with connect(shared_server, host) as client:
        assert exchange(client, b"hello", b"echo") == b"echo:hello"


def test_api_websocket_json_carries_a_websocket_conversation(shared_server, websocket_backend):
    definition, host = fixture("api-websocket.json", websocket_backend.port)
    shared_server.deploy_api(definition)
    # The WebSocket client speaks over the TLS connection to the gateway (SNI myapi.tcp.local).
    ws = websocket.create_connection(f"ws://{host}/", socket=connect(shared_server, host), timeout=5)
    try:
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv() == "echo:" + text
    finally:
        ws.close()
