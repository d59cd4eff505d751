"""quota: the rate limit's counting over hours to months, answered as Gravitee's quota policy is."""

from ..specs import PolicySpec
from .rate_limit import Limit, settings


class Quota(Limit):
    NAME, ERROR_KEY, HEADER, EXCEEDED = "quota", "QUOTA_TOO_MANY_REQUESTS", "X-Quota", "Quota exceeded"
    POLICY = "quota"


SPEC = PolicySpec(
    type="quota",
    label="Quota",
    policy=Quota,
    phases=("request", "publish"),
    description="Allow each consumer so many requests (or published messages) per hour, day, week or month.",
    configuration=settings("quota", ("HOURS", "DAYS", "WEEKS", "MONTHS"), "MONTHS", True),
)
