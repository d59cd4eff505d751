"""Browser UI for plans (the API's Plans tab), applications, subscriptions and API keys."""
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from gateway_runtime import plans as rules
from gateway_runtime.entrypoints.webhook import SUBSCRIPTION as WEBHOOK_SETTINGS

from . import apis
from . import subscriptions as subs
from .auth import requires
from .models import ApiKey, db
from .ui import _api

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
    return render_template("plans.html", api=api, changes=apis.has_undeployed_changes(api), moves=subs.PLAN_MOVES,
                           plans={p.id: p for p in api.plans}, validation=subs.validation), status


@bp.get("/apis/<api_id>/plans")
@requires("viewer")
def plans(api_id):
    return _render_plans(_api(api_id))


def _plan_form_fields(form, kind):
    """The posted plan form as save_plan's fields. A JWT plan's key is one setting in the
    definition (resolverParameter) entered in the field that fits its signature and resolver."""
    fields = {"name": form.get("name", ""), "description": form.get("description", ""), "type": kind,
              "validation": form.get("validation", "AUTO")}
    if kind == "jwt":
        signature, resolver = form.get("signature", ""), form.get("publicKeyResolver", "GIVEN_KEY")
        source = "secret" if signature.startswith("HMAC_") else "publicKey" if resolver == "GIVEN_KEY" else "jwksUrl"
        fields["configuration"] = {"signature": signature, "publicKeyResolver": resolver,
                                   "resolverParameter": form.get(source, "").strip()}
    return fields


def _render_plan_form(api, plan, form, errors, status=200):
    configuration = rules.mask_secret(subs.configuration(plan)) if plan else {}
    return render_template("plan_form.html", api=api, plan=plan, form=form, errors=errors, rules=rules,
                           configuration=configuration, validation=subs.validation(plan) if plan else "AUTO",
                           changes=apis.has_undeployed_changes(api)), status


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
    return _done(lambda: subs.move_plan(plan, request.form.get("status", ""), g.user.username),
                 lambda: f"Plan {plan.name} is {plan.status} now: gateways apply it within a second.",
                 url_for("consumers.plans", api_id=api.id))


@bp.post("/apis/<api_id>/subscriptions/<subscription_id>/<any(accept, reject, close):action>")
@requires("owner", api="api_id")
def process_subscription(api_id, subscription_id, action):
    api = _api(api_id)
    subscription = subs.find_subscription(subscription_id)
    if subscription is None or subscription.api_id != api.id:
        abort(404, "That subscription does not exist (any more). Go back to the Plans tab.")
    change = {"accept": lambda: subs.accept(subscription, g.user.username),
              "reject": lambda: subs.reject(subscription, g.user.username, request.form.get("reason", "")),
              "close": lambda: subs.close(subscription, g.user.username)}[action]
    return _done(change, lambda: f"Subscription of {subscription.application.name} {subscription.status.lower()}.",
                 url_for("consumers.plans", api_id=api.id))


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
        application = subs.create_application(form.get("name"), form.get("description"), form.get("client_id"),
                                              g.user)
    except subs.Invalid as exc:
        return render_template("applications.html", applications=subs.all_applications(), form=form,
                               errors=exc.errors), 400
    flash(f"Application {application.name} created. Subscribe it to a plan below.")
    return redirect(url_for("consumers.application", application_id=application.id))


def _render_application(application, new_key=None, errors=None, status=200, webhook=None):
    offered = [(api, plan) for api in apis.all_apis() for plan in api.plans
               if plan.security_type != "key-less" and plan.status == "published"]
    return render_template("application.html", application=application, offered=offered, new_key=new_key,
                           errors=errors or {}, plan_of=subs.plan_of, active_keys=subs.active_keys,
                           settings=WEBHOOK_SETTINGS, values=webhook or {},
                           refresh_url=url_for("consumers.webhook_fields", application_id=application.id)), status


def _webhook_errors(exc):
    """A consumer configuration's errors, named as the form's webhook fields."""
    return {"webhook." + field.rpartition("entrypointConfiguration.")[2]: message for field, message in exc.errors.items()}


@bp.get("/applications/<application_id>")
@requires("owner", application="application_id")
def application(application_id):
    return _render_application(_application(application_id))


@bp.post("/applications/<application_id>/subscriptions")
@requires("owner", application="application_id")
def subscribe(application_id):
    application = _application(application_id)
    api_id, _, plan_id = request.form.get("plan", "").partition("/")
    api = apis.find(api_id)
    try:
        if api is None:
            raise subs.Invalid({"plan": "Choose a plan to subscribe to."})
        plan = subs.find_plan(api, plan_id)
        push = plan is not None and plan.security_type == rules.PUSH
        values, errors = WEBHOOK_SETTINGS.from_form(request.form, "webhook.") if push else (None, {})
        if errors:
            raise subs.Invalid(errors)
        subscription, key = subs.subscribe(application, api, plan_id, g.user.username,
                                           {"entrypointConfiguration": values} if push else None)
    except subs.Invalid as exc:
        return _render_application(application, errors=_webhook_errors(exc), status=400,
                                   webhook=WEBHOOK_SETTINGS.from_form(request.form, "webhook.")[0])
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
    return _done(lambda: subs.revoke_key(key), lambda: f"API key {key.prefix}… revoked: gateways refuse it within a "
                 "second.", url_for("consumers.application", application_id=application.id))


@bp.post("/applications/<application_id>/subscriptions/<subscription_id>/close")
@requires("owner", application="application_id")
def close_subscription(application_id, subscription_id):
    application = _application(application_id)
    subscription = _subscription_of(application, subscription_id)
    return _done(lambda: subs.close(subscription, g.user.username),
                 lambda: "Subscription closed: its keys stop working within a second.",
                 url_for("consumers.application", application_id=application.id))


# ----- push subscriptions: their webhook -----
@bp.post("/applications/<application_id>/webhook/_fields")
@requires("owner", application="application_id")
def webhook_fields(application_id):
    _application(application_id)
    values, _ = WEBHOOK_SETTINGS.from_form(request.form, "webhook.")
    return render_template("_webhook_fields.html", settings=WEBHOOK_SETTINGS, values=values, errors={},
                           refresh_url=url_for("consumers.webhook_fields", application_id=application_id))


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
        values, errors = WEBHOOK_SETTINGS.from_form(request.form, "webhook.", stored)
        if not errors:
            try:
                subs.update_consumer(subscription, {"entrypointConfiguration": values})
            except subs.Invalid as exc:
                errors = _webhook_errors(exc)
            else:
                flash("Webhook settings saved: the gateway delivering it uses them within a second.")
                return redirect(url_for("consumers.webhook", application_id=application.id,
                                        subscription_id=subscription.id))
        status = 400
    return render_template("webhook.html", application=application, subscription=subscription,
                           state=subs.webhook_state(subscription), deliveries=subs.deliveries(subscription),
                           settings=WEBHOOK_SETTINGS, values=values, errors=errors,
                           refresh_url=url_for("consumers.webhook_fields", application_id=application.id)), status


@bp.post("/applications/<application_id>/subscriptions/<subscription_id>/webhook/<any(retry, resume):action>")
@requires("owner", application="application_id")
def webhook_action(application_id, subscription_id, action):
    application = _application(application_id)
    subscription = _push_subscription(application, subscription_id)
    change = subs.retry_now if action == "retry" else subs.resume
    return _done(lambda: change(subscription),
                 lambda: "Retrying now." if action == "retry" else "Resumed: delivery starts again within a second.",
                 url_for("consumers.webhook", application_id=application.id, subscription_id=subscription.id))
