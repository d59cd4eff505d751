"""url-rewriting: rewrites what matches a regular expression in the answer's headers and body (the
backend's own URLs, say, into the gateway's); the replacement is a template that reads the match
as #group[0]... and #groupName['name']."""

import re

from ..settings import Field, Settings
from ..specs import PolicySpec
from .regex import java_regex
from .rendering import evaluate, template

FAILURE = ("URL_REWRITING_FAILURE", "Unable to rewrite the response")


class UrlRewriting:
    def __init__(self, configuration):
        self.pattern = java_regex(configuration["fromRegex"])
        self.replacement = template(configuration["toReplacement"], "toReplacement")
        self.headers = configuration["rewriteResponseHeaders"]
        self.body = configuration["rewriteResponseBody"]

    def _rewrite(self, text, exchange):
        def replace(found):
            context = {**exchange.context(), "group": list(found.groups()), "groupName": found.groupdict()}
            return evaluate(self.replacement, lambda: context, FAILURE[1], FAILURE[0])

        return self.pattern.sub(replace, text)

    def on_response(self, exchange):
        response = exchange.response
        if self.headers:
            for name, values in list(response.headers.items()):
                rewritten = [self._rewrite(value, exchange) for value in values]
                if rewritten != values:
                    response.headers.remove(name)
                    for value in rewritten:
                        response.headers.add(name, value)
        if self.body and response.content is not None:
            text = response.content.decode("utf-8", "replace")
            response.set_content(self._rewrite(text, exchange).encode())


def _regex(values, settings):
    try:
        java_regex(str(values.get("fromRegex", "")))
    except re.error as exc:
        return {"fromRegex": f"Match: not a regular expression: {exc}"}
    return {}


SPEC = PolicySpec(
    type="url-rewriting",
    label="URL rewriting",
    policy=UrlRewriting,
    phases=("response",),
    description="Rewrite URLs (or any text a regular expression matches) in answer headers and bodies.",
    configuration=Settings(
        fields=(
            Field("rewriteResponseHeaders", "boolean", "Rewrite headers", default=True),
            Field("rewriteResponseBody", "boolean", "Rewrite the body", default=True),
            Field("fromRegex", "string", "Match", required=True, help="A regular expression"),
            Field("toReplacement", "expression", "Replace with", required=True, help="May read {#group[0]}"),
        ),
        checks=(_regex,),
    ),
)
