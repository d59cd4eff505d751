"""Plans: which credentials a deployed API accepts, and how each plan type checks them.

A request is served by the first serving plan that accepts its credentials (plans taking
credentials first, key-less last, as in Gravitee): 401 when the credentials are missing or bad,
403 when they are good but hold no subscription to this API. Plan statuses are live (the
gateway's access cache); a plan's security settings are those of the deployed revision.
"""

import json
import logging
import time
from typing import Any

import gevent.lock
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .definition.slots import SECRET_MASK, Slot, map_slots, named_slots
from .http import query
from .http_client import HttpClient, split_url
from .request_target import without_params

log = logging.getLogger("gatehouse.gateway")

TYPES = ("key-less", "api-key", "jwt", "push")
PUSH = "push"  # a push plan's security type (ours) and mode: subscribers are called back, they never call
STATUSES = ("staging", "published", "deprecated", "closed")
SERVING = ("published", "deprecated")  # deprecated: existing subscriptions go on, new ones are refused
VALIDATIONS = ("AUTO", "MANUAL")
API_KEY_HEADER = "X-Gravitee-Api-Key"
API_KEY_QUERY = "api-key"
ACCESS_TOKEN_QUERY = "access_token"
PLAN = "gatehouse.plan"  # environ key: the id of the plan that admitted the request
# Gravitee's JWT policy names, and PyJWT's algorithms for them.
SIGNATURES = {
    "RSA_RS256": "RS256",
    "RSA_RS384": "RS384",
    "RSA_RS512": "RS512",
    "HMAC_HS256": "HS256",
    "HMAC_HS384": "HS384",
    "HMAC_HS512": "HS512",
}
RESOLVERS = {"GIVEN_KEY": "the key given here", "JWKS_URL": "a JWKS URL"}
CLIENT_ID_CLAIM = "client_id"
# Ours (Gravitee's JWT policy has no such setting): tokens without an `exp` claim are refused.
# New plans get it on; a plan imported without it keeps accepting them, as before the setting.
REQUIRE_EXP = "requireExp"
JWKS_MIN_REFRESH_S = 2.0  # an unknown kid fetches the key set again, at most this often
JWKS_MAX_AGE_S = 300.0  # keys removed at the URL stop working after this long
JWKS_TIMEOUT_S = 5.0


class Refused(Exception):
    key = "GATEWAY_PLAN_UNRESOLVABLE"  # Gravitee's, whatever the plan found wrong

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameters = {}


def is_hmac(configuration):
    signature = (configuration or {}).get("signature", "RSA_RS256")
    # A signature sent as another JSON type is none of ours: problems() names it.
    return isinstance(signature, str) and signature.startswith("HMAC_")


def configuration_slots(configuration, where=()):
    """A plan's security configuration's secret: an HMAC secret."""
    if is_hmac(configuration) and configuration.get("resolverParameter"):
        yield Slot(
            where + ("resolverParameter",),
            configuration["resolverParameter"],
            lambda new: (
                configuration.__setitem__("resolverParameter", new)
                if new is not None
                else configuration.pop("resolverParameter", None)
            ),
        )


def plan_slots(plan):
    """A plan's secrets (a definition's plan, or a stored plan's extra keys): its HMAC secret, and
    keys of its own whose names look secret."""
    security = plan.get("security") if isinstance(plan, dict) else None
    if isinstance(security, dict) and isinstance(security.get("configuration"), dict):
        yield from configuration_slots(security["configuration"], ("security", "configuration"))
    yield from named_slots(plan)


def map_secret(configuration, change):
    """A plan's security configuration with change(secret) in place of an HMAC secret."""
    return map_slots(configuration_slots, configuration, change)


def map_plan_secret(plan, change):
    """A plan (a definition's, or a stored plan's extra keys) with its secrets changed."""
    return map_slots(plan_slots, plan, change)


def mask_secret(configuration):
    """A plan's security configuration as shown or exported: an HMAC secret is masked."""
    return map_secret(configuration, lambda _: SECRET_MASK)


def restore_secret(configuration, previous):
    """A masked secret sent back (an export re-imported, a form left blank) keeps the stored one."""
    if (
        is_hmac(configuration)
        and configuration.get("resolverParameter") in (SECRET_MASK, "", None)
        and is_hmac(previous)
        and (previous or {}).get("resolverParameter")
    ):
        configuration["resolverParameter"] = previous["resolverParameter"]
    return configuration


def problems(plan):
    """{field: message} for a plan's security that this gateway cannot use (named in the portal
    form, and blocking Deploy for an imported definition)."""
    kind = plan["security"]["type"]
    if kind not in TYPES:
        return {"security.type": f"plan type {kind} not available yet"}
    if kind != "jwt":
        return {}
    config = plan["security"].get("configuration") or {}
    found = {}
    signature = config.get("signature", "RSA_RS256")
    if not isinstance(signature, str) or signature not in SIGNATURES:  # a list is not hashable
        found["signature"] = "JWT signature must be one of " + ", ".join(SIGNATURES) + "."
    if not isinstance(config.get(REQUIRE_EXP, False), bool):
        found[REQUIRE_EXP] = f"{REQUIRE_EXP} must be true or false."
    resolver = config.get("publicKeyResolver", "GIVEN_KEY")
    parameter = config.get("resolverParameter")
    if not isinstance(resolver, str) or resolver not in RESOLVERS:
        found["publicKeyResolver"] = "JWT keys: only " + " or ".join(RESOLVERS.values()) + " are available yet."
    elif not isinstance(parameter, str) or not parameter.strip():
        found["resolverParameter"] = (
            "JWT plans need "
            + ("a secret" if is_hmac(config) else "a public key (PEM)" if resolver == "GIVEN_KEY" else "a JWKS URL")
            + "."
        )
    elif resolver == "JWKS_URL":
        if is_hmac(config):
            found["publicKeyResolver"] = "A JWKS URL gives public keys: choose an RS signature, or give the secret."
        elif not parameter.startswith(("http://", "https://")):
            found["resolverParameter"] = "The JWKS URL must start with http:// or https://."
    elif not is_hmac(config) and "{#" not in parameter:
        try:
            load_pem_public_key(parameter.strip().encode())
        except (ValueError, TypeError):
            found["resolverParameter"] = "The public key must be in PEM form (-----BEGIN PUBLIC KEY-----)."
    return found


def api_key_of(environ):
    return environ.get("HTTP_X_GRAVITEE_API_KEY") or query(environ).get(API_KEY_QUERY) or None


def bearer_of(environ):
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return query(environ).get(ACCESS_TOKEN_QUERY) or None


def take_from_query(environ, name):
    """The request's query, as forwarded, without that credential."""
    environ["QUERY_STRING"] = without_params(environ.get("QUERY_STRING", ""), {name})


class JwtPlan:
    def __init__(self, plan_id, config):
        self.id = plan_id
        self.algorithm = SIGNATURES[config.get("signature", "RSA_RS256")]
        self.required = ["exp"] if config.get(REQUIRE_EXP) is True else []
        parameter = config["resolverParameter"].strip()
        if config.get("publicKeyResolver", "GIVEN_KEY") == "JWKS_URL":
            self.jwks = Jwks(parameter)
            self.key = None
        else:
            self.jwks = None
            self.key = (
                parameter.encode() if self.algorithm.startswith("HS") else load_pem_public_key(parameter.encode())
            )

    def verify(self, token):
        """The token's claims; raises jwt.InvalidTokenError (signature, exp, nbf...)."""
        if self.jwks is None:
            keys = [self.key]
        else:
            keys = self.jwks.keys_for(jwt.get_unverified_header(token).get("kid"))
        error = jwt.InvalidTokenError("the JWKS has no key to check the token with")
        for key in keys:
            try:
                return jwt.decode(
                    token, key, algorithms=[self.algorithm], options={"verify_aud": False, "require": self.required}
                )
            except jwt.InvalidSignatureError as exc:  # a key set without kids: try the next key
                error = exc
        raise error


class Jwks:
    """A JWKS URL's keys by kid: fetched on first use, fetched again when a token names a kid not
    in the set (at most every JWKS_MIN_REFRESH_S, so that made-up kids cannot flood the URL) or when
    the set is older than JWKS_MAX_AGE_S. Concurrent requests wait for one fetch."""

    def __init__(self, url):
        self.url = url
        self.origin, self.target = split_url(url)
        self.http = HttpClient(None, connect_timeout=JWKS_TIMEOUT_S, read_timeout=JWKS_TIMEOUT_S, max_connections=1)
        self.keys = {}
        self.fetched_at = None
        self.lock = gevent.lock.Semaphore()

    def keys_for(self, kid):
        now = time.monotonic()
        stale = self.fetched_at is None or now - self.fetched_at > JWKS_MAX_AGE_S
        unknown = kid is not None and kid not in self.keys
        if stale or (unknown and now - self.fetched_at >= JWKS_MIN_REFRESH_S):
            with self.lock:
                if self.fetched_at is None or self.fetched_at < now:  # nobody fetched while we waited
                    self._fetch()
        if kid is None:
            return list(self.keys.values())
        if kid not in self.keys:
            raise jwt.InvalidTokenError(f"the token's key (kid {kid}) is not in the JWKS")
        return [self.keys[kid]]

    def _fetch(self):
        self.fetched_at = time.monotonic()
        try:
            response = self.http.request(self.origin, "GET", self.target, {"Accept": "application/json"})
            body = response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status} {response.reason}")
            document = json.loads(body)
            keys = {}
            for jwk in document["keys"]:
                if jwk.get("use", "sig") == "sig":
                    keys[jwk.get("kid")] = jwt.PyJWK(jwk).key
        except Exception as exc:  # keep the keys we had: the URL may be back at the next refresh
            log.warning("JWKS %s could not be read: %s", self.url, exc)
            return
        self.keys = keys


class Guard:
    """An API's plans as deployed, and the request check they make together."""

    def __init__(self, api_id: str, plans: list[dict[str, Any]]) -> None:
        self.api_id = api_id
        # (plan id, type, deployed status, JwtPlan or None, security configuration)
        self.plans: list[tuple[str, str, str | None, JwtPlan | None, dict[str, Any]]] = []
        for plan in plans:
            kind, config = plan["security"]["type"], plan["security"].get("configuration") or {}
            if kind == PUSH:
                continue
            self.plans.append(
                (plan["id"], kind, plan.get("status"), JwtPlan(plan["id"], config) if kind == "jwt" else None, config)
            )
        self.apply(None)

    def apply(self, access):
        """Take the live plan statuses (None: the deployed ones) into the serving sets."""
        statuses = access.statuses if access is not None else {}
        self.metadata = access.metadata if access is not None else {}  # subscriptions', for flows
        serving = [p for p in self.plans if statuses.get((self.api_id, p[0]), p[2]) in SERVING]
        self.key_plans = {p[0]: p[4] for p in serving if p[1] == "api-key"}
        self.jwt_plans = [p[3] for p in serving if p[1] == "jwt"]
        self.keyless = next((p[0] for p in serving if p[1] == "key-less"), None)  # its plan id

    def admit(self, environ, access, hasher):
        """The subscription id the request is served under (None for key-less); raises Refused.
        The plan that admitted it is left in environ[PLAN] (its flows run)."""
        if self.key_plans:
            key = api_key_of(environ)
            if key is not None:
                grant = access.keys.get(hasher(key))
                if grant is None:
                    raise Refused("401 Unauthorized", "Unknown, expired or revoked API key.")
                subscription, api_id, plan_id = grant
                if api_id != self.api_id or plan_id not in self.key_plans:
                    raise Refused("403 Forbidden", "This API key holds no subscription to this API.")
                if not self.key_plans[plan_id].get("propagateApiKey"):
                    environ.pop("HTTP_X_GRAVITEE_API_KEY", None)
                    take_from_query(environ, API_KEY_QUERY)
                environ[PLAN] = plan_id
                return subscription
        if self.jwt_plans:
            token = bearer_of(environ)
            if token is not None:
                subscription, environ[PLAN] = self._admit_token(token, access)
                take_from_query(environ, ACCESS_TOKEN_QUERY)  # a token in a URL ends up in the backend's logs
                return subscription
        if self.keyless is not None:
            environ[PLAN] = self.keyless
            return None
        raise Refused("401 Unauthorized", self._wanted())

    def _admit_token(self, token, access):
        error, client = None, None
        for plan in self.jwt_plans:
            try:
                claims = plan.verify(token)
            except jwt.InvalidTokenError as exc:
                error = error or exc
                continue
            client = claims.get(CLIENT_ID_CLAIM)
            if not isinstance(client, str):
                raise Refused("401 Unauthorized", f"The token has no {CLIENT_ID_CLAIM} claim naming an application.")
            subscription = access.subscribers.get((self.api_id, plan.id, client))
            if subscription is not None:
                return subscription, plan.id
        if client is not None:
            raise Refused("403 Forbidden", f"Application {client} holds no subscription to this API.")
        raise Refused("401 Unauthorized", f"Invalid token: {error}.")

    def _wanted(self):
        if not self.key_plans and not self.jwt_plans:
            return "This API has no published plan."
        wanted = (
            [f"an API key (header {API_KEY_HEADER} or query parameter {API_KEY_QUERY})"] if self.key_plans else []
        ) + (["a JWT (header Authorization: Bearer)"] if self.jwt_plans else [])
        return "This API needs " + " or ".join(wanted) + "."
