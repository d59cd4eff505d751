"""json-xml: a JSON body or message (an object) as XML under a root element."""

import re

from ..messages import Interrupted
from ..settings import Field, Settings
from ..specs import PolicySpec
from .conversions import json_to_xml

CONTENT_TYPE = "application/xml;charset=UTF-8"
XML_NAME = re.compile(r"^[a-z:_A-Z]+[a-zA-Z0-9:\-_]*$")
# (error key, message); a request's own body is the client's fault (400), an answer's is not (500)
BODY = ("JSON_INVALID_PAYLOAD", "Unable to transform invalid JSON payload to XML")
MESSAGE = ("JSON_INVALID_MESSAGE_PAYLOAD", "Unable to transform invalid JSON message to XML")


class JsonToXml:
    def __init__(self, configuration):
        self.root = configuration["rootElement"]

    def _convert(self, content, status, failure):
        try:
            return json_to_xml(content, self.root).encode()
        except (ValueError, RecursionError) as exc:
            raise Interrupted(status, failure[1], failure[0]) from exc

    def on_request(self, exchange):
        request = exchange.request
        request.set_content(self._convert(request.content, 400, BODY))
        request.headers.put("Content-Type", CONTENT_TYPE)

    def on_response(self, exchange):
        response = exchange.response
        response.set_content(self._convert(response.content or b"", 500, BODY))
        response.headers.put("Content-Type", CONTENT_TYPE)

    def on_message(self, exchange, message):
        message.content = self._convert(message.content, 400 if message.phase == "publish" else 500, MESSAGE)
        message.metadata = {**message.metadata, "contentType": CONTENT_TYPE}


def _root_name(values, settings):
    if XML_NAME.match(str(values.get("rootElement", "root"))):
        return {}
    return {"rootElement": "Root element: must be an XML name (letters, digits, '-', '_' and ':')"}


SPEC = PolicySpec(
    type="json-xml",
    label="JSON to XML",
    policy=JsonToXml,
    description="Turn a JSON body or message into XML.",
    configuration=Settings(
        fields=(Field("rootElement", "string", "Root element", default="root", required=True),),
        checks=(_root_name,),
    ),
)
