"""Templates: plain text with `{#...}` expressions in it, compiled once; conditions built on them."""

from .errors import ExpressionError
from .evaluator import build
from .grammar import parse
from .values import to_text

# A `{` followed by one of these is an expression and must parse; any other `{` holds an expression only
# when its content parses (JSON bodies and path parameters like `{id}` stay text).
STRICT_STARTS = ("#", "(", "'")


def _closing(text, start):
    """Index of the `}` closing the `{` at `start`, skipping quoted strings and nested braces; or an error."""
    depth = 0
    quote = None
    quote_at = 0
    k = start + 1
    while k < len(text):
        char = text[k]
        if quote:
            if char == quote:
                if text[k + 1 : k + 2] == quote:
                    k += 1
                else:
                    quote = None
        elif char in "'\"":
            quote, quote_at = char, k
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return k
            depth -= 1
        k += 1
    if quote:
        return ExpressionError(quote_at + 1, "unterminated string")
    return ExpressionError(start + 1, "unclosed '{'")


def _parts(text):
    """The template's parts: strings and compiled expressions (functions of the context)."""
    parts = []
    literal_from = 0
    i = 0
    while (j := text.find("{", i)) >= 0:
        strict = text[j + 1 :].lstrip()[:1] in STRICT_STARTS
        end = _closing(text, j)
        if isinstance(end, ExpressionError):
            if strict:
                raise end
            i = j + 1
            continue
        try:
            expression = build(parse(text[j + 1 : end], j + 1))
        except ExpressionError:
            if strict:
                raise
            i = j + 1
            continue
        if j > literal_from:
            parts.append(text[literal_from:j])
        parts.append(expression)
        literal_from = i = end + 1
    if literal_from < len(text):
        parts.append(text[literal_from:])
    return parts


def _render(value):
    # SpEL's composite templates leave a null part out.
    return "" if value is None else to_text(value)


class Template:
    """A compiled template: `render` gives text, `evaluate` the value of a one-expression template."""

    __slots__ = ("text", "_parts", "_single", "is_constant")

    def __init__(self, text):
        self.text = text
        self._parts = _parts(text)
        expressions = [part for part in self._parts if not isinstance(part, str)]
        texts = [part for part in self._parts if isinstance(part, str)]
        self._single = expressions[0] if len(expressions) == 1 and not "".join(texts).strip() else None
        self.is_constant = not expressions  # its text is what it renders

    def render(self, context):
        return "".join(part if isinstance(part, str) else _render(part(context)) for part in self._parts)

    def evaluate(self, context):
        if self._single is not None:
            return self._single(context)
        return self.render(context)

    def __repr__(self):
        return f"Template({self.text!r})"


class Condition:
    """A compiled condition; empty text is always true. `test` raises EvaluationError when it cannot run."""

    __slots__ = ("text", "_template")

    def __init__(self, text):
        self.text = text
        self._template = Template(text) if text and text.strip() else None

    def test(self, context):
        if self._template is None:
            return True
        value = self._template.evaluate(context)
        return value is True or (isinstance(value, str) and value.strip().lower() == "true")

    def __repr__(self):
        return f"Condition({self.text!r})"


def compile_template(text):
    return Template(text)


def compile_condition(text):
    return Condition(text)
