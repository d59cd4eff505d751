"""Gravitee's expression language (SpEL underneath), the subset API definitions use.

compile_template("Bearer {#request.headers['X'][0]}").render(context) -> str
compile_condition("{#response.status >= 500}").test(context) -> bool

The context is a dict of roots (request, response, message, context, api, ...), named `#root` in an
expression. Compiling raises ExpressionError (with `.position`, 1-based in the whole text); evaluating
raises EvaluationError.
"""

from .errors import EvaluationError, ExpressionError
from .template import Condition, Template, compile_condition, compile_template
from .values import Headers

__all__ = [
    "compile_template",
    "compile_condition",
    "Template",
    "Condition",
    "ExpressionError",
    "EvaluationError",
    "Headers",
]
