"""Browser UI for plans (the API's Plans tab), applications, subscriptions and API keys."""

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from gateway_runtime import plans as rules
from gateway_runtime.entrypoints.webhook import SUBSCRIPTION as WEBHOOK_SETTINGS

from . import apis
from . import subscriptions as subs
from .auth import requires
from .connector_forms import from_form
from .models import ApiKey, db
from .ui import _api, _wizard_jwt_input

bp = Blueprint("consumers", __name__)


def _plan(api, plan_id):
    plan = subs.find_plan(api, plan_id)
    if plan is None:
        abort(404, f"API {api.name} has no plan {plan_id}. The Plans tab lists those it has.")
    return plan


def _done(change, said, back):
    """Make a change; flash what it did (said() once done), or why it could not be made; go back."""
    try:
        change()
    except subs.Invalid as exc:
        flash(str(exc), "error")
    else:
        flash(said())
    return redirect(back)


def _application(application_id):
    application = subs.find_application(application_id)
    if application is None:
        abort(404, f"There is no application with id {application_id}. The Applications page lists them.")
    return application


def _subscription_of(application, subscription_id):
    subscription = subs.find_subscription(subscription_id)
    if subscription is None or subscription.application_id != application.id:
        abort(404, "That subscription does not exist (any more). Go back to the application's page.")
    return subscription


# ----- the API's Plans tab -----
def _render_plans(api, status=200):
    return render_template(
        "plans.html", api=api, moves=subs.PLAN_MOVES, plans={p.id: p for p in api.plans}, validation=subs.validation
    ), status


@bp.get("/apis/<api_id>/plans")
@requires("viewer")
def plans(api_id):
    return _render_plans(_api(api_id))


def _plan_form_fields(form, kind):
    """The posted plan form as save_plan's fields. A JWT plan's key is one setting in the
    definition (resolverParameter) entered in the field that fits its signature and resolver."""
    fields = {
        "name": form.get("name", ""),
        "description": form.get("description", ""),
        "type": kind,
        "validation": form.get("validation", "AUTO"),
    }
    if kind == "jwt":
        fields["configuration"] = {
            "signature": form.get("signature", ""),
            "publicKeyResolver": form.get("publicKeyResolver", "GIVEN_KEY"),
            "resolverParameter": form.get(_wizard_jwt_input(form), "").strip(),
        }
        if form.get("requireExp_shown"):
            fields["configuration"][rules.REQUIRE_EXP] = form.get("requireExp") == "on"
    return fields


def _plan_fields_context(api, plan, form, errors):
    """What the type-dependent part of the plan form shows: the plan type's fields only, a JWT key
    in the one input its signature and resolver use; errors named after those inputs."""
    form = form or {}
    configuration = rules.mask_secret(subs.configuration(plan)) if plan else {}
    kind = plan.security_type if plan else form.get("type", "api-key")
    chosen = {
        "signature": form.get("signature", configuration.get("signature", "RSA_RS256")),
        "publicKeyResolver": form.get("publicKeyResolver", configuration.get("publicKeyResolver", "GIVEN_KEY")),
    }
    jwt_input = _wizard_jwt_input(chosen)
    stored_input = _wizard_jwt_input(configuration) if configuration.get("resolverParameter") else None
    errors = {jwt_input if field == "resolverParameter" else field: message for field, message in errors.items()}
    return {
        "form": form,
        "errors": errors,
        "kind": kind,
        "jwt_input": jwt_input,
        "rules": rules,
        "validation": form.get("validation", subs.validation(plan) if plan else "AUTO"),
        **chosen,
        "stored_key": configuration.get("resolverParameter", "") if stored_input == jwt_input else None,
        "require_exp": form.get("requireExp") == "on"
        if form.get("requireExp_shown")
        else configuration.get(rules.REQUIRE_EXP, plan is None),
        "refresh_url": url_for("consumers.plan_fields", api_id=api.id, plan_id=plan.id if plan else None),
    }


def _render_plan_form(api, plan, form, errors, status=200):
    return render_template(
        "plan_form.html", api=api, plan=plan, **_plan_fields_context(api, plan, form, errors)
    ), status


@bp.post("/apis/<api_id>/plans/_fields")
@bp.post("/apis/<api_id>/plans/<plan_id>/_fields")
@requires("owner", api="api_id")
def plan_fields(api_id, plan_id=None):
    """The plan form's type-dependent part, for the plan type (or JWT signature) just chosen."""
    api = _api(api_id)
    plan = _plan(api, plan_id) if plan_id else None
    return render_template("_plan_fields.html", **_plan_fields_context(api, plan, request.form, {}))


@bp.route("/apis/<api_id>/plans/new", methods=["GET", "POST"])
@requires("owner", api="api_id")
def new_plan(api_id):
    api = _api(api_id)
    if request.method == "POST":
        try:
            plan = subs.save_plan(api, None, _plan_form_fields(request.form, request.form.get("type")))
        except subs.Invalid as exc:
            return _render_plan_form(api, None, request.form, exc.errors, 400)
        flash(f"Plan {plan.name} added in staging. Publish it, then deploy, to let subscribers call the API.")
        return redirect(url_for("consumers.plans", api_id=api.id))
    return _render_plan_form(api, None, None, {})


@bp.route("/apis/<api_id>/plans/<plan_id>/edit", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_plan(api_id, plan_id):
    api = _api(api_id)
    plan = _plan(api, plan_id)
    if request.method == "POST":
        try:
            subs.save_plan(api, plan, _plan_form_fields(request.form, plan.security_type))
        except subs.Invalid as exc:
            return _render_plan_form(api, plan, request.form, exc.errors, 400)
        flash(f"Plan {plan.name} saved. Redeploy to apply its security settings.")
        return redirect(url_for("consumers.plans", api_id=api.id))
    return _render_plan_form(api, plan, None, {})


@bp.post("/apis/<api_id>/plans/<plan_id>/status")
@requires("owner", api="api_id")
def plan_status(api_id, plan_id):
    api = _api(api_id)
    plan = _plan(api, plan_id)
    return _done(
        lambda: subs.move_plan(plan, request.form.get("status", ""), g.user.username),
        lambda: f"Plan {plan.name} is {plan.status} now: gateways apply it within a second.",
        url_for("consumers.plans", api_id=api.id),
    )


@bp.post("/apis/<api_id>/subscriptions/<subscription_id>/<any(accept, reject, close):action>")
@requires("owner", api="api_id")
def process_subscription(api_id, subscription_id, action):
    api = _api(api_id)
    subscription = subs.find_subscription(subscription_id)
    if subscription is None or subscription.api_id != api.id:
        abort(404, "That subscription does not exist (any more). Go back to the Plans tab.")
    change = {
        "accept": lambda: subs.accept(subscription, g.user.username),
        "reject": lambda: subs.reject(subscription, g.user.username, request.form.get("reason", "")),
        "close": lambda: subs.close(subscription, g.user.username),
    }[action]
    return _done(
        change,
        lambda: f"Subscription of {subscription.application.name} {subscription.status.lower()}.",
        url_for("consumers.plans", api_id=api.id),
    )


# ----- applications -----
@bp.get("/applications")
@requires("viewer")
def applications():
    return render_template("applications.html", applications=subs.all_applications(), form={}, errors={})


@bp.post("/applications")
@requires("owner")
def create_application():
    form = request.form
    try:
        application = subs.create_application(form.get("name"), form.get("description"), form.get("client_id"), g.user)
    except subs.Invalid as exc:
        return render_template(
            "applications.html", applications=subs.all_applications(), form=form, errors=exc.errors
        ), 400
    flash(f"Application {application.name} created. Subscribe it to a plan below.")
    return redirect(url_for("consumers.application", application_id=application.id))


def _offered_plans():
    return [
        (api, plan)
        for api in apis.all_apis()
        for plan in api.plans
        if plan.security_type != "key-less" and plan.status == "published"
    ]


def _chosen_plan(choice):
    """(API, plan id, plan or None) of the subscribe form's choice "<api id>/<plan id>"."""
    api_id, _, plan_id = (choice or "").partition("/")
    api = apis.find(api_id)
    return api, plan_id, subs.find_plan(api, plan_id) if api else None


def _is_push(plan):
    return plan is not None and plan.security_type == rules.PUSH


def _webhook_labels():
    return {"webhook." + f.path: f.label for f in WEBHOOK_SETTINGS}


def _render_application(application, new_key=None, errors=None, status=200, webhook=None):
    """The application's page. Errors of the subscribe form's fields go to its error summary;
    others (a key that cannot be renewed...) are said above the subscriptions."""
    errors = errors or {}
    offered = _offered_plans()
    chosen = request.form.get("plan") if errors else None
    chosen = chosen or (f"{offered[0][0].id}/{offered[0][1].id}" if offered else "")
    field_errors = {k: v for k, v in errors.items() if k == "plan" or k.startswith("webhook.")}
    return render_template(
        "application.html",
        application=application,
        offered=offered,
        new_key=new_key,
        errors=field_errors,
        problems=[v for k, v in errors.items() if k not in field_errors],
        labels={"plan": "Plan", **_webhook_labels()},
        chosen=chosen,
        push=_is_push(_chosen_plan(chosen)[2]),
        plan_of=subs.plan_of,
        active_keys=subs.active_keys,
        settings=WEBHOOK_SETTINGS,
        values=webhook or {},
        refresh_url=url_for("consumers.webhook_fields", application_id=application.id),
    ), status


def _webhook_errors(exc):
    """A consumer configuration's errors, named as the form's webhook fields; a plan's as the plan select."""

    def name(field):
        if field == "planId":
            return "plan"
        _, found, path = field.rpartition("entrypointConfiguration.")
        return "webhook." + path if found else field

    return {name(field): message for field, message in exc.errors.items()}


@bp.get("/applications/<application_id>")
@requires("owner", application="application_id")
def application(application_id):
    return _render_application(_application(application_id))


@bp.post("/applications/<application_id>/subscriptions")
@requires("owner", application="application_id")
def subscribe(application_id):
    application = _application(application_id)
    api, plan_id, plan = _chosen_plan(request.form.get("plan"))
    try:
        if api is None:
            raise subs.Invalid({"plan": "Choose a plan to subscribe to."})
        push = _is_push(plan)
        values, errors = from_form(WEBHOOK_SETTINGS, request.form, "webhook.") if push else (None, {})
        if errors:
            raise subs.Invalid(errors)
        subscription, key = subs.subscribe(
            application, api, plan_id, g.user.username, {"entrypointConfiguration": values} if push else None
        )
    except subs.Invalid as exc:
        return _render_application(
            application,
            errors=_webhook_errors(exc),
            status=400,
            webhook=from_form(WEBHOOK_SETTINGS, request.form, "webhook.")[0],
        )
    if subscription.status == "PENDING":
        flash("Subscription requested: the API owner accepts or rejects it. Once accepted, get its API key here.")
    # The key is shown in this response only: it is not stored, nor put in a flash (a cookie).
    return _render_application(application, new_key=(subscription, key) if key else None, status=201 if key else 200)


@bp.post("/applications/<application_id>/subscriptions/<subscription_id>/renew")
@requires("owner", application="application_id")
def renew_key(application_id, subscription_id):
    application = _application(application_id)
    subscription = _subscription_of(application, subscription_id)
    try:
        _, key = subs.renew_key(subscription)
    except subs.Invalid as exc:
        return _render_application(application, errors=exc.errors, status=400)
    return _render_application(application, new_key=(subscription, key))


@bp.post("/applications/<application_id>/keys/<int:key_id>/revoke")
@requires("owner", application="application_id")
def revoke_key(application_id, key_id):
    application = _application(application_id)
    key = db.session.get(ApiKey, key_id)
    if key is None or key.subscription.application_id != application.id:
        abort(404, "That API key does not exist (any more). Go back to the application's page.")
    return _done(
        lambda: subs.revoke_key(key),
        lambda: f"API key {key.prefix}… revoked: gateways refuse it within a second.",
        url_for("consumers.application", application_id=application.id),
    )


@bp.post("/applications/<application_id>/subscriptions/<subscription_id>/close")
@requires("owner", application="application_id")
def close_subscription(application_id, subscription_id):
    application = _application(application_id)
    subscription = _subscription_of(application, subscription_id)
    return _done(
        lambda: subs.close(subscription, g.user.username),
        lambda: "Subscription closed: its keys stop working within a second.",
        url_for("consumers.application", application_id=application.id),
    )


# ----- push subscriptions: their webhook -----
@bp.post("/applications/<application_id>/subscriptions/_fields")
@requires("owner", application="application_id")
def subscription_fields(application_id):
    """The subscribe form's part that depends on the plan chosen: webhook settings for push plans only."""
    _application(application_id)
    values, _ = from_form(WEBHOOK_SETTINGS, request.form, "webhook.")
    return render_template(
        "_subscription_fields.html",
        push=_is_push(_chosen_plan(request.form.get("plan"))[2]),
        settings=WEBHOOK_SETTINGS,
        values=values,
        errors={},
        refresh_url=url_for("consumers.webhook_fields", application_id=application_id),
    )


@bp.post("/applications/<application_id>/webhook/_fields")
@requires("owner", application="application_id")
def webhook_fields(application_id):
    _application(application_id)
    values, _ = from_form(WEBHOOK_SETTINGS, request.form, "webhook.")
    return render_template(
        "_webhook_fields.html",
        settings=WEBHOOK_SETTINGS,
        values=values,
        errors={},
        refresh_url=url_for("consumers.webhook_fields", application_id=application_id),
    )


def _push_subscription(application, subscription_id):
    subscription = _subscription_of(application, subscription_id)
    if subscription.consumer_configuration is None:
        abort(404, "That subscription is not to a push plan: it has no webhook.")
    return subscription


@bp.route("/applications/<application_id>/subscriptions/<subscription_id>/webhook", methods=["GET", "POST"])
@requires("owner", application="application_id")
def webhook(application_id, subscription_id):
    """A push subscription: its delivery state, its last deliveries, and its webhook settings."""
    application = _application(application_id)
    subscription = _push_subscription(application, subscription_id)
    stored = subscription.consumer_configuration["entrypointConfiguration"]
    values, errors, status = stored, {}, 200
    if request.method == "POST":
        values, errors = from_form(WEBHOOK_SETTINGS, request.form, "webhook.", stored)
        if not errors:
            try:
                subs.update_consumer(subscription, {"entrypointConfiguration": values})
            except subs.Invalid as exc:
                errors = _webhook_errors(exc)
            else:
                flash("Webhook settings saved: the gateway delivering it uses them within a second.")
                return redirect(
                    url_for("consumers.webhook", application_id=application.id, subscription_id=subscription.id)
                )
        status = 400
    return render_template(
        "webhook.html",
        application=application,
        subscription=subscription,
        state=subs.webhook_state(subscription),
        deliveries=subs.deliveries(subscription),
        settings=WEBHOOK_SETTINGS,
        values=values,
        errors=errors,
        labels=_webhook_labels(),
        refresh_url=url_for("consumers.webhook_fields", application_id=application.id),
    ), status


@bp.post("/applications/<application_id>/subscriptions/<subscription_id>/webhook/<any(retry, resume):action>")
@requires("owner", application="application_id")
def webhook_action(application_id, subscription_id, action):
    application = _application(application_id)
    subscription = _push_subscription(application, subscription_id)
    change = subs.retry_now if action == "retry" else subs.resume
    return _done(
        lambda: change(subscription),
        lambda: "Retrying now." if action == "retry" else "Resumed: delivery starts again within a second.",
        url_for("consumers.webhook", application_id=application.id, subscription_id=subscription.id),
    )
