"""Reading what a gateway streams: SSE events parsed from a response, and the next message."""

import time


def read_sse(response, count, timeout=10):
    """Parse up to `count` events (dicts of field -> value) from a streaming response; call it
    again on the same response to read on."""
    if not hasattr(response, "sse_lines"):
        response.sse_lines = response.iter_lines(decode_unicode=True)
    events, current = [], {}
    deadline = time.monotonic() + timeout
    for raw in response.sse_lines:
        if raw == "":
            if current:
                events.append(current)
                current = {}
                if len(events) >= count:
                    break
        elif raw.startswith(":"):
            current.setdefault("comments", []).append(raw[1:])
        else:
            name, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[name] = current[name] + "\n" + value if name in current else value
        if time.monotonic() > deadline:
            break
    return events


def sse_messages(stream, count, timeout=15):
    """Up to `count` `message` events, the retry hint and heartbeat comments skipped; an `error`
    event fails the test where it arrives."""
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        events = read_sse(stream, 1, timeout=deadline - time.monotonic())
        if not events:
            break
        assert events[0].get("event") != "error", events
        got += [e for e in events if e.get("event") == "message"]
    return got


def next_message(stream, timeout=15):
    """The next `message` or `error` event of an SSE stream (heartbeats and comments skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_sse(stream, 1, timeout=deadline - time.monotonic()):
            if event.get("event") in ("message", "error"):
                return event
    raise AssertionError("no message within the timeout")
