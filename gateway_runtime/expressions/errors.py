"""The two errors of the expression language: one when a text is compiled, one when it is evaluated."""


class ExpressionError(ValueError):
    """A text that cannot be parsed; `position` is 1-based, counted in the whole text given."""

    def __init__(self, position, reason):
        super().__init__(f"Expression error at position {position}: {reason}")
        self.position = position
        self.reason = reason


class EvaluationError(ValueError):
    """An expression that parsed but cannot be evaluated against the context given."""
