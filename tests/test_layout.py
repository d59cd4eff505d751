"""The import rules docs/architecture.md states, read from the source: who may import whom."""

import ast

from support.gatehouse import ROOT

RUNTIME = ROOT / "gateway_runtime"


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The modules `path` imports, absolute, at module level and inside functions alike."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def sources(folder):
    return sorted(p for p in folder.rglob("*.py") if "vendor" not in p.parts)


def offenders(folder, refused):
    """{module: the imports of it that `refused(module, imported)` refuses}."""
    bad = {}
    for path in sources(folder):
        name = module_name(path)
        wrong = sorted(i for i in imports(path) if refused(name, i))
        if wrong:
            bad[name] = wrong
    return bad


def under(name, package):
    return name == package or name.startswith(package + ".")


def connector_of(name, kind):
    """`gateway_runtime.endpoints.kafka.jaas` -> `kafka` for kind "endpoints"; None outside that folder."""
    prefix = f"gateway_runtime.{kind}."
    return name[len(prefix) :].split(".")[0] if name.startswith(prefix) else None


def test_the_runtime_never_imports_the_portal():
    assert offenders(RUNTIME, lambda _, i: under(i, "portal")) == {}


def test_entrypoints_and_endpoints_never_import_each_other():
    assert offenders(RUNTIME / "entrypoints", lambda _, i: under(i, "gateway_runtime.endpoints")) == {}
    assert offenders(RUNTIME / "endpoints", lambda _, i: under(i, "gateway_runtime.entrypoints")) == {}


def test_no_connector_imports_another_connector():
    def refused(name, imported):
        mine, theirs = connector_of(name, "endpoints"), connector_of(imported, "endpoints")
        return theirs is not None and theirs != mine

    assert offenders(RUNTIME / "endpoints", refused) == {}


def test_the_specs_and_the_toolkit_import_no_connector_and_no_registry():
    def refused(_, imported):
        return any(under(imported, f"gateway_runtime.{p}") for p in ("endpoints", "entrypoints", "registry"))

    assert offenders(RUNTIME / "toolkit", refused) == {}
    assert sorted(i for i in imports(RUNTIME / "specs.py") if under(i, "gateway_runtime")) == [
        "gateway_runtime.messages",
        "gateway_runtime.messages.EndpointConnector",
        "gateway_runtime.settings",
        "gateway_runtime.settings.Settings",
    ]


def test_no_test_module_imports_another():
    tests = {module_name(p).rpartition(".")[2] for p in (ROOT / "tests").glob("test_*.py")} | {"conftest"}
    assert offenders(ROOT / "tests", lambda _, i: i.split(".")[0] in tests) == {}


def test_policies_import_no_connector_no_flow_runner_and_no_registry_and_connectors_no_policy():
    """A policy sees the exchange it is given and the message contract, never a connector; the
    connectors and entrypoints never know which policies exist."""

    def refused(_, imported):
        return any(under(imported, f"gateway_runtime.{p}") for p in ("endpoints", "entrypoints", "registry", "flows"))

    assert offenders(RUNTIME / "policies", refused) == {}
    for connectors in ("endpoints", "entrypoints"):
        assert offenders(RUNTIME / connectors, lambda _, i: under(i, "gateway_runtime.policies")) == {}
        assert offenders(RUNTIME / connectors, lambda _, i: under(i, "gateway_runtime.flows")) == {}


def test_no_policy_declares_a_secret_field_until_secret_slots_reads_policy_settings():
    """definition/secrets.py finds a flow's credentials by their names (a transform-headers
    Authorization value, the same names `secret_pairs` masks in the form); a field declared secret
    as a whole would need it to read PolicySpecs."""
    from gateway_runtime import registry

    assert [
        (spec.type, field.path)
        for spec in registry.policies().values()
        for field in spec.configuration
        if field.secret or field.secret_url
    ] == []
