"""Log a dependency outage once, not once per retry: a loop that polls a database or broker every
second would otherwise write a traceback per poll for as long as the outage lasts."""

import time


def one_line(exc):
    """The first non-empty line of an exception's message (driver errors append SQL and links),
    or its type name when it has no message."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


class Outage:
    """The state of one dependency as seen by one retrying loop: `failed` on every failed attempt,
    `recovered` on every successful one. Logs one warning when an outage starts and one info line
    when it ends."""

    def __init__(self, logger, what):
        self.log, self.what = logger, what
        self.failures, self.since = 0, None

    @property
    def down(self):
        return self.failures > 0

    def failed(self, exc):
        self.failures += 1
        if self.failures == 1:
            self.since = time.monotonic()
            self.log.warning("%s failed: %s; retrying", self.what, one_line(exc))
        else:
            self.log.debug("%s failed again (%d): %s", self.what, self.failures, one_line(exc))

    def recovered(self):
        if not self.failures:
            return
        self.log.info(
            "%s works again after %d failures / %.1f s", self.what, self.failures, time.monotonic() - self.since
        )
        self.failures, self.since = 0, None
