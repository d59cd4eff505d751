"""Gravitee's expression language (gateway_runtime/expressions): values, refused texts, evaluation errors."""

import json
import pathlib
import time

import pytest

from gateway_runtime.expressions import (
    EvaluationError,
    ExpressionError,
    Headers,
    compile_condition,
    compile_template,
)

FIXTURES = pathlib.Path("/work/shared/gravitee-v4-fixtures")

XML = "<order><id>42</id><items><item>a</item><item>b</item></items></order>"
JSON_BODY = '{"user": {"name": "ada", "roles": ["admin", "dev"]}, "count": 3}'


def context():
    return {
        "request": {
            "headers": Headers(
                {
                    "Content-Type": ["application/json"],
                    "X-Topic-Override-Request-Level": ["topic-a"],
                    "X-Condition-Flow-Selection": ["root-condition"],
                    "Authorization": ["Bearer abc.def"],
                    "X-Multi": ["one", "two"],
                    "execute-shared-policy-group": ["yes"],
                }
            ),
            "params": {"page": ["2"], "Sort": ["asc"]},
            "timestamp": 1709737299000,
            "path": "/orders/42",
            "method": "POST",
            "content": JSON_BODY,
            "id": None,
        },
        "response": {"status": 503, "headers": {"Content-Length": ["12"]}, "content": XML},
        "message": {"content": "hello", "headers": {"x-header-test": ["v1"]}, "attributes": {}},
        "context": {"attributes": {"user": "ada", "empty": "", "flag": True, "n": 7}},
        "api": {"properties": {"backend": "http://backend", "value5": "/vault/secret/test:value5"}},
        "subscription": {"metadata": {"tier": "gold"}},
        "application": {"id": "app-1", "name": "Shop"},
        "endpoints": {"second": "http://second", "second-group": "http://group2"},
        "group": ["g0", "g1"],
        "error": {"key": "GATEWAY_TIMEOUT", "message": "Timed out", "statusCode": 504, "cause": None},
        "data": {"items": [1, 2, 3], "empty": [], "map": {"a": 1}, "text": "  padded  ", "pi": 3.5},
    }


# (template text, expected value of Template.evaluate)
VALUES = [
    # literals
    ("{'single'}", "single"),
    ('{"double"}', "double"),
    ("{'it''s'}", "it's"),
    ('{"say ""hi"""}', 'say "hi"'),
    ("{#data.text == '  padded  '}", True),
    ("{42}", 42),
    ("{3.25}", 3.25),
    ("{1709737299215l}", 1709737299215),
    ("{1709737299215L}", 1709737299215),
    ("{0x1F}", 31),
    ("{1e3}", 1000.0),
    ("{true}", True),
    ("{false}", False),
    ("{null}", None),
    ("{TRUE}", True),
    ("{'a' + 1}", "a1"),
    # roots, members, indexes
    ("{#request.method}", "POST"),
    ("{#request.path}", "/orders/42"),
    ("{#request.headers['X-Topic-Override-Request-Level'][0]}", "topic-a"),
    ("{#request.headers['x-topic-override-request-level'][0]}", "topic-a"),
    ("{#request.headers['content-type'][0]}", "application/json"),
    ("{#request.headers['CONTENT-TYPE'][0]}", "application/json"),
    ("{#response.headers['content-length'][0]}", "12"),
    ("{#message.headers['X-Header-Test'][0]}", "v1"),
    ("{#request.headers['X-Multi'][1]}", "two"),
    ("{#request.headers['X-Missing']}", None),
    ("{#request.headers['X-Topic-Override-Request-Level'] != null}", True),
    ("{#request.headers['X-New-Topic'] != null}", False),
    ("{#request.headers['X-New-Topic'] == null}", True),
    ("{#request.headers.getFirst('authorization')}", "Bearer abc.def"),
    ("{#request.headers.getFirst('X-Missing')}", None),
    ("{#request.headers.containsKey('content-TYPE')}", True),
    ("{#request.headers.containsKey('nope')}", False),
    ("{#request.headers.get('x-multi')}", ["one", "two"]),
    ("{#request.headers.size() > 3}", True),
    ("{#request.params['page'][0]}", "2"),
    ("{#request.params['sort']}", None),
    ("{#request.params['Sort'][0]}", "asc"),
    ("{#request.params.containsKey('page')}", True),
    ("{#context.attributes['user']}", "ada"),
    ("{#context.attributes.user}", "ada"),
    ("{#context.attributes['missing']}", None),
    ("{#api.properties['backend']}", "http://backend"),
    ("{#subscription.metadata.tier}", "gold"),
    ("{#application.name}", "Shop"),
    ("{#endpoints['second']}", "http://second"),
    ("{#group[0]}", "g0"),
    ("{#group[1]}", "g1"),
    ("{#error.statusCode}", 504),
    ("{#error.cause}", None),
    ("{#data.map['a']}", 1),
    ("{#data.items[2]}", 3),
    ("{'abc'[1]}", "b"),
    ("{#message.content}", "hello"),
    # safe navigation
    ("{#request.id?.length()}", None),
    ("{#request.id?.name}", None),
    ("{#request.headers['X-None']?.get(0)}", None),
    ("{#request?.method}", "POST"),
    ("{#error.cause?.message ?: 'none'}", "none"),
    # elvis and ternary
    ("{#request.id ?: 'anonymous'}", "anonymous"),
    ("{#context.attributes['empty'] ?: 'fallback'}", "fallback"),
    ("{#context.attributes['user'] ?: 'fallback'}", "ada"),
    ("{#response.status >= 500 ? 'down' : 'up'}", "down"),
    ("{#response.status < 500 ? 'up' : 'down'}", "down"),
    ("{#context.attributes.flag ? 1 : 2}", 1),
    ("{true ? false ? 'a' : 'b' : 'c'}", "b"),
    ("{'true' ? 'yes' : 'no'}", "yes"),
    # comparisons
    ("{#response.status >= 500}", True),
    ("{#response.status == 503}", True),
    ("{#response.status == 200}", False),
    ("{#response.status != 200}", True),
    ("{#response.status > 503}", False),
    ("{#response.status <= 503}", True),
    ("{#response.status < 600}", True),
    ("{#response.status eq 503}", True),
    ("{#response.status ne 503}", False),
    ("{#response.status lt 504}", True),
    ("{#response.status le 502}", False),
    ("{#response.status gt 100}", True),
    ("{#response.status GE 503}", True),
    ("{#request.timestamp <= 1709737299215l}", True),
    ("{#request.timestamp > 1709737299215L}", False),
    ("{1 == 1.0}", True),
    ("{'a' < 'b'}", True),
    ("{'b' >= 'a'}", True),
    ("{null == null}", True),
    ("{null < 1}", True),
    ("{1 < null}", False),
    ("{null > 'a'}", False),
    ("{true == 1}", False),
    ("{#request.headers['X-Condition-Flow-Selection'][0] == 'root-condition'} ", True),
    ("{#request.headers['execute-shared-policy-group'][0] == 'yes'}", True),
    # logic
    ("{true && false}", False),
    ("{true || false}", True),
    ("{!true}", False),
    ("{not false}", True),
    ("{true and true}", True),
    ("{false or true}", True),
    ("{#response.status >= 500 && #response.status < 600}", True),
    ("{#response.status == 200 || #response.status == 503}", True),
    ("{!(#response.status == 200)}", True),
    ("{false && #nothing.here}", False),
    ("{true || #nothing.here}", True),
    ("{true or false and false}", True),
    # arithmetic and concatenation
    ("{1 + 2 * 3}", 7),
    ("{(1 + 2) * 3}", 9),
    ("{10 - 4 - 3}", 3),
    ("{7 / 2}", 3),
    ("{-7 / 2}", -3),
    ("{7.0 / 2}", 3.5),
    ("{7 % 3}", 1),
    ("{-7 % 3}", -1),
    ("{-#error.statusCode}", -504),
    ("{#data.pi * 2}", 7.0),
    ("{'a' + 'b'}", "ab"),
    ("{'n=' + #context.attributes.n}", "n=7"),
    ("{'v' + null}", "vnull"),
    ("{'b' + true}", "btrue"),
    ("{1 + 2 + 'x'}", "3x"),
    # matches
    ("{'abc' matches 'a.*'}", True),
    ("{'abc' matches 'b'}", False),
    ("{#request.path matches '/orders/\\d+'}", True),
    ("{#request.headers['Content-Type'][0] matches 'application/(json|xml)'}", True),
    # string methods
    ("{#request.method.toLowerCase()}", "post"),
    ("{#application.name.toUpperCase()}", "SHOP"),
    ("{#request.path.substring(1)}", "orders/42"),
    ("{#request.path.substring(1, 7)}", "orders"),
    ("{#request.path.contains('orders')}", True),
    ("{#request.path.startsWith('/orders')}", True),
    ("{#request.path.endsWith('42')}", True),
    ("{#request.path.length()}", 10),
    ("{#request.path.matches('/orders/.*')}", True),
    ("{#request.path.split('/')}", ["", "orders", "42"]),
    ("{#request.headers['Authorization'][0].split(' ')[1]}", "abc.def"),
    ("{'a,b,,'.split(',')}", ["a", "b"]),
    ("{#data.text.trim()}", "padded"),
    ("{''.isEmpty()}", True),
    ("{#request.method.equals('POST')}", True),
    ("{#request.method.equalsIgnoreCase('post')}", True),
    ("{#request.path.indexOf('42')}", 8),
    ("{#request.path.replace('42', '43')}", "/orders/43"),
    ("{'a'.concat('b')}", "ab"),
    ("{#request.headers['Authorization'][0].substring(7)}", "abc.def"),
    # list and map methods
    ("{#data.items.size()}", 3),
    ("{#data.empty.isEmpty()}", True),
    ("{#data.items.contains(2)}", True),
    ("{#data.items.get(0)}", 1),
    ("{#data.map.containsKey('a')}", True),
    ("{#data.map.get('a')}", 1),
    ("{#data.map.size()}", 1),
    ("{#group.contains('g1')}", True),
    # functions
    ("{#jsonPath(#request.content, '$.user.name')}", "ada"),
    ("{#jsonPath(#request.content, '$.count')}", 3),
    ("{#jsonPath(#request.content, '$.user.roles[*]')}", ["admin", "dev"]),
    ("{#jsonPath(#request.content, '$.missing')}", None),
    ("{#jsonPath(#data, '$.map.a')}", 1),
    ("{#jsonPath(#request.content, '$.user.name') == 'ada'}", True),
    ("{#xpath(#response.content, '//id/text()')}", "42"),
    ("{#xpath(#response.content, '//item/text()')}", ["a", "b"]),
    ("{#xpath(#response.content, '//missing/text()')}", None),
    ("{#xpath(#response.content, 'count(//item)')}", 2.0),
    # whitespace anywhere between tokens
    ("{ #request . headers [ 'X-Multi' ] [ 0 ] }", "one"),
    ("{\n#response.status\n>=\n500\n}", True),
    ("{#request.path.substring( 1 , 7 )}", "orders"),
    # templates: several parts render as text
    ("{#endpoints['second']}/{#group[0]}", "http://second/g0"),
    ("{#endpoints['second-group']}/{#group[0]}", "http://group2/g0"),
    ("Bearer {#request.headers['Authorization'][0].substring(7)}", "Bearer abc.def"),
    ("{#request.method} {#request.path} -> {#response.status}", "POST /orders/42 -> 503"),
    ("status={#response.status >= 500}", "status=true"),
    ("id=[{#request.id}]", "id=[]"),
    ('{"error": "{#error.key}", "code": {#error.statusCode}}', '{"error": "GATEWAY_TIMEOUT", "code": 504}'),
    ("/users/{id}", "/users/{id}"),
    ("plain text", "plain text"),
    ("", ""),
    ("{#error.message}.", "Timed out."),
    ("{#request.headers['X-Multi']}", ["one", "two"]),
    ("x{#request.headers['X-Multi']}", "x[one, two]"),
    ("pi={#data.pi}", "pi=3.5"),
    ("{#a == '}'}", False),
]


@pytest.mark.parametrize(("text", "expected"), VALUES, ids=[text for text, _ in VALUES])
def test_value(text, expected):
    ctx = context()
    ctx["a"] = "x"
    assert compile_template(text).evaluate(ctx) == expected


def test_value_table_is_large():
    assert len(VALUES) >= 120


CONDITIONS = [
    ("", True),
    ("   ", True),
    ("{#response.status >= 500}", True),
    ("{#response.status == 200}", False),
    ("{'TRUE'}", True),
    ("{'yes'}", False),
    ("{#request.id}", False),
    ("{#response.status}", False),
    ("{#request.headers['X-Condition-Flow-Selection'][0] == 'product-condition'} ", False),
]


@pytest.mark.parametrize(("text", "expected"), CONDITIONS)
def test_condition(text, expected):
    assert compile_condition(text).test(context()) is expected


def test_constant_templates():
    assert compile_template("no expression here").is_constant
    assert compile_template("/a/{id}").is_constant
    assert not compile_template("{#request.path}").is_constant
    assert compile_template("x{#group[0]}").render(context()) == "xg0"
    assert compile_template("{#response.status}").render(context()) == "503"


def test_headers_mapping():
    headers = Headers({"X-One": "1", "x-two": ["2", "3"]})
    assert headers["x-one"] == ["1"]
    assert "X-TWO" in headers
    assert headers.get_first("X-Two") == "2"
    assert sorted(headers) == ["X-One", "x-two"]
    assert len(headers) == 2


# (text, exact ExpressionError message)
REFUSED = [
    ("{#request.path", "Expression error at position 1: unclosed '{'"),
    ("abc {#request", "Expression error at position 5: unclosed '{'"),
    ("{#request.headers['X'}", "Expression error at position 22: unexpected end of expression"),
    ("{#request.headers['X']]}", "Expression error at position 23: unexpected ']'"),
    ("{#request.headers['X'][0}", "Expression error at position 25: unexpected end of expression"),
    ("{#request.path.substring(1))}", "Expression error at position 28: unexpected ')'"),
    ("{(#response.status >= 500))}", "Expression error at position 27: unexpected ')'"),
    ("{(#response.status >= 500}", "Expression error at position 26: unexpected end of expression"),
    ("{#response.status >=}", "Expression error at position 21: unexpected end of expression"),
    ("{#response.status >= 500 &&}", "Expression error at position 28: unexpected end of expression"),
    ("{#a +}", "Expression error at position 6: unexpected end of expression"),
    ("{#a == 'x}", "Expression error at position 8: unterminated string"),
    ('{#a == "x}', "Expression error at position 8: unterminated string"),
    ("{'it''s}", "Expression error at position 2: unterminated string"),
    ("{#}", "Expression error at position 2: unexpected character '#'"),
    ("{#a @ #b}", "Expression error at position 5: unexpected character '@'"),
    ("{#a #b}", "Expression error at position 5: unexpected '#b'"),
    ("{#a..b}", "Expression error at position 5: unexpected '.'"),
    ("{#a.}", "Expression error at position 5: unexpected end of expression"),
    ("{#a ? 1}", "Expression error at position 8: unexpected end of expression"),
    ("{#a == == 1}", "Expression error at position 8: unexpected '=='"),
    ("{#a.b(1,)}", "Expression error at position 9: unexpected ')'"),
    ("{#a[]}", "Expression error at position 5: unexpected ']'"),
    ("ok {#a} then {#b ==} end", "Expression error at position 20: unexpected end of expression"),
    ("{# }", "Expression error at position 2: unexpected character '#'"),
    ("{#a < < 1}", "Expression error at position 7: unexpected '<'"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[text for text, _ in REFUSED])
def test_refused(text, message):
    with pytest.raises(ExpressionError) as raised:
        compile_template(text)
    assert str(raised.value) == message
    assert raised.value.position == int(message.split("position ")[1].split(":")[0])
    assert isinstance(raised.value, ValueError)


def test_refused_condition():
    with pytest.raises(ExpressionError):
        compile_condition("{#response.status >=}")


# (template, part of the EvaluationError message)
EVALUATION_ERRORS = [
    ("{#nothing}", "Unknown variable #nothing"),
    ("{#secrets.get('/vault/secret/kafka:bootstrap')}", "Unknown variable #secrets"),
    ("{#request.path.frobnicate()}", "Method frobnicate() not found on string"),
    ("{#data.items.push(1)}", "Method push() not found on list"),
    ("{#request.id.length()}", "cannot call length() on null"),
    ("{#request.id.name}", "Cannot read property 'name' of null"),
    ("{#request.id[0]}", "Cannot index into a null value"),
    ("{#group[5]}", "Index 5 out of range for a list of size 2"),
    ("{#data.items.get(9)}", "Index 9 out of range"),
    ("{#group['x']}", "A list index must be an integer"),
    ("{#request.path.name}", "Property 'name' cannot be found on string"),
    ("{1 - 'a'}", "Operator - needs numbers"),
    ("{-'a'}", "Operator - needs a number"),
    ("{1 / 0}", "Division by zero"),
    ("{1 < 'a'}", "Cannot compare number with string"),
    ("{1 && true}", "Cannot convert number"),
    ("{#unknownFn(1)}", "Unknown function #unknownFn()"),
    ("{#jsonPath('not json', '$.a')}", "#jsonPath: not JSON"),
    ("{#xpath('<a>', '//a')}", "#xpath: not XML"),
    ("{#request.path.substring(50)}", "out of range"),
    ("{#request.path.substring('a', 'b', 'c')}", "cannot take 3 argument(s)"),
    ("{'a' matches '('}", "Invalid regular expression"),
]


@pytest.mark.parametrize(("text", "message"), EVALUATION_ERRORS, ids=[text for text, _ in EVALUATION_ERRORS])
def test_evaluation_error(text, message):
    template = compile_template(text)
    with pytest.raises(EvaluationError) as raised:
        template.evaluate(context())
    assert message in str(raised.value)


def test_long_pattern_refused():
    template = compile_template("{'a' matches #pattern}")
    with pytest.raises(EvaluationError, match="longer than 1000"):
        template.evaluate({"pattern": "a" * 1001})


def test_condition_that_fails_raises_for_the_caller():
    with pytest.raises(EvaluationError):
        compile_condition("{#nothing == 1}").test(context())


@pytest.mark.parametrize(
    "text",
    [
        "{#request.__class__}",
        "{#request['__class__']}",
        "{''.__class__}",
        "{#request.headers.__len__()}",
        "{#request.headers.__class__.__mro__}",
        "{#request.path.__class__}",
        "{#data.items.__len__()}",
        "{#request.headers.get_first('x')}",
        "{#request.get.__self__}",
        "{#group.__getitem__(0)}",
    ],
)
def test_no_python_internals(text):
    try:
        value = compile_template(text).evaluate(context())
    except EvaluationError:
        return
    assert value is None


def test_compiled_once_evaluates_fast():
    template = compile_template(
        "{#request.headers['X-Topic-Override-Request-Level'][0] != null && #response.status >= 500}"
    )
    ctx = context()
    started = time.perf_counter()
    for _ in range(10_000):
        assert template.evaluate(ctx) is True
    assert time.perf_counter() - started < 1.0


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def fixture_expressions():
    found = set()
    for path in sorted(FIXTURES.glob("**/*.json")):
        for text in _strings(json.loads(path.read_text())):
            if "{#" in text:
                found.add(text)
    return sorted(found)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="no Gravitee fixtures on this machine")
def test_every_fixture_expression_compiles():
    texts = fixture_expressions()
    assert texts
    for text in texts:
        compile_template(text)
    secret = compile_template("{#secrets.get(#api.properties['value5']?reloadOnChange=true)}")
    # With the options: the reference and its options as one string, here looked up in a plain map.
    secrets = {"/vault/secret/test:value5?reloadOnChange=true": "s3cret"}
    assert secret.evaluate({"secrets": secrets, "api": context()["api"]}) == "s3cret"
    with pytest.raises(EvaluationError, match="Unknown variable #secrets"):
        secret.evaluate(context())
