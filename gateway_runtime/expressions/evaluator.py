"""Turns a parsed expression into a tree of closures, each taking the context: parsed once, run often.

Evaluation only walks dicts (Mapping), lists, strings, numbers, booleans and None; a member name is a key,
never a Python attribute, and methods come from the tables in functions.py.
"""

import math
import operator
from collections.abc import Mapping

from .errors import EvaluationError
from .functions import FUNCTIONS, call_method, matches
from .values import Headers, to_bool, to_text, type_name


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _member(target, name):
    if isinstance(target, Mapping):
        value = target.get(name)
        # Headers are looked up case-insensitively, however the caller built them.
        if name == "headers" and isinstance(value, Mapping) and not isinstance(value, Headers):
            value = Headers(value)
        return value
    if target is None:
        raise EvaluationError(f"Cannot read property '{name}' of null (use ?. to allow null)")
    raise EvaluationError(f"Property '{name}' cannot be found on {type_name(target)}")


def _index(target, key):
    if isinstance(target, Mapping):
        value = target.get(key)
        if value is None and isinstance(key, int) and not isinstance(key, bool):
            value = target.get(str(key))
        return value
    if isinstance(target, (list, tuple, str)):
        if not isinstance(key, int) or isinstance(key, bool):
            raise EvaluationError(f"A {type_name(target)} index must be an integer, not {type_name(key)}")
        if not 0 <= key < len(target):
            raise EvaluationError(f"Index {key} out of range for a {type_name(target)} of size {len(target)}")
        return target[key]
    if target is None:
        raise EvaluationError("Cannot index into a null value")
    raise EvaluationError(f"Cannot index into {type_name(target)}")


def _equal(a, b):
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return a == b


def _order(a, b):
    """-1, 0 or 1; None sorts before anything, as SpEL's comparator does."""
    if a is None or b is None:
        return (a is not None) - (b is not None)
    if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return (a > b) - (a < b)
    if type(a) is bool and type(b) is bool:
        return int(a) - int(b)
    raise EvaluationError(f"Cannot compare {type_name(a)} with {type_name(b)}")


COMPARISONS = {
    "==": _equal,
    "eq": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "ne": lambda a, b: not _equal(a, b),
    "<": lambda a, b: _order(a, b) < 0,
    "lt": lambda a, b: _order(a, b) < 0,
    "<=": lambda a, b: _order(a, b) <= 0,
    "le": lambda a, b: _order(a, b) <= 0,
    ">": lambda a, b: _order(a, b) > 0,
    "gt": lambda a, b: _order(a, b) > 0,
    ">=": lambda a, b: _order(a, b) >= 0,
    "ge": lambda a, b: _order(a, b) >= 0,
    "matches": matches,
}


def _numbers(symbol, a, b):
    if not (_is_number(a) and _is_number(b)):
        raise EvaluationError(f"Operator {symbol} needs numbers, not {type_name(a)} and {type_name(b)}")


def _add(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return to_text(a) + to_text(b)
    _numbers("+", a, b)
    return a + b


def _divide(a, b):
    _numbers("/", a, b)
    if b == 0 and isinstance(a, int) and isinstance(b, int):
        raise EvaluationError("Division by zero")
    if isinstance(a, int) and isinstance(b, int):
        # Java's integer division truncates toward zero.
        quotient = abs(a) // abs(b)
        return quotient if (a >= 0) == (b >= 0) else -quotient
    if b == 0:
        return math.copysign(math.inf, a) if a else math.nan
    return a / b


def _remainder(a, b):
    _numbers("%", a, b)
    if b == 0:
        if isinstance(a, int) and isinstance(b, int):
            raise EvaluationError("Division by zero")
        return math.nan
    if isinstance(a, int) and isinstance(b, int):
        return a - b * _divide(a, b)
    return math.fmod(a, b)


def _checked(symbol, function):
    def apply(a, b):
        _numbers(symbol, a, b)
        return function(a, b)

    return apply


ARITHMETIC = {
    "+": _add,
    "-": _checked("-", operator.sub),
    "*": _checked("*", operator.mul),
    "/": _divide,
    "%": _remainder,
}


def _unquote(token, quote):
    return token[1:-1].replace(quote * 2, quote)


def _integer(text):
    text = text.rstrip("lL")
    return int(text, 16) if text[:2].lower() == "0x" else int(text)


def _constant(value):
    return lambda context: value


def build(tree):
    """A function context -> value for a lark tree of the grammar."""
    kind = tree.data
    children = tree.children
    handler = BUILDERS.get(kind)
    if handler is None:
        raise AssertionError(f"no builder for {kind}")
    return handler(children)


def _build_var(children):
    name = children[0][1:]

    def var(context):
        try:
            return context[name]
        except KeyError:
            raise EvaluationError(f"Unknown variable #{name}") from None

    return var


def _args(tree):
    return [build(child) for child in tree.children]


def _build_func(children):
    name = children[0][1:]
    args = _args(children[1])
    function = FUNCTIONS.get(name)

    def func(context):
        if function is None:
            raise EvaluationError(f"Unknown function #{name}()")
        values = [arg(context) for arg in args]
        try:
            return function(*values)
        except TypeError:
            raise EvaluationError(f"Function #{name}() cannot take {len(values)} argument(s)") from None

    return func


def _build_prop(children, safe=False):
    target = build(children[0])
    name = str(children[1])

    def prop(context):
        value = target(context)
        if value is None and safe:
            return None
        return _member(value, name)

    return prop


def _build_method(children, safe=False):
    target = build(children[0])
    name = str(children[1])
    args = _args(children[2])

    def method(context):
        value = target(context)
        if value is None:
            if safe:
                return None
            raise EvaluationError(f"Method call: cannot call {name}() on null (use ?. to allow null)")
        return call_method(value, name, [arg(context) for arg in args])

    return method


def _build_index(children):
    target, key = build(children[0]), build(children[1])
    return lambda context: _index(target(context), key(context))


def _build_compare(children):
    left, right = build(children[0]), build(children[2])
    compare = COMPARISONS[children[1].value.lower()]
    return lambda context: compare(left(context), right(context))


def _build_arith(children):
    left, right = build(children[0]), build(children[2])
    apply = ARITHMETIC[children[1].value]
    return lambda context: apply(left(context), right(context))


def _build_and(children):
    left, right = build(children[0]), build(children[2])
    return lambda context: to_bool(left(context), "&&") and to_bool(right(context), "&&")


def _build_or(children):
    left, right = build(children[0]), build(children[2])
    return lambda context: to_bool(left(context), "||") or to_bool(right(context), "||")


def _build_not(children):
    operand = build(children[1])
    return lambda context: not to_bool(operand(context), "!")


def _build_sign(symbol, apply):
    def build_signed(children):
        operand = build(children[1])

        def signed(context):
            value = operand(context)
            if not _is_number(value):
                raise EvaluationError(f"Operator {symbol} needs a number, not {type_name(value)}")
            return apply(value)

        return signed

    return build_signed


def _build_ternary(children):
    test, yes, no = (build(child) for child in children)
    return lambda context: yes(context) if to_bool(test(context), "?:") else no(context)


def _build_elvis(children):
    value, default = build(children[0]), build(children[1])

    def elvis(context):
        result = value(context)
        return default(context) if result is None or result == "" else result

    return elvis


def _build_with_options(children):
    # A secret reference with options: the reference and its options as one URI-like string, the form
    # '/vault/secret/x:y?renewable=true' that a plain string reference has.
    value, options = build(children[0]), str(children[1])
    return lambda context: to_text(value(context)) + options


BUILDERS = {
    "start": lambda children: build(children[0]),
    "var": _build_var,
    "func": _build_func,
    "prop": _build_prop,
    "safe_prop": lambda children: _build_prop(children, safe=True),
    "method": _build_method,
    "safe_method": lambda children: _build_method(children, safe=True),
    "index": _build_index,
    "compare": _build_compare,
    "arith": _build_arith,
    "and_": _build_and,
    "or_": _build_or,
    "not_": _build_not,
    "neg": _build_sign("-", lambda value: -value),
    "pos": _build_sign("+", lambda value: value),
    "ternary": _build_ternary,
    "elvis": _build_elvis,
    "with_options": _build_with_options,
    "sq_string": lambda children: _constant(_unquote(children[0], "'")),
    "dq_string": lambda children: _constant(_unquote(children[0], '"')),
    "integer": lambda children: _constant(_integer(children[0])),
    "decimal": lambda children: _constant(float(children[0].rstrip("dDfF"))),
    "true": lambda children: _constant(True),
    "false": lambda children: _constant(False),
    "null": lambda children: _constant(None),
}
