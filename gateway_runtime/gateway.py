"""The gateway WSGI application, its routing table, and the watcher that hot-reloads deployments.

Every process (and every gunicorn worker) runs one Gateway. It polls the database for the
started APIs and their deployed revisions; when they change it builds the new revisions, swaps
the routing table in one assignment, and retires what was replaced.
"""

import gc
import logging
import os
import sys

import gevent
import gevent.lock
from greenlet import greenlet
from sqlalchemy.exc import OperationalError

from . import database, registry
from .access import Access, KeyHasher
from .at_rest import WrongKey
from .deployed import DeployedApi
from .flows.serve import serve
from .framing import WARNING_INTERVAL_S, warn_now
from .http import (
    SUBSCRIPTION,
    TEMPLATES,
    BadBody,
    ClientBody,
    client_address,
    has_body,
    respond,
    respond_interrupted,
    respond_json,
    templated,
    with_headers,
)
from .last_known import Snapshot
from .messages import Interrupted
from .metrics import LABELS
from .outage import Outage
from .plans import PLAN, Refused
from .request_target import ROUTED, BadTarget, Routed, header_host, is_under, parse, raw_target
from .webhook.leases import Pusher

log = logging.getLogger("gatehouse.gateway")
NO_ROUTE = "No context-path matches the request URI."
NO_ENTRYPOINT = "No entrypoint matches the incoming request."
LEAVES_CONTEXT = "The request path climbs out of the context path {context} it starts with."


def _root(g):
    while g.parent is not None:
        g = g.parent
    return g


def _live_greenlets():
    """The live greenlets of this thread's hub: the SQLite pool's threads each have a hub of their
    own, and the pool starts them as work queues up, which a leak count must not see."""
    here = _root(greenlet.getcurrent())
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead and _root(o) is here)


class Routes:
    """(host, path) -> API, longest path first; a route naming a host beats one that does not.
    For the TCP listener: SNI host name -> API."""

    def __init__(self, apis):
        apis = list(apis)
        entries = [(host, path, api) for api in apis for host, path in api.paths]
        self.entries = sorted(entries, key=lambda e: (len(e[1]), e[0] is not None), reverse=True)
        self.sni_hosts = {host: api for api in apis for host in api.sni_hosts}

    def match_sni(self, server_name):
        return self.sni_hosts.get(server_name.lower()) if server_name else None

    def match(self, host, path):
        return self.route(host, path)[0]

    def route(self, host, path):
        """(API, the context path that matched) for a canonical path; (None, None) when none does."""
        for route_host, route_path, api in self.entries:
            if (route_host is None or route_host == host) and is_under(path, route_path):
                return api, route_path
        return None, None

    def route_target(self, host, target):
        """(API, Routed) for a request target, dot segments removed: (None, None) when no API
        serves it. Raises BadTarget when the path, once its dot segments are removed, leaves the
        context path it names: the client climbed out of one API, into another or none."""
        host = target.host or host
        api, context = self.route(host, target.key)
        _, named = (api, context) if target.named == target.key else self.route(host, target.named)
        if named is not None and not is_under(target.key, named):
            raise BadTarget(LEAVES_CONTEXT.format(context=named))
        return api, Routed(target, context) if api is not None else None


class Tracked:
    """The response body, counted as in flight until the server closes it."""

    __slots__ = ("body", "api")

    def __init__(self, body, api):
        self.body = body
        self.api = api

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.api.leave()


def preflight_answer(headers):
    """The entrypoint of a preflight the API's plans and flows run on (cors.runPolicies)."""

    def answer(environ, start_response):
        return respond(start_response, "200 OK", headers=headers)

    return answer


class Gateway:
    def __init__(self, database_url, cipher, last_known=None, poll_interval=0.25):
        self.engine = database.make_engine(database_url)
        self.cipher = cipher  # stored revisions hold their secrets encrypted
        self.last_known = last_known  # a LastKnown: what is served is kept on local disk too (None: not kept)
        self.hasher = None  # read at start, from the database or the last-known deployments
        self.poll_interval = poll_interval
        self.database = Outage(log, "reading deployments")
        self.access = Access()
        self.apis = {}
        self.stored = {}  # api_id -> (revision, definition as stored: secrets encrypted), for the last-known file
        self.failed = {}  # api_id -> revision that could not be built (not retried until it changes)
        self.routes = Routes([])
        self.retiring = set()
        self.watcher = None
        self.pusher = Pusher(self)
        self.refreshing = gevent.lock.Semaphore()  # the watcher and refresh_now() take turns
        # Deployments loaded (from the database, or the last-known ones while it is down): the node's readiness.
        self.loaded = False

    # ----- serving -----
    def __call__(self, environ, start_response):
        try:
            api, environ[ROUTED] = self.routes.route_target(
                header_host(environ.get("HTTP_HOST")), parse(raw_target(environ))
            )
        except BadTarget as refused:
            return respond(start_response, "400 Bad Request", str(refused))
        if api is None:
            return respond(start_response, "404 Not Found", NO_ROUTE)
        if api.templates is not None:
            environ[TEMPLATES] = api.templates
        environ[LABELS] = (api.id, "")
        handler = None
        if api.cors is not None and "HTTP_ORIGIN" in environ:  # a browser, on another origin or not
            try:
                if environ["REQUEST_METHOD"] == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
                    allowed = api.cors.preflight(environ)
                    if not api.cors.run_policies:  # before plans: a preflight carries no credentials
                        return respond(start_response, "200 OK", headers=allowed)
                    handler = preflight_answer(allowed)  # the plans and flows run first (runPolicies)
                else:
                    start_response = with_headers(start_response, api.cors.answer_headers(environ))
            except Interrupted as stop:
                return respond_interrupted(environ, start_response, stop)
        handler = handler or api.handler_for(environ)
        environ[LABELS] = (api.id, registry.entrypoint_type(handler))
        if handler is None:
            return respond(start_response, "404 Not Found", NO_ENTRYPOINT)
        try:  # before any entrypoint runs: a WebSocket is refused before its handshake
            environ[SUBSCRIPTION] = api.guard.admit(environ, self.access, self.hasher)
        except Refused as refused:
            return templated(environ, start_response, refused) or respond_json(
                start_response, refused.status, {"message": refused.message}
            )
        if has_body(environ):  # a body the client sent wrong fails as BadBody, wherever it is read
            length = environ.get("CONTENT_LENGTH", "")
            chunked = "HTTP_TRANSFER_ENCODING" in environ
            environ["wsgi.input"] = ClientBody(
                environ["wsgi.input"], int(length) if length.isdigit() and not chunked else None
            )
        api.enter()
        try:
            if api.flows is not None:
                answer = serve(
                    api.flows,
                    environ,
                    start_response,
                    handler,
                    environ.get(PLAN),
                    environ[SUBSCRIPTION],
                    self.access.metadata,
                    api.streams,
                )
                return Tracked(answer, api)
            return Tracked(handler(environ, start_response), api)
        except BadBody as refused:
            api.leave()
            if warn_now(self, BadBody):
                log.warning(
                    "API %s: refused a request from %s: %s (refusals like it are logged once every %g s)",
                    api.id,
                    client_address(environ),
                    refused,
                    WARNING_INTERVAL_S,
                )
            # Where the next request would start is unknown: the connection ends with this answer.
            return respond_json(
                start_response, "400 Bad Request", {"message": str(refused)}, headers=[("Connection", "close")]
            )
        except Exception:
            api.leave()
            log.exception("API %s: unexpected error in %s", api.id, type(handler).__name__)
            return respond_json(
                start_response,
                "500 Internal Server Error",
                {"message": "Unexpected gateway error; the gateway log has the details."},
                sys.exc_info(),
            )
        except BaseException:
            api.leave()
            raise

    # ----- hot reload -----
    def start(self):
        """Serve what the database says, and follow it."""
        with self.engine.connect() as connection:
            self.hasher = KeyHasher(self.cipher.api_key_secret(connection))
        self.refresh()
        self.loaded = True
        self.watcher = gevent.spawn(self._watch)
        self.pusher.start()

    def start_offline(self):
        """The database is unreachable: serve the last-known deployments, if any, until `start`
        can run. Returns how many APIs are served."""
        snapshot = self.last_known.load() if self.last_known is not None else None
        if snapshot is None:
            return 0
        try:
            self.hasher = KeyHasher(bytes.fromhex(self.cipher.decrypt(snapshot.sealed_key)))
        except WrongKey:  # written before a key rotation, say: the database says which key is right
            log.warning(
                "the last-known deployments in %s were encrypted with another key: nothing to serve until "
                "the database is reachable",
                self.last_known.path,
            )
            return 0
        self._serve(snapshot.revisions, snapshot.definitions, snapshot.access)
        self.loaded = True
        return len(self.apis)

    def _watch(self):
        while True:
            gevent.sleep(self.poll_interval)
            try:
                self.refresh()
            except OperationalError as exc:  # down or locked: served from memory meanwhile, one line per outage
                self.database.failed(exc)
            except Exception:
                log.exception("reading deployments failed; retrying")
            else:
                self.database.recovered()

    def refresh_now(self):
        """What the portal of this process just committed, served before its answer says so (the
        watcher would take up to its poll interval; other processes and nodes still do). A failure
        is left to the watcher, which retries and logs it."""
        try:
            self.refresh()
        except Exception as exc:
            log.debug("reading deployments after a change failed (the watcher retries): %s", exc)

    def refresh(self):
        with self.refreshing:
            with self.engine.connect() as connection:
                version = database.access_version(connection)
                access = self.access  # read after the version: never older
                if version != access.version:
                    access = Access(version, *database.access_tables(connection))
                wanted = database.served_versions(connection)
                current = {api_id: api.revision for api_id, api in self.apis.items()}
                changed = {
                    api_id: rev
                    for api_id, rev in wanted.items()
                    if current.get(api_id) != rev and self.failed.get(api_id) != rev
                }
                loaded = database.load_revisions(connection, changed)
            definitions = {api_id: (changed[api_id], definition) for api_id, definition in loaded.items()}
            self._serve(wanted, definitions, access)

    def _serve(self, wanted, definitions, access):
        """Serve the wanted {api_id: revision}: those served at that revision already as they are,
        the `definitions` {api_id: (revision, stored definition)} built anew; `access` applies to all."""
        if wanted == {api_id: api.revision for api_id, api in self.apis.items()}:
            if access is not self.access:
                for api in self.apis.values():
                    api.guard.apply(access)
                self.access = access
                self._save()
            return
        apis = {api_id: api for api_id, api in self.apis.items() if wanted.get(api_id) == api.revision}
        stored = {api_id: self.stored[api_id] for api_id in apis}
        for api_id, (revision, definition) in definitions.items():
            try:
                apis[api_id] = DeployedApi(self.cipher.open_definition(definition), revision)
                stored[api_id] = (revision, definition)
                self.failed.pop(api_id, None)
            except Exception:
                log.exception("API %s revision %s could not be started", api_id, revision)
                self.failed[api_id] = revision
        retired = [api for api_id, api in self.apis.items() if apis.get(api_id) is not api]
        for api in apis.values():
            api.guard.apply(access)
        access_changed = access is not self.access
        self.access = access
        self.apis, self.stored = apis, stored
        self.routes = Routes(apis.values())
        for api in retired:
            self._retire(api)
        if definitions or retired:
            log.info("gateway serves %d APIs (changed: %s)", len(apis), ", ".join(sorted(definitions)) or "none")
        if definitions or retired or access_changed:
            self._save()

    def _save(self):
        if self.last_known is None:
            return
        try:
            self.last_known.save(Snapshot(self.stored, self.access, self.cipher.encrypt(self.hasher.key.hex())))
        except OSError as exc:  # serving goes on; a start while the database is down would serve older ones
            log.warning("the last-known deployments could not be written to %s: %s", self.last_known.path, exc)

    def stop(self, grace=5):
        """On shutdown: streams are told to go away at once; each API's connectors close once its
        requests have ended, or after `grace` seconds (consumers leave their groups, so that a
        restarted gateway does not wait for them to time out). Returns the greenlets doing it."""
        if self.watcher is not None:
            self.watcher.kill()
        retiring = [gevent.spawn(api.retire, grace) for api in self.apis.values()]
        self.apis = {}
        self.routes = Routes([])
        self.pusher.stop(grace)
        return retiring

    def _retire(self, api):
        self.retiring.add(api)
        greenlet = gevent.spawn(api.retire)
        greenlet.link(lambda _: self.retiring.discard(api))
        return greenlet

    def stats(self):
        return {
            "apis": {api_id: api.revision for api_id, api in self.apis.items()},
            "greenlets": _live_greenlets(),
            "fds": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None,
            "retiring": len(self.retiring),
            "pid": os.getpid(),
        }
