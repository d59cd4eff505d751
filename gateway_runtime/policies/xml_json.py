"""xml-json: an XML body or message as JSON (the root element its one key)."""

from lxml import etree

from ..messages import Interrupted
from ..settings import Settings
from ..specs import PolicySpec
from .conversions import xml_to_json

CONTENT_TYPE = "application/json;charset=UTF-8"
BODY = ("XML_INVALID_PAYLOAD", "Unable to transform invalid XML to Json")
MESSAGE = ("XML_INVALID_MESSAGE_PAYLOAD", "Unable to transform invalid XML message to JSON")


class XmlToJson:
    def __init__(self, configuration):
        pass

    @staticmethod
    def _convert(content, status, failure):
        try:
            return xml_to_json(content).encode()
        except (etree.XMLSyntaxError, ValueError, RecursionError) as exc:
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


SPEC = PolicySpec(
    type="xml-json",
    label="XML to JSON",
    policy=XmlToJson,
    description="Turn an XML body or message into JSON.",
    configuration=Settings(),
)
