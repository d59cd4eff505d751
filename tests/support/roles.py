"""The role matrix: for every route of the app and method, the status each actor gets."""

import sys

from support.gatehouse import ROOT

LOGIN = "login"  # expected: a redirect to the login page


# ----- the role matrix -----
# Actors: anonymous, a viewer, the owner of the API in the URL, an owner of another API, an admin.
# For every route and method: the expected status of each. LOGIN is a redirect to the login page;
# 403s must say what to do. A route of the app that is missing here fails the test.
ACTORS = ("anonymous", "viewer", "owner", "other", "admin")


TABLE = {
    #                                   anonymous viewer owner other admin
    ("auth.login", "GET"): (200, 200, 200, 200, 200),
    # The node's probes: open to a load balancer, the same answer to everyone.
    ("node.health", "GET"): (200, 200, 200, 200, 200),
    ("node.live", "GET"): (200, 200, 200, 200, 200),
    ("node.ready", "GET"): (200, 200, 200, 200, 200),
    ("node.prometheus", "GET"): (401, 403, 403, 403, 200),  # or the metrics token
    ("auth.login", "POST"): (200, 200, 200, 200, 200),  # empty form: shown again
    ("auth.logout", "POST"): (302, 302, 302, 302, 302),
    ("ui.index", "GET"): (LOGIN, 302, 302, 302, 302),
    ("ui.apis", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.create_api", "GET"): (LOGIN, 403, 200, 200, 200),
    ("ui.create_api", "POST"): (LOGIN, 403, 400, 400, 400),  # empty form: errors
    ("ui.wizard_fields", "POST"): (LOGIN, 403, 200, 200, 200),
    ("ui.api_page", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.api_states", "GET"): (LOGIN, 204, 204, 204, 204),  # asked about no API: nothing changed
    ("ui.deploy", "POST"): (LOGIN, 403, 302, 403, 302),
    ("ui.start", "POST"): (LOGIN, 403, 302, 403, 302),
    ("ui.stop", "POST"): (LOGIN, 403, 302, 403, 302),
    ("ui.stop", "GET"): (LOGIN, 403, 302, 403, 302),  # stopped already: back to the API
    ("ui.delete_api", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.delete_api", "POST"): (LOGIN, 403, 302, 403, 302),
    ("ui.deployments", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.deployment", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.compare_deployments", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.restore_deployment", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.restore_deployment", "POST"): (LOGIN, 403, 302, 403, 302),
    ("ui.general", "GET"): (LOGIN, 200, 200, 200, 200),  # read only for those who may not edit
    ("ui.save_general", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: errors
    ("ui.entrypoints", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.save_entrypoints", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: errors
    ("ui.entrypoint_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("ui.cors_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("ui.endpoints", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.endpoint_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("ui.new_endpoint", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.new_endpoint", "POST"): (LOGIN, 403, 400, 403, 400),
    ("ui.edit_endpoint", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.edit_endpoint", "POST"): (LOGIN, 403, 400, 403, 400),
    ("ui.endpoint_status", "GET"): (LOGIN, 200, 200, 200, 200),
    ("ui.delete_endpoint", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.delete_endpoint", "POST"): (LOGIN, 403, 302, 403, 302),
    ("ui.new_group_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("ui.edit_group", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.edit_group", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: errors
    ("ui.group_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("ui.failover_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("ui.expression_check", "POST"): (LOGIN, 403, 200, 200, 200),  # empty form: nothing to say
    ("ui.edit_failover", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.edit_failover", "POST"): (LOGIN, 403, 302, 403, 302),  # empty form: failover off
    ("ui.new_group", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.new_group", "POST"): (LOGIN, 403, 400, 403, 400),
    ("ui.delete_group", "GET"): (LOGIN, 403, 200, 403, 200),
    ("ui.delete_group", "POST"): (LOGIN, 403, 302, 403, 302),
    # The Policies tab: any signed-in user reads it; the API's owner or an admin changes its flows.
    # The matrix API has one flow with one step in the request phase; the actions toggle them.
    ("studio.policies", "GET"): (LOGIN, 200, 200, 200, 200),
    ("studio.save_execution", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: no mode
    ("studio.add_flow", "POST"): (LOGIN, 403, 302, 403, 302),
    ("studio.edit_flow", "GET"): (LOGIN, 403, 200, 403, 200),
    ("studio.edit_flow", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: no name
    ("studio.flow_action", "POST"): (LOGIN, 403, 302, 403, 302),
    ("studio.new_step", "GET"): (LOGIN, 403, 200, 403, 200),  # the first policy offered
    ("studio.new_step", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: no policy
    ("studio.edit_step", "GET"): (LOGIN, 403, 200, 403, 200),
    ("studio.edit_step", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: no name
    ("studio.step_fields", "POST"): (LOGIN, 403, 400, 403, 400),  # no policy named
    ("studio.step_action", "POST"): (LOGIN, 403, 302, 403, 302),
    ("users.users", "GET"): (LOGIN, 403, 403, 403, 200),
    ("users.create_user", "POST"): (LOGIN, 403, 403, 403, 400),  # empty form: errors
    ("users.update_user", "POST"): (LOGIN, 403, 403, 403, 302),
    ("users.api_owner", "POST"): (LOGIN, 403, 403, 403, 302),
    ("users.reset_password", "POST"): (LOGIN, 403, 403, 403, 400),  # empty form: errors
    ("users.account", "GET"): (LOGIN, 200, 200, 200, 200),
    ("users.change_password", "POST"): (LOGIN, 400, 400, 400, 400),  # empty form: errors
    ("users.tokens", "GET"): (LOGIN, 200, 200, 200, 200),
    ("users.create_token", "POST"): (LOGIN, 400, 400, 400, 400),  # empty form: errors
    ("users.revoke_token", "POST"): (LOGIN, 302, 302, 302, 302),  # each revokes a token of their own
    ("management.openapi", "GET"): (200, 200, 200, 200, 200),
    ("management.list_apis", "GET"): (401, 200, 200, 200, 200),
    ("management.get_api", "GET"): (401, 200, 200, 200, 200),
    ("management.export", "GET"): (401, 200, 200, 200, 200),
    ("management.runtime", "GET"): (401, 200, 200, 200, 200),
    ("management.import_definition", "POST"): (401, 403, 201, 201, 201),
    ("management.replace_definition", "PUT"): (401, 403, 200, 403, 200),
    ("management.delete_api", "DELETE"): (401, 403, 204, 403, 204),
    ("management.start", "POST"): (401, 403, 204, 403, 204),
    ("management.stop", "POST"): (401, 403, 400, 403, 400),  # allowed, but it is stopped
    ("management.deploy", "POST"): (401, 403, 202, 403, 202),
    # Plans: any signed-in user reads them; the API's owner or an admin changes them.
    ("consumers.plans", "GET"): (LOGIN, 200, 200, 200, 200),
    ("consumers.new_plan", "GET"): (LOGIN, 403, 200, 403, 200),
    ("consumers.new_plan", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: errors
    ("consumers.edit_plan", "GET"): (LOGIN, 403, 200, 403, 200),
    ("consumers.edit_plan", "POST"): (LOGIN, 403, 400, 403, 400),  # empty form: errors
    ("consumers.plan_status", "POST"): (LOGIN, 403, 302, 403, 302),  # publishes a fresh staging plan
    ("consumers.plan_fields", "POST"): (LOGIN, 403, 200, 403, 200),  # the form's type-dependent part
    ("consumers.process_subscription", "POST"): (LOGIN, 403, 302, 403, 302),  # accepts a fresh pending one
    ("management.list_plans", "GET"): (401, 200, 200, 200, 200),
    ("management.get_plan", "GET"): (401, 200, 200, 200, 200),
    ("management.create_plan", "POST"): (401, 403, 201, 403, 201),
    ("management.update_plan", "PUT"): (401, 403, 200, 403, 200),
    ("management.move_plan", "POST"): (401, 403, 200, 403, 200),  # publishes a fresh staging plan
    # Applications (all owned by `owner`): any owner creates some; only their owner or an admin
    # acts for one. "other" owns another API, not this application: refused like the viewer.
    ("consumers.applications", "GET"): (LOGIN, 200, 200, 200, 200),
    ("consumers.create_application", "POST"): (LOGIN, 403, 400, 400, 400),  # empty form: errors
    ("consumers.application", "GET"): (LOGIN, 403, 200, 403, 200),
    ("consumers.subscribe", "POST"): (LOGIN, 403, 201, 403, 201),  # a fresh application: key shown
    ("consumers.renew_key", "POST"): (LOGIN, 403, 200, 403, 200),
    ("consumers.revoke_key", "POST"): (LOGIN, 403, 302, 403, 302),
    ("consumers.close_subscription", "POST"): (LOGIN, 403, 302, 403, 302),
    ("consumers.subscription_fields", "POST"): (LOGIN, 403, 200, 403, 200),  # webhook fields for push plans
    ("management.list_applications", "GET"): (401, 200, 200, 200, 200),
    ("management.get_application", "GET"): (401, 200, 200, 200, 200),
    ("management.create_application", "POST"): (401, 403, 201, 201, 201),
    # Subscriptions: between the API's owner and the application's owner (and admins); a viewer
    # lists only those it may see (none), as does "other".
    ("management.list_subscriptions", "GET"): (401, 200, 200, 200, 200),
    ("management.create_subscription", "POST"): (401, 403, 201, 403, 201),  # a fresh application subscribes
    ("management.get_subscription", "GET"): (401, 403, 200, 403, 200),
    ("management.process_subscription", "POST"): (401, 403, 200, 403, 200),  # closes a fresh one
    ("management.list_api_keys", "GET"): (401, 403, 200, 403, 200),
    ("management.renew_api_key", "POST"): (401, 403, 201, 403, 201),  # the application's owner only
    ("management.revoke_api_key", "POST"): (401, 403, 200, 403, 200),
    # ----- webhook (issue 9): push subscriptions. The matrix's subscription is to an api-key plan,
    # so the webhook pages answer 404 and the retry / resume / settings changes 400 to those who may act.
    ("consumers.webhook_fields", "POST"): (LOGIN, 403, 200, 403, 200),
    ("consumers.webhook", "GET"): (LOGIN, 403, 404, 403, 404),
    ("consumers.webhook", "POST"): (LOGIN, 403, 404, 403, 404),
    ("consumers.webhook_action", "POST"): (LOGIN, 403, 404, 403, 404),
    ("management.update_subscription", "PUT"): (401, 403, 400, 403, 400),  # the application's owner
    ("management.push_subscription", "POST"): (401, 403, 400, 403, 400),  # either owner
}


# The `action` of <any(...):action> rules; accepting needs a pending subscription (a MANUAL plan).
ACTIONS = {
    "consumers.process_subscription": "accept",
    "management.process_subscription": "_close",
    "management.move_plan": "_publish",
    "consumers.webhook_action": "retry",
    "management.push_subscription": "_retry",
    "studio.flow_action": "toggle",
    "studio.step_action": "toggle",
}


def app_routes(tmp_path, monkeypatch):
    """(endpoint, rule, methods) of every route of this checkout's app."""
    monkeypatch.setenv("GATEHOUSE_INSTANCE_PATH", str(tmp_path / "routes-instance"))
    sys.path.insert(0, str(ROOT))
    import app

    assert app.__file__.startswith(str(ROOT)), app.__file__
    flask_app = app.create_app()
    return [
        (rule.endpoint, rule, rule.methods - {"HEAD", "OPTIONS"})
        for rule in flask_app.url_map.iter_rules()
        if rule.endpoint != "static"
    ]
