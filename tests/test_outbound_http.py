"""The gateway's outbound HTTP/1.1 client (gateway_runtime/http_client.py), seen through an
http-proxy API against a real backend that counts its connections: kept-alive connections are
reused, one the backend dropped is noticed and the request sent again when it cannot have been
acted on, never when it may have, and a chunked upload reaches the backend whole."""

import hashlib
import os

import pytest
import requests

from support.apis import proxy_api
from support.http_backends import CountingServer, url


@pytest.fixture
def server(shared_server):
    return shared_server


@pytest.fixture
def backend():
    backend = CountingServer()
    yield backend
    backend.stop()


def test_many_requests_reuse_one_backend_connection(server, backend):
    server.deploy_api(proxy_api([url(backend)], path="/reuse"))
    for _ in range(30):
        assert requests.get(server.gateway + "/reuse/x", timeout=10).json()["size"] == 0
    assert backend.methods == ["GET"] * 30 and backend.connections == 1


def test_a_kept_alive_connection_the_backend_dropped_is_noticed_and_the_get_sent_once_more(server, backend):
    backend.drop_after_answer = True
    server.deploy_api(proxy_api([url(backend)], path="/dropped"))
    for answered in range(1, 4):
        got = requests.get(server.gateway + "/dropped/x", timeout=10)
        assert got.status_code == 200, got.text
        assert backend.wait_closed(answered)  # the pooled connection is dead before the next GET
    # Each GET found the connection of the one before closed and went on a new one, once.
    assert backend.methods == ["GET"] * 3 and backend.connections == 3


def test_a_post_takes_a_new_connection_when_the_kept_one_was_dropped_and_is_sent_once(server, backend):
    backend.drop_after_answer = True
    server.deploy_api(proxy_api([url(backend)], path="/post-after-drop"))
    assert requests.get(server.gateway + "/post-after-drop/x", timeout=10).status_code == 200
    assert backend.wait_closed(1)
    posted = requests.post(server.gateway + "/post-after-drop/x", data=b"order", timeout=10)
    assert posted.status_code == 200 and posted.json()["size"] == 5
    assert backend.methods == ["GET", "POST"]


def test_a_post_whose_answer_broke_off_is_not_sent_again(server, backend):
    backend.cut_posts = True
    port = backend.server_address[1]
    server.deploy_api(proxy_api([url(backend)], path="/cut"))
    assert requests.get(server.gateway + "/cut/x", timeout=10).status_code == 200  # a kept-alive connection
    posted = requests.post(server.gateway + "/cut/x", data=b"order", timeout=10)
    assert posted.status_code == 502
    assert posted.json() == {"message": f"the backend 127.0.0.1:{port} cannot be reached"}
    assert backend.methods == ["GET", "POST"]


def test_a_chunked_upload_reaches_the_backend_whole(server, backend):
    server.deploy_api(proxy_api([url(backend)], path="/upload"))
    # over messages.REPLAY_LIMIT (1 MiB), so streamed on as it comes rather than held for a retry
    parts = [os.urandom(size) for size in (1, 70_000, 5, 1_300_000, 64 * 1024)]
    got = requests.post(server.gateway + "/upload/x", data=iter(parts), timeout=30)  # chunked
    assert got.status_code == 200, got.text
    whole = b"".join(parts)
    assert got.json() == {"path": "/x", "size": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}


def test_redirects_are_followed_when_the_endpoint_says_so(server, backend):
    server.deploy_api(proxy_api([url(backend)], path="/kept"))
    server.deploy_api(proxy_api([url(backend)], path="/followed", http={"followRedirects": True}))
    kept = requests.get(server.gateway + "/kept/moved/here", allow_redirects=False, timeout=10)
    assert kept.status_code == 302 and kept.headers["Location"] == "/here"
    followed = requests.get(server.gateway + "/followed/moved/here", allow_redirects=False, timeout=10)
    assert followed.status_code == 200 and followed.json()["path"] == "/here"
    assert backend.methods == ["GET"] * 3 and backend.connections == 2  # one kept-alive connection per API
