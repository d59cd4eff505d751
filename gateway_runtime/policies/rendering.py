"""Templates in policy settings, compiled once with the step and rendered per request or message."""

from typing import Any

from ..expressions import EvaluationError, ExpressionError, Template, compile_template
from ..messages import Interrupted
from ..settings import SettingsError

EVALUATION_KEY = "POLICY_EXPRESSION_ERROR"


def template(text: Any, field: str) -> Template:
    """Compiled once with the step; a text that cannot be read is a settings error of `field`."""
    try:
        return compile_template("" if text is None else str(text))
    except ExpressionError as exc:
        raise SettingsError({field: str(exc)}) from exc


def render(compiled: Template, context: dict[str, Any], what: str) -> str:
    """The text, or a 500 naming what could not be evaluated (as Gravitee fails the request)."""
    try:
        return compiled.render(context)
    except EvaluationError as exc:
        raise Interrupted(500, f"{what} could not be evaluated: {exc}", EVALUATION_KEY) from exc
