"""The functions (#jsonPath, #xpath) and the methods of strings, lists and maps an expression may call."""

import functools
import json
import re
from collections.abc import Mapping

import jsonpath_ng
from lxml import etree

from .errors import EvaluationError
from .values import Headers, to_text, type_name

MAX_PATTERN = 1000


@functools.lru_cache(maxsize=512)
def _compile(pattern):
    return re.compile(pattern)


def regex(pattern):
    # Python's re has no timeout: a pattern comes from an API definition, so its length is bounded here and
    # compiled patterns are cached, but a catastrophic pattern still backtracks as long as it takes.
    if not isinstance(pattern, str):
        raise EvaluationError(f"A regular expression must be a string, not {type_name(pattern)}")
    if len(pattern) > MAX_PATTERN:
        raise EvaluationError(f"Regular expression longer than {MAX_PATTERN} characters")
    try:
        return _compile(pattern)
    except re.error as error:
        raise EvaluationError(f"Invalid regular expression {pattern!r}: {error}") from None


def matches(text, pattern):
    if text is None:
        return False
    if not isinstance(text, str):
        text = to_text(text)
    return regex(pattern).fullmatch(text) is not None


def _single(results):
    if not results:
        return None
    return results[0] if len(results) == 1 else results


@functools.lru_cache(maxsize=256)
def _json_path(path):
    try:
        return jsonpath_ng.parse(path)
    # jsonpath-ng raises its lexer's and parser's errors, and plain Exception for some malformed paths.
    except Exception as error:
        raise EvaluationError(f"Invalid JSON path {path!r}: {error}") from None


def json_path(value, path):
    if not isinstance(path, str):
        raise EvaluationError("#jsonPath: the path must be a string")
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise EvaluationError(f"#jsonPath: not JSON: {error}") from None
    return _single([match.value for match in _json_path(path).find(value)])


# No DTDs, entities or network: the XML comes from a request or a response.
XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def xpath(value, path):
    if not isinstance(path, str):
        raise EvaluationError("#xpath: the path must be a string")
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise EvaluationError(f"#xpath: needs an XML string, not {type_name(value)}")
    try:
        result = etree.fromstring(value, XML_PARSER).xpath(path)
    except etree.XMLSyntaxError as error:
        raise EvaluationError(f"#xpath: not XML: {error}") from None
    except etree.XPathError as error:
        raise EvaluationError(f"#xpath: invalid path {path!r}: {error}") from None
    if isinstance(result, list):
        return _single([str(item) if isinstance(item, str) else "".join(item.itertext()) for item in result])
    if isinstance(result, str):
        return str(result)
    return result


FUNCTIONS = {"jsonPath": json_path, "xpath": xpath}


def _substring(s, start, end=None):
    end = len(s) if end is None else end
    if not (isinstance(start, int) and isinstance(end, int)) or not 0 <= start <= end <= len(s):
        raise EvaluationError(f"substring({start}, {end}) out of range for a string of length {len(s)}")
    return s[start:end]


def _java_split(s, pattern):
    parts = regex(pattern).split(s)
    # Java drops trailing empty strings.
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def _str_arg(value):
    return value if isinstance(value, str) else to_text(value)


STRING_METHODS = {
    "toLowerCase": lambda s: s.lower(),
    "toUpperCase": lambda s: s.upper(),
    "substring": _substring,
    "contains": lambda s, x: _str_arg(x) in s,
    "startsWith": lambda s, x: s.startswith(_str_arg(x)),
    "endsWith": lambda s, x: s.endswith(_str_arg(x)),
    "length": len,
    "matches": matches,
    "split": _java_split,
    "trim": lambda s: s.strip(),
    "isEmpty": lambda s: s == "",
    "equals": lambda s, x: s == x,
    "equalsIgnoreCase": lambda s, x: isinstance(x, str) and s.lower() == x.lower(),
    "indexOf": lambda s, x: s.find(_str_arg(x)),
    "replace": lambda s, a, b: s.replace(_str_arg(a), _str_arg(b)),
    "concat": lambda s, x: s + _str_arg(x),
    "toString": lambda s: s,
}


def _list_get(items, index):
    if not isinstance(index, int) or isinstance(index, bool):
        raise EvaluationError(f"get() on a list needs an integer index, not {type_name(index)}")
    if not 0 <= index < len(items):
        raise EvaluationError(f"Index {index} out of range for a list of size {len(items)}")
    return items[index]


LIST_METHODS = {
    "size": len,
    "isEmpty": lambda items: len(items) == 0,
    "contains": lambda items, x: x in items,
    "get": _list_get,
    "indexOf": lambda items, x: items.index(x) if x in items else -1,
}

MAP_METHODS = {
    "size": len,
    "isEmpty": lambda m: len(m) == 0,
    "get": lambda m, key: m.get(key),
    "containsKey": lambda m, key: key in m,
    "containsValue": lambda m, value: value in m.values(),
}

HEADER_METHODS = {**MAP_METHODS, "getFirst": Headers.get_first}


def methods_of(target):
    if isinstance(target, str):
        return STRING_METHODS
    if isinstance(target, (list, tuple)):
        return LIST_METHODS
    if isinstance(target, Headers):
        return HEADER_METHODS
    if isinstance(target, Mapping):
        return MAP_METHODS
    return None


def call_method(target, name, args):
    table = methods_of(target)
    method = table.get(name) if table is not None else None
    if method is None:
        raise EvaluationError(f"Method {name}() not found on {type_name(target)}")
    try:
        return method(target, *args)
    except TypeError:
        raise EvaluationError(f"Method {name}() on {type_name(target)} cannot take {len(args)} argument(s)") from None
