"""transform-queryparams: clears, sets (or appends to) and removes query parameters of a request
before it goes on, in Gravitee's order: clear all, add, then remove (unless all were cleared)."""

from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import PAIRS_HELP, evaluate, template

FAILURE = ("TRANSFORM_QUERY_PARAMETERS_FAILURE", "Unable to transform the query parameters")


class TransformQueryParams:
    def __init__(self, configuration):
        self.clear = configuration["clearAll"]
        self.add = [
            (
                pair["name"],
                template(pair["value"], f"addQueryParameters[{i}].value"),
                bool(pair.get("appendToExistingArray")),
            )
            for i, pair in enumerate(configuration.get("addQueryParameters") or [])
            if pair.get("name", "").strip()
        ]
        self.remove = [name for name in configuration.get("removeQueryParameters") or [] if name.strip()]

    def on_request(self, exchange):
        request = exchange.request
        params = {} if self.clear else {name: list(values) for name, values in request.params.items()}
        for name, value, append in self.add:
            text = evaluate(value, exchange.context, FAILURE[1], FAILURE[0])  # encoded when written back
            params[name] = [*params.get(name, []), text] if append else [text]
        if not self.clear:
            for name in self.remove:
                params.pop(name, None)
        request.set_params(params)


SPEC = PolicySpec(
    type="transform-queryparams",
    label="Transform query parameters",
    policy=TransformQueryParams,
    phases=("request",),
    description="Add, replace or remove the query parameters sent on.",
    configuration=Settings(
        fields=(
            Field("clearAll", "boolean", "Remove every parameter first", default=False),
            Field("addQueryParameters", "pairs", "Set parameters", help=PAIRS_HELP),
            Field("removeQueryParameters", "list", "Remove parameters"),
        )
    ),
)
