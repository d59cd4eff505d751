"""policy-assign-content: replaces a request's or answer's body, or a message's content, with a
template. Gravitee renders Freemarker; Gatehouse renders its expression language, in which
Freemarker's `${request.content}` reads as `{#request.content}` (directives such as <#if> are
refused at save, naming them)."""

import re

from ..settings import Field, Settings, SettingsError
from ..specs import PolicySpec
from .rendering import evaluate, template

INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_])")
DIRECTIVE = re.compile(r"</?[#@]|\[#")
FAILURE = ("ASSIGN_CONTENT_ERROR", "Unable to assign body content")


def as_expressions(body):
    """Freemarker's interpolations as expression-language ones; its directives are refused."""
    found = DIRECTIVE.search(body)
    if found:
        where = f"Freemarker directives ({found.group()}...) at position {found.start() + 1}"
        raise SettingsError({"body": f"{where} are not supported: use expressions such as {{#request.content}}"})
    return INTERPOLATION.sub(r"{#\1", body)


class AssignContent:
    def __init__(self, configuration):
        self.body = template(as_expressions(configuration["body"]), "body")

    def on_request(self, exchange):
        exchange.request.set_content(self._render(exchange.context, FAILURE[1]))

    def on_response(self, exchange):
        exchange.response.set_content(self._render(exchange.context, FAILURE[1]))

    def on_message(self, exchange, message):
        message.content = self._render(lambda: exchange.message_context(message), "Unable to assign message content")

    def _render(self, context, failure):
        return evaluate(self.body, context, failure, FAILURE[0]).encode()


SPEC = PolicySpec(
    type="policy-assign-content",
    aliases=("assign-content",),
    label="Assign content",
    policy=AssignContent,
    description="Replace the body or the message with a template.",
    configuration=Settings(
        fields=(
            Field("body", "text", "Body", required=True, help="Text with {#...} expressions, e.g. {#request.content}"),
        )
    ),
)
