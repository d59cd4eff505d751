"""xml-json: an XML body or message as JSON (the root element its one key)."""

from ..settings import Settings
from ..specs import PolicySpec
from .conversions import Conversion, xml_to_json


class XmlToJson(Conversion):
    CONTENT_TYPE = "application/json;charset=UTF-8"
    BODY = ("XML_INVALID_PAYLOAD", "Unable to transform invalid XML to Json")
    MESSAGE = ("XML_INVALID_MESSAGE_PAYLOAD", "Unable to transform invalid XML message to JSON")

    def __init__(self, configuration):
        pass

    def convert(self, content):
        return xml_to_json(content).encode()


SPEC = PolicySpec(
    type="xml-json",
    label="XML to JSON",
    policy=XmlToJson,
    description="Turn an XML body or message into JSON.",
    configuration=Settings(),
)
