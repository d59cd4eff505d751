"""json-xml: a JSON body or message (an object) as XML under a root element."""

import re

from ..settings import Field, Settings
from ..specs import PolicySpec
from .conversions import Conversion, json_to_xml

XML_NAME = re.compile(r"^[a-z:_A-Z]+[a-zA-Z0-9:\-_]*$")


class JsonToXml(Conversion):
    CONTENT_TYPE = "application/xml;charset=UTF-8"
    BODY = ("JSON_INVALID_PAYLOAD", "Unable to transform invalid JSON payload to XML")
    MESSAGE = ("JSON_INVALID_MESSAGE_PAYLOAD", "Unable to transform invalid JSON message to XML")

    def __init__(self, configuration):
        self.root = configuration["rootElement"]

    def convert(self, content):
        return json_to_xml(content, self.root).encode()


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
