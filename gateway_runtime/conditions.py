"""Conditions on a backend's answer, in Gravitee's expression language: the failover's
`failureCondition` and health checks' `assertion` (e.g. `{#response.status >= 500}`,
`{#jsonPath(#response.content, '$.status') == 'UP'}`)."""

import logging
from typing import Any

from .expressions import EvaluationError, Headers, compile_condition

log = logging.getLogger("gatehouse.gateway")


class ResponseCondition:
    """A compiled condition tested against an answer's status, headers and (health checks) content.
    Compiling raises expressions.ExpressionError, naming the position. An answer it cannot be
    evaluated against (a root other than #response, say) does not pass; that is logged once."""

    __slots__ = ("condition", "what", "warned")

    def __init__(self, text: str, what: str) -> None:
        self.condition = compile_condition(text)
        self.what = what  # for the log: "failover failure condition", "health check assertion"
        self.warned = False

    def __call__(self, status: int, headers: Any = (), content: str | None = None) -> bool:
        response = {"status": status, "headers": Headers(headers), "content": content}
        try:
            return self.condition.test({"response": response})
        except EvaluationError as exc:
            if not self.warned:
                self.warned = True
                log.warning("the %s %r cannot be evaluated: %s (counted as false)", self.what, self.condition.text, exc)
            return False
