"""Regular expressions in policy settings are Java's (Gravitee runs them): the named groups of Java,
`(?<name>...)`, read as Python's `(?P<name>...)`."""

import re

JAVA_NAMED_GROUP = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")


def java_regex(text: str) -> re.Pattern[str]:
    """Raises re.error for a text that is not one."""
    return re.compile(JAVA_NAMED_GROUP.sub(r"(?P<\1>", text))
