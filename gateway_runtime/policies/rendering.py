"""Templates in policy settings, compiled once with the step and rendered per request or message."""

from collections.abc import Callable
from typing import Any

from ..expressions import EvaluationError, ExpressionError, Template, compile_template
from ..messages import Interrupted
from ..settings import SettingsError

PAIRS_HELP = "One 'name: value' a line; values may hold {#...}"


def template(text: Any, field: str) -> Template:
    """Compiled once with the step; a text that cannot be read is a settings error of `field`."""
    try:
        return compile_template("" if text is None else str(text))
    except ExpressionError as exc:
        raise SettingsError({field: str(exc)}) from exc


def evaluate(compiled: Template, context: Callable[[], dict[str, Any]], failure: str, key: str) -> str:
    """The text (a constant costs nothing), or the policy's 500 when it cannot be evaluated."""
    if compiled.is_constant:
        return compiled.text
    try:
        return compiled.render(context())
    except EvaluationError as exc:
        raise Interrupted(500, failure, key) from exc
