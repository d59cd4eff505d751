"""interrupt-message-request-phase: Gravitee's test-kit policy that refuses every published message
(412, FAKE_KEY, "An error occurred"): its fixtures check how each entrypoint reports a refusal."""

from ..messages import Interrupted
from ..settings import Settings
from ..specs import PolicySpec


class InterruptMessageRequestPhase:
    def __init__(self, configuration):
        pass

    def on_message(self, exchange, message):
        raise Interrupted(412, "An error occurred", "FAKE_KEY")


SPEC = PolicySpec(
    type="interrupt-message-request-phase",
    label="Refuse published messages (test kit)",
    policy=InterruptMessageRequestPhase,
    phases=("publish",),
    description="Refuse every published message with 412 (Gravitee's test kit).",
    configuration=Settings(),
)
