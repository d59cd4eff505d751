"""dynamic-routing: sends a proxy request to the URL of the first rule whose pattern matches the
whole path under the context path, as Gravitee's policy does: the pattern's groups are #group[0]...
and #groupName['name'] in the URL, and #endpoints['name'] names an endpoint or group of the API
(`{#endpoints['second-group']}/{#group[0]}`); no rule matching is a 400."""

import re
from urllib.parse import unquote

from ..expressions import EvaluationError
from ..http import ROUTE
from ..messages import Interrupted
from ..settings import Settings, SettingsError
from ..specs import PolicySpec
from .regex import java_regex
from .rendering import evaluate, template

NO_RULE = "No routing rule is matching path"


class DynamicRouting:
    def __init__(self, configuration):
        self.rules = []
        for i, rule in enumerate(configuration.get("rules") or []):
            if not isinstance(rule, dict) or not rule.get("pattern") or not rule.get("url"):
                raise SettingsError({f"rules[{i}]": "A rule needs a pattern and a URL"})
            pattern = template(rule["pattern"], f"rules[{i}].pattern")
            compiled = None
            if pattern.is_constant:  # compiled once; a pattern made of expressions, per request
                try:
                    compiled = java_regex(pattern.text)
                except re.error as exc:
                    raise SettingsError({f"rules[{i}].pattern": f"not a regular expression: {exc}"}) from exc
            self.rules.append((pattern, compiled, template(rule["url"], f"rules[{i}].url")))

    def on_request(self, exchange):
        path = exchange.request.path_info
        decoded = unquote(path)
        for pattern, compiled, url in self.rules:
            if compiled is None:
                try:
                    compiled = java_regex(evaluate(pattern, exchange.context, "Invalid pattern syntax", None))
                except re.error as exc:
                    raise Interrupted(500, "Invalid pattern syntax") from exc
            if not (compiled.fullmatch(decoded) or compiled.fullmatch(path)):
                continue
            found = compiled.fullmatch(path) or compiled.fullmatch(decoded)
            context = {**exchange.context(), "group": list(found.groups()), "groupName": found.groupdict()}
            try:
                route = url.render(context)
            except EvaluationError as exc:
                raise Interrupted(500, f"The routing URL could not be evaluated: {exc}") from exc
            exchange.attributes["request.endpoint"] = route
            exchange.request.environ[ROUTE] = route
            return
        raise Interrupted(400, NO_RULE)


SPEC = PolicySpec(
    type="dynamic-routing",
    label="Dynamic routing",
    policy=DynamicRouting,
    phases=("request",),
    api_types=("proxy",),
    description="Route a request to another endpoint, group or URL, chosen from its path.",
    # `rules` ([{pattern, url}]) is read as it is imported and checked when the step is compiled.
    configuration=Settings(),
)
