"""The part of Gravitee's expression language this gateway evaluates: comparisons of the
response status, e.g. `{#response.status >= 500}`, joined by `&&` or `||` (health check
assertions, failover failure conditions)."""

import operator
import re

COMPARISON = re.compile(r"^\s*response\.status\s*(==|!=|>=|<=|>|<)\s*(\d{3})\s*$")
COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def status_condition(expression):
    """A function status -> bool for the expression, or None when it is anything else."""
    text = str(expression or "").strip()
    if not (text.startswith("{#") and text.endswith("}")):
        return None
    alternatives = []
    for alternative in text[2:-1].split("||"):
        terms = []
        for term in alternative.split("&&"):
            match = COMPARISON.match(term)
            if match is None:
                return None
            terms.append((COMPARE[match.group(1)], int(match.group(2))))
        alternatives.append(terms)
    return lambda status: any(all(op(status, code) for op, code in terms) for terms in alternatives)
