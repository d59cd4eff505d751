"""spike-arrest: the rate limit smoothed, as Gravitee's policy does it: `limit` per period becomes
so many requests per slice of the period (one per period/limit, slices of 100 ms at least), so a
burst is refused even while the period's total is not reached."""

from ..specs import PolicySpec
from .rate_limit import UNITS, Limit, settings

MIN_SLICE_MS = 100  # Gravitee's: thinner slices would be counted wrong across nodes


class SpikeArrest(Limit):
    NAME, ERROR_KEY, HEADER = "spike", "SPIKE_ARREST_TOO_MANY_REQUESTS", "X-Spike-Arrest"
    POLICY = "spike-arrest"

    def window(self):
        period_ms = self.period * UNITS[self.unit] * 1000
        if self.limit <= 0:
            self.slice_ms = period_ms
            return 0, period_ms / 1000
        per_request = period_ms / self.limit
        # Too thin a slice for one request: slices of about MIN_SLICE_MS, with as many requests each.
        slice_limit = 1 if per_request >= MIN_SLICE_MS else round(MIN_SLICE_MS / per_request)
        self.slice_ms = int(per_request * slice_limit)
        return slice_limit, self.slice_ms / 1000

    def exceeded(self):
        return f"Spike limit exceeded! You reached the limit of {self.allowed} requests per {self.slice_ms} ms."

    def parameters(self):
        slices = {"slice_limit": self.allowed, "slice_period_time": self.slice_ms, "slice_period_unit": "MILLISECONDS"}
        return {**super().parameters(), **slices}

    def headers(self, count):
        return (
            (f"{self.HEADER}-Limit", str(self.allowed)),
            (f"{self.HEADER}-Slice-Period", f"{self.slice_ms}ms"),
            (f"{self.HEADER}-Reset", str(count.reset_ms)),
        )


SPEC = PolicySpec(
    type="spike-arrest",
    label="Spike arrest",
    policy=SpikeArrest,
    phases=("request", "publish"),
    description="Smooth each consumer's requests (or published messages): so many per second or minute, spread evenly.",
    configuration=settings("spike", ("SECONDS", "MINUTES"), "SECONDS", False),
)
