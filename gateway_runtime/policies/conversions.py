"""JSON to XML and back, with the rules of the org.json library Gravitee's json-xml and xml-json
policies use, so that a body converted by Gatehouse reads as one converted by Gravitee."""

import json
import re
from xml.sax.saxutils import escape

from lxml import etree

from ..messages import Interrupted

NUMBER = re.compile(r"^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$")
# Entities and network fetches off: a body is data, never a reason to read a file or a URL.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
MAX_DEPTH = 100


def _text(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value), {'"': "&quot;", "'": "&apos;"})


def to_xml(value, name=None, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    if isinstance(value, dict):
        inner = "".join(
            _text(item) if key == "content" else to_xml(item, key, depth + 1) for key, item in value.items()
        )
        return inner if name is None else f"<{name}>{inner}</{name}>"
    if isinstance(value, list):
        # An array in an array: wrapped in the key's element, its items named `array`.
        return "".join(
            f"<{name}>{to_xml(item, 'array', depth + 1)}</{name}>"
            if isinstance(item, list)
            else to_xml(item, name, depth + 1)
            for item in value
        )
    text = _text(value)
    return f"<{name}/>" if text == "" else f"<{name}>{text}</{name}>"


def json_to_xml(content, root):
    document = json.loads(content)
    if not isinstance(document, dict):
        raise ValueError("the JSON is not an object")
    return to_xml({root: document})


def _value(text):
    """org.json's stringToValue: numbers, booleans and null are read as such."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if NUMBER.match(text):
        number = float(text)
        return int(number) if "." not in text and "e" not in lowered and number.is_integer() else number
    return text


def _add(target, key, value):
    if key in target:
        existing = target[key]
        target[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
    else:
        target[key] = value


def _element(element, depth):
    if depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    children = [child for child in element if isinstance(child.tag, str)]
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return _value(text) if text else ""
    out = {}
    for key, value in element.attrib.items():
        _add(out, key, _value(value))
    for child in children:
        _add(out, child.tag, _element(child, depth + 1))
        tail = (child.tail or "").strip()
        if tail:
            text = f"{text}{tail}"
    if text:
        _add(out, "content", _value(text))
    return out


def xml_to_json(content):
    root = etree.fromstring(content, PARSER)
    return json.dumps({root.tag: _element(root, 0)}, separators=(",", ":"))


class Conversion:
    """A body or message turned into another format: `convert(content) -> bytes` raising
    ValueError or lxml's XMLSyntaxError; BODY and MESSAGE the (error key, message) of what cannot
    be converted. A request's own body is the client's fault (400), an answer's or a delivered
    message's is not (500)."""

    CONTENT_TYPE = ""
    BODY = MESSAGE = ("", "")

    def convert(self, content):
        raise NotImplementedError

    def _converted(self, content, status, failure):
        try:
            return self.convert(content)
        except (ValueError, RecursionError, etree.XMLSyntaxError) as exc:
            raise Interrupted(status, failure[1], failure[0]) from exc

    def on_request(self, exchange):
        request = exchange.request
        request.set_content(self._converted(request.content, 400, self.BODY))
        request.headers.put("Content-Type", self.CONTENT_TYPE)

    def on_response(self, exchange):
        response = exchange.response
        response.set_content(self._converted(response.content or b"", 500, self.BODY))
        response.headers.put("Content-Type", self.CONTENT_TYPE)

    def on_message(self, exchange, message):
        status = 400 if message.phase == "publish" else 500
        message.content = self._converted(message.content, status, self.MESSAGE)
        message.metadata = {**message.metadata, "contentType": self.CONTENT_TYPE}
