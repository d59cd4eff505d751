"""An API's flows compiled once per deployment: plan flows, then API flows, each list chosen as
`flowExecution.mode` says (DEFAULT: every matching flow, in order; BEST_MATCH: the one whose path
fits best), their steps run phase by phase."""

from collections.abc import Iterable
from typing import Any

from .. import registry
from ..expressions import EvaluationError, Headers, compile_condition
from ..http import FRAMING
from ..messages import Interrupted, Message
from ..settings import SettingsError
from ..specs import MESSAGE_PHASES, PHASES, UNACKNOWLEDGED
from .exchange import Exchange, MessageView
from .selectors import ChannelSelector, ConditionSelector, HttpSelector, SelectorError, compile_selector

# flowExecution.matchRequired: Gravitee's key; its answer has no body, ours says why.
NO_FLOW = "No flow of this API matches the request."
NO_FLOW_KEY = "FLOW_EXECUTION_FLOW_MATCHED_FAILURE"
NO_FLOWS: list["Flow"] = []
EDITS_KEPT = 256  # distinct header lists whose edited form is kept
ANSWER_AS_IS = object()  # FlowSet.shortcut: the flows change nothing of this entrypoint's answers


class FlowError(ValueError):
    """A flow or step that cannot be compiled, with where it is in the definition."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Policies of Gravitee's own test kit that change nothing a client sees: imported, skipped, warned of.
TEST_KIT_POLICIES = ("message-flow-ready",)


class UnknownPolicy(FlowError):
    """A step naming a policy this gateway does not have: kept, and it blocks Deploy by name."""


class Step:
    __slots__ = ("name", "policy", "run", "condition", "message_condition")

    def __init__(self, step: dict[str, Any], phase: str, where: str, message_api: bool = False) -> None:
        spec = registry.policy(step.get("policy"))
        if spec is None:
            raise UnknownPolicy(f"{where}.policy", f"this gateway has no policy {step.get('policy')!r}")
        if phase not in spec.phases:
            raise FlowError(f"{where}.policy", f"{spec.label} ({spec.type}) does not run in the {phase} phase")
        if ("message" if message_api else "proxy") not in spec.api_types:
            kinds = " and ".join(spec.api_types)
            raise FlowError(f"{where}.policy", f"{spec.label} ({spec.type}) applies to {kinds} APIs only")
        self.name = step.get("name") or spec.type
        self.condition = _condition(step, "condition", where)
        self.message_condition = _condition(step, "messageCondition", where)
        if self.message_condition is not None and phase not in MESSAGE_PHASES:
            raise FlowError(
                f"{where}.messageCondition", f"a message condition applies to messages, not the {phase} phase"
            )
        configuration = step.get("configuration")
        if configuration is not None and not isinstance(configuration, dict):
            raise FlowError(f"{where}.configuration", "must be an object")
        try:
            self.policy = spec.policy(spec.configuration.with_defaults(configuration))
            # on_request / on_response, found once (message phases go through run_batch)
            self.run: Any = getattr(self.policy, f"on_{phase}", None)
            if hasattr(self.policy, "place"):  # a counter of its own: where it is names it
                self.policy.place = where
        except SettingsError as exc:
            field, message = next(iter(exc.errors.items()))
            raise FlowError(f"{where}.configuration.{field}", message) from exc
        except ValueError as exc:  # an expression in it that cannot be read, say
            raise FlowError(f"{where}.configuration", str(exc)) from exc


def _condition(step: dict[str, Any], key: str, where: str) -> Any:
    text = step.get(key)
    if not text:
        return None
    if not isinstance(text, str):
        raise FlowError(f"{where}.{key}", "must be text")
    try:
        return compile_condition(text)
    except ValueError as exc:
        raise FlowError(f"{where}.{key}", str(exc)) from exc


class Flow:
    __slots__ = ("name", "selectors", "conditions", "others", "steps", "path")

    def __init__(
        self, flow: dict[str, Any], where: str, problems: list[FlowError] | None = None, message_api: bool = False
    ) -> None:
        """Raises the first FlowError; with `problems`, collects them all instead (validation). On a
        message API an http selector is not applied, as in Gravitee (its flows go by channel)."""
        self.name = flow.get("name") or ""
        self.selectors = []
        for i, selector in enumerate(flow.get("selectors") or []):
            place = f"{where}.selectors[{i}]"
            try:
                compiled = compile_selector(selector, place)
                if not (message_api and isinstance(compiled, HttpSelector)):
                    self.selectors.append(compiled)
            except SelectorError as exc:
                raise FlowError(exc.field, exc.message) from exc
            except ValueError as exc:  # a condition that cannot be read
                raise FlowError(f"{place}.condition", str(exc)) from exc
        self.conditions = [s for s in self.selectors if isinstance(s, ConditionSelector)]
        self.others = [s for s in self.selectors if not isinstance(s, ConditionSelector)]
        self.path = next(
            (s.pattern for s in self.selectors if isinstance(s, (HttpSelector, ChannelSelector))),
            None,
        )
        self.steps: dict[str, list[Step]] = {}
        for phase in PHASES:
            steps = []
            for i, step in enumerate(flow.get(phase) or []):
                if not _runs(step):
                    continue
                try:
                    steps.append(Step(step, phase, f"{where}.{phase}[{i}]", message_api))
                except FlowError as problem:
                    if problems is None:
                        raise
                    problems.append(problem)
            if steps:
                self.steps[phase] = steps

    def matches(self, exchange: Exchange, conditions: bool) -> bool:
        for selector in self.selectors if conditions else self.others:
            if not selector.matches(exchange):
                return False
        return True

    def fixed(self, entrypoint: str | None, operations: frozenset[str]) -> bool | None:
        """Whether the flow applies to every request of this entrypoint (True), to none (False),
        or depends on the request (None), its condition selectors left aside."""
        found: bool | None = True
        for selector in self.others:
            verdict = selector.fixed(entrypoint, operations)
            if verdict is False:
                return False
            if verdict is None:
                found = None
        return found

    def conditions_hold(self, exchange: Exchange) -> bool:
        for selector in self.conditions:
            if not selector.matches(exchange):
                return False
        return True


def _runs(step: Any) -> bool:
    return (
        isinstance(step, dict)
        and step.get("enabled", True) is not False
        and step.get("policy") not in TEST_KIT_POLICIES
    )


def _plans(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The plans of a definition as imported (a list) or as deployed (by id)."""
    listed = definition.get("plans") or []
    return [plan for plan in (listed.values() if isinstance(listed, dict) else listed) if isinstance(plan, dict)]


def _endpoint_type(definition: dict[str, Any]) -> str | None:
    groups = [g for g in definition.get("endpointGroups") or [] if isinstance(g, dict)]
    return groups[0].get("type") if groups else None


def _compile(flows: Iterable[Any], where: str, message_api: bool) -> list[Flow]:
    return [
        Flow(flow, f"{where}[{i}]", message_api=message_api)
        for i, flow in enumerate(flows)
        if isinstance(flow, dict) and flow.get("enabled", True) is not False
    ]


class FlowSet:
    def __init__(self, definition: dict[str, Any]) -> None:
        execution = definition.get("flowExecution") or {}
        self.best_match = str(execution.get("mode", "default")).upper().replace("-", "_") == "BEST_MATCH"
        # (flow list, entrypoint, operations) -> [(flow, True: applies to all its requests; None: look)]
        self._verdicts: dict[tuple[int, str | None, frozenset[str]], list[tuple[Flow, bool | None]]] = {}
        self._header_edits: dict[tuple[int, ...], Any] = {}
        self._shortcuts: dict[tuple[str | None, int], Any] = {}
        self.match_required = execution.get("matchRequired") is True
        message_api = definition.get("type") == "message"
        self.api_flows = _compile(definition.get("flows") or [], "flows", message_api)
        self.plan_flows = {
            plan["id"]: _compile(plan.get("flows") or [], f"plans[{i}].flows", message_api)
            for i, plan in enumerate(_plans(definition))
            if plan.get("flows")
        }
        flows = self.api_flows + [f for plan in self.plan_flows.values() for f in plan]
        self.phases = {phase for flow in flows for phase in flow.steps}
        # Whether a message phase may leave messages out: else its results need no sifting.
        self.drops = {
            phase
            for flow in flows
            for phase, steps in flow.steps.items()
            if any(getattr(step.policy, "drops", False) for step in steps)
        }
        properties = {
            p["key"]: p.get("value")
            for p in definition.get("properties") or []
            if isinstance(p, dict) and isinstance(p.get("key"), str)
        }
        # What expressions read as #api, and what an exchange tells of the API's endpoints: made once.
        self.api = {
            "id": definition.get("id"),
            "name": definition.get("name"),
            "version": definition.get("apiVersion"),
            "properties": properties,
        }
        self.endpoint_type = _endpoint_type(definition)
        # #endpoints['name']: how a dynamic route names an endpoint or group of the API
        self.endpoint_refs = {
            name: f"{name}:"
            for g in definition.get("endpointGroups") or []
            if isinstance(g, dict)
            for name in [g.get("name")] + [e.get("name") for e in g.get("endpoints") or [] if isinstance(e, dict)]
        }

    @staticmethod
    def needed(definition: dict[str, Any]) -> bool:
        """Whether the API has anything for flows to do (else requests skip them altogether)."""
        execution = definition.get("flowExecution") or {}
        if execution.get("matchRequired") is True:
            return True
        flows = list(definition.get("flows") or [])
        for plan in _plans(definition):
            flows += plan.get("flows") or []
        return any(
            isinstance(flow, dict)
            and flow.get("enabled", True) is not False
            and any(_runs(step) for phase in PHASES for step in flow.get(phase) or [])
            for flow in flows
        )

    # ----- per request -----
    def select(self, exchange: Exchange) -> None:
        """Choose the request's flows: plan flows first, then API flows. In DEFAULT mode a flow's
        condition selectors are left for `start`, which tests them just before the flow runs."""
        chosen = self._pick(self.plan_flows.get(exchange.plan, NO_FLOWS), exchange) if exchange.plan else []
        exchange.flows = chosen + self._pick(self.api_flows, exchange)

    def _pick(self, flows: list[Flow], exchange: Exchange) -> list[Flow]:
        if not self.best_match:
            # What an entrypoint's requests share is decided once: a flow for every request of it
            # (`/`, any method) or for none costs nothing per request.
            key = (id(flows), exchange.entrypoint, exchange.operations)
            verdicts = self._verdicts.get(key)
            if verdicts is None:
                verdicts = self._verdicts[key] = [
                    (flow, verdict)
                    for flow in flows
                    if (verdict := flow.fixed(exchange.entrypoint, exchange.operations)) is not False
                ]
            return [flow for flow, verdict in verdicts if verdict or flow.matches(exchange, conditions=False)]
        matching = [flow for flow in flows if flow.matches(exchange, conditions=True)]
        if len(matching) < 2:
            return matching
        path = exchange.request.path_info if exchange.request is not None else "/"
        best, best_scores = matching[0], _scores(matching[0], path)
        for flow in matching[1:]:
            scores = _scores(flow, path)
            for i, score in enumerate(scores):
                if i == len(best_scores) or score > best_scores[i]:
                    best, best_scores = flow, scores
                    break
                if score < best_scores[i]:
                    break
        return [best]

    def start(self, exchange: Exchange) -> None:
        """Selects the flows and runs the request phase, testing each flow's deferred conditions just
        before it runs (a flow left out then is left out of every later phase). Raises Interrupted:
        from a policy, or a 404 when no flow ran and one must (flowExecution.matchRequired)."""
        self.select(exchange)
        ran = []
        for flow in exchange.flows:
            if not self.best_match and not flow.conditions_hold(exchange):
                continue
            ran.append(flow)
            self._steps("request", flow, exchange)
        exchange.flows = ran
        if self.match_required and not ran:
            raise not_found()

    def run(self, phase: str, exchange: Exchange) -> None:
        """The response phase (or another connection-level one) of the flows `start` ran: raises
        Interrupted when a policy ends the request."""
        for flow in exchange.flows:
            self._steps(phase, flow, exchange)

    @staticmethod
    def _steps(phase: str, flow: Flow, exchange: Exchange) -> None:
        for step in flow.steps.get(phase, ()):
            if step.condition is not None and not _holds(step.condition, exchange.context()):
                continue
            step.run(exchange)

    def run_message(self, phase: str, exchange: Exchange, message: Message) -> Message | None:
        """A publish or subscribe phase on one message: the message to send on, or None when a
        policy filtered it out; raises Interrupted when a policy refuses it."""
        result = self.run_batch(phase, exchange, [message])[0]
        return None if result is UNACKNOWLEDGED else result

    def run_batch(self, phase: str, exchange: Exchange, messages: list[Message], private: bool = False) -> list[Any]:
        """A message phase on a batch: what each message became, at its place (None: filtered out).
        UNACKNOWLEDGED in place of one: filtered out, not to be acknowledged. A step's request
        condition is tested once a batch; a policy with `on_batch` takes the whole
        batch at once (a header set on every message costs one dict per batch, not one per message)
        and, when the messages are `private` to this subscription, may change them in place."""
        results: list[Any] = list(messages)
        for flow in exchange.flows:
            for step in flow.steps.get(phase, ()):
                if step.condition is not None and not _holds(step.condition, exchange.context()):
                    continue
                whole = getattr(step.policy, "on_batch", None) if step.message_condition is None else None
                done = whole(exchange, results, private) if whole is not None else None
                if done is None:
                    done = [
                        m if m is None or m is UNACKNOWLEDGED else _on_message(step, phase, exchange, m)
                        for m in results
                    ]
                results = done
        return results

    def shortcut(self, plan: str | None, handler: Any) -> Any:
        """For an entrypoint whose requests all get the same flows, none of which looks at the
        request or its messages (no condition, no request, publish or subscribe step): what its
        response phase does, worked out once: ANSWER_AS_IS, or the header edit of its answers.
        None when requests must go through the flows one by one."""
        key = (plan, id(handler))
        if key in self._shortcuts:
            return self._shortcuts[key]
        entrypoint = getattr(handler, "type", None)
        operations: frozenset[str] = getattr(handler, "operations", frozenset())
        found = None
        if not self.best_match:
            chosen = [
                (flow, flow.fixed(entrypoint, operations))
                for flow in (self.plan_flows.get(plan, NO_FLOWS) if plan else NO_FLOWS) + self.api_flows
            ]
            chosen = [(flow, verdict) for flow, verdict in chosen if verdict is not False]
            static = all(verdict and not flow.conditions for flow, verdict in chosen)
            looks = any(phase in flow.steps for flow, _ in chosen for phase in ("request", "publish", "subscribe"))
            if static and not looks and (chosen or not self.match_required):
                exchange = Exchange(None, self, plan, None, entrypoint, operations)
                exchange.flows = [flow for flow, _ in chosen]
                found = self.header_edit(exchange) if self.has("response", exchange) else ANSWER_AS_IS
        self._shortcuts[key] = found
        return found

    def header_edit(self, exchange: Exchange) -> Any:
        """When the response phase of the request's flows only changes headers, and the same way for
        the same headers (no condition, no expression): a function of the answer's header pairs,
        its results kept for the header lists that come again (an entrypoint's own answers do)."""
        edits = []
        for flow in exchange.flows:
            for step in flow.steps.get("response", ()):
                edit = getattr(step.policy, "edit_headers", None)
                if step.condition is not None or edit is None:
                    return None
                edits.append(edit)
        key = tuple(map(id, edits))
        function = self._header_edits.get(key)
        if function is None:
            function = self._header_edits[key] = _cached_edit(edits)
        return function

    def has(self, phase: str, exchange: Exchange) -> bool:
        if phase in self.phases:
            for flow in exchange.flows:
                if phase in flow.steps:
                    return True
        return False


def unapplied_selectors(definition: dict[str, Any]) -> list[str]:
    """Where a message API's flows have http selectors, which Gravitee does not apply to them either."""
    if definition.get("type") != "message":
        return []
    places = [("flows", definition.get("flows"))] + [
        (f"plans[{i}].flows", plan.get("flows")) for i, plan in enumerate(_plans(definition))
    ]
    return [
        f"{where}[{i}].selectors[{j}]"
        for where, flows in places
        for i, flow in enumerate(flows if isinstance(flows, list) else [])
        if isinstance(flow, dict)
        for j, selector in enumerate(flow.get("selectors") or [])
        if isinstance(selector, dict) and str(selector.get("type", "")).lower() == "http"
    ]


def problems(definition: dict[str, Any]) -> list[FlowError]:
    """Every problem of the API's flows and plans' flows, UnknownPolicy ones included."""
    found: list[FlowError] = []
    places = [("flows", definition.get("flows"))] + [
        (f"plans[{i}].flows", plan.get("flows"))
        for i, plan in enumerate(definition.get("plans") or [])
        if isinstance(plan, dict)
    ]
    for where, flows in places:
        if flows is None:
            continue
        if not isinstance(flows, list):
            found.append(FlowError(where, "must be a list of flows"))
            continue
        for i, flow in enumerate(flows):
            if not isinstance(flow, dict):
                found.append(FlowError(f"{where}[{i}]", "a flow must be an object"))
            elif flow.get("enabled", True) is not False:
                try:
                    Flow(flow, f"{where}[{i}]", found, definition.get("type") == "message")
                except FlowError as problem:  # its selectors: nothing after them is compiled
                    found.append(problem)
    mode = str((definition.get("flowExecution") or {}).get("mode", "default")).upper().replace("-", "_")
    if mode not in ("DEFAULT", "BEST_MATCH"):
        found.append(FlowError("flowExecution.mode", "must be DEFAULT or BEST_MATCH"))
    return found


def _cached_edit(edits: list[Any]) -> Any:
    done: dict[tuple[tuple[str, str], ...], list[tuple[str, str]]] = {}

    def edit(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        key = tuple(pairs)
        out = done.get(key)
        if out is None:
            headers = Headers(pairs)
            for change in edits:
                change(headers)
            # The framing stays as the entrypoint set it, whatever a policy did.
            out = headers.pairs(FRAMING) + [(name, value) for name, value in pairs if name.lower() in FRAMING]
            if len(done) >= EDITS_KEPT:  # answers whose headers all differ (a proxy's): kept briefly
                done.clear()
            done[key] = out
        return out

    return edit


def _on_message(step: Step, phase: str, exchange: Exchange, message: Message) -> Any:
    view = MessageView(message, phase)
    if step.message_condition is not None and not _holds(step.message_condition, exchange.message_context(view)):
        return message
    verdict = step.policy.on_message(exchange, view)
    if verdict is False:
        return None
    if verdict is UNACKNOWLEDGED:
        return UNACKNOWLEDGED
    return view.result()


def _scores(flow: Flow, path: str) -> list[float]:
    return flow.path.scores(path) if flow.path is not None else []


def _holds(condition: Any, context: dict[str, Any]) -> bool:
    try:
        return bool(condition.test(context))
    except EvaluationError:
        return False


def not_found() -> Interrupted:
    return Interrupted(404, NO_FLOW, NO_FLOW_KEY)
