"""The real solace-pubsubplus in the real worker, against a closed local port (no Solace broker can
run here): the client gets the library's connection failure as a clear 502 within seconds, the
gateway's hub keeps serving other APIs meanwhile, and the library's own log lines reach the
gateway's log through the channel without corrupting it."""

import threading
import time

import requests

from support.apis import mock_api, solace_api
from support.gatehouse import free_port
from support.solace import worker_pids
from support.streams import next_message

JSON = {"Accept": "application/json"}


def test_real_library_connection_refused_is_clear_and_fast_and_the_hub_keeps_serving(start_server):
    server = start_server()
    closed = free_port()
    server.deploy_api(solace_api(url=f"tcp://127.0.0.1:{closed}"))
    server.deploy_api(mock_api(path="/mock", interval=1, count=1, entrypoints=[{"type": "http-get"}]))
    expected = f"The endpoint failed: Connection refused to tcp://127.0.0.1:{closed}"

    latencies, serving, done = [], threading.Event(), threading.Event()

    def other_client():
        with requests.Session() as session:
            while not done.is_set():
                started = time.monotonic()
                response = session.get(server.gateway + "/mock", headers=JSON, timeout=10)
                assert response.json()["items"][0]["content"] == "hello"
                latencies.append(time.monotonic() - started)
                serving.set()

    thread = threading.Thread(target=other_client)
    thread.start()
    try:
        assert serving.wait(10)
        before = len(latencies)
        started = time.monotonic()
        # The first call starts the worker (a new interpreter importing the library), then connects.
        response = requests.get(server.gateway + "/solace", headers=JSON, timeout=15)
        first_call = time.monotonic() - started
        during = latencies[before:]
    finally:
        done.set()
        thread.join()
    assert response.status_code == 502 and response.json() == {"message": expected}
    assert first_call < 3, first_call
    # Served meanwhile, each in well under the time the Solace call took.
    assert len(during) >= 3 and max(during) < 0.5, (first_call, during)
    print(f"first Solace call {first_call:.3f} s; {len(during)} mock calls meanwhile, slowest {max(during):.3f} s")

    started = time.monotonic()
    response = requests.post(server.gateway + "/solace", data=b"x", timeout=15)
    assert response.status_code == 502 and response.json() == {"message": expected}
    assert time.monotonic() - started < 1  # the worker runs: the library fails within milliseconds

    with requests.get(
        server.gateway + "/solace", stream=True, timeout=15, headers={"Accept": "text/event-stream"}
    ) as stream:
        event = next_message(stream)
        assert event == {"event": "error", "data": expected.removeprefix("The endpoint failed: ")}

    # The library logged the failure (to stdout, by its own configuration): the line came over
    # the channel into the gateway's log, and the same worker still answers.
    assert "gatehouse.solace.worker.solace.messaging" in server.log
    assert "Connection refused (111)" in server.log
    assert len(worker_pids(server)) == 1
