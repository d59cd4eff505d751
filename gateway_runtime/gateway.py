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
from greenlet import greenlet

from . import store
from .access import Access, KeyHasher
from .deployed import DeployedApi
from .http import SUBSCRIPTION, respond, respond_json
from .plans import Refused
from .request_target import ROUTED, BadTarget, Routed, header_host, is_under, parse, raw_target
from .webhook import Pusher

log = logging.getLogger("gatehouse.gateway")
NO_ROUTE = "No context-path matches the request URI."
NO_ENTRYPOINT = "No entrypoint matches the incoming request."
LEAVES_CONTEXT = "The request path climbs out of the context path {context} it starts with."


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
        _, named = self.route(host, target.named)
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


class Gateway:
    def __init__(self, database_url, cipher, poll_interval=0.25):
        self.engine = store.make_engine(database_url)
        self.cipher = cipher  # stored revisions hold their secrets encrypted
        with self.engine.connect() as connection:
            self.hasher = KeyHasher(cipher.api_key_secret(connection))
        self.poll_interval = poll_interval
        self.access = Access()
        self.apis = {}
        self.failed = {}  # api_id -> revision that could not be built (not retried until it changes)
        self.routes = Routes([])
        self.retiring = set()
        self.watcher = None
        self.pusher = Pusher(self)

    # ----- serving -----
    def __call__(self, environ, start_response):
        try:
            api, environ[ROUTED] = self.routes.route_target(header_host(environ.get("HTTP_HOST")),
                                                            parse(raw_target(environ)))
        except BadTarget as refused:
            return respond(start_response, "400 Bad Request", str(refused))
        if api is None:
            return respond(start_response, "404 Not Found", NO_ROUTE)
        handler = api.handler_for(environ)
        if handler is None:
            return respond(start_response, "404 Not Found", NO_ENTRYPOINT)
        try:  # before any entrypoint runs: a WebSocket is refused before its handshake
            environ[SUBSCRIPTION] = api.guard.admit(environ, self.access, self.hasher)
        except Refused as refused:
            return respond_json(start_response, refused.status, {"message": refused.message})
        api.enter()
        try:
            return Tracked(handler(environ, start_response), api)
        except Exception:
            api.leave()
            log.exception("API %s: unexpected error in %s", api.id, type(handler).__name__)
            return respond_json(start_response, "500 Internal Server Error",
                                {"message": "Unexpected gateway error; the gateway log has the details."},
                                sys.exc_info())
        except BaseException:
            api.leave()
            raise

    # ----- hot reload -----
    def start(self):
        self.refresh()
        self.watcher = gevent.spawn(self._watch)
        self.pusher.start()

    def _watch(self):
        while True:
            gevent.sleep(self.poll_interval)
            try:
                self.refresh()
            except Exception:
                log.exception("reading deployments failed; retrying")

    def refresh(self):
        with self.engine.connect() as connection:
            version = store.access_version(connection)
            access = self.access if version == self.access.version else \
                Access(version, *store.access_tables(connection))  # read after the version: never older
            wanted = store.served_versions(connection)
            current = {api_id: api.revision for api_id, api in self.apis.items()}
            if wanted == current:
                if access is not self.access:
                    for api in self.apis.values():
                        api.guard.apply(access)
                    self.access = access
                return
            changed = {api_id: rev for api_id, rev in wanted.items()
                       if current.get(api_id) != rev and self.failed.get(api_id) != rev}
            definitions = store.load_revisions(connection, changed)
        apis = {api_id: api for api_id, api in self.apis.items() if wanted.get(api_id) == api.revision}
        for api_id, definition in definitions.items():
            try:
                apis[api_id] = DeployedApi(self.cipher.open_definition(definition), changed[api_id])
                self.failed.pop(api_id, None)
            except Exception:
                log.exception("API %s revision %s could not be started", api_id, changed[api_id])
                self.failed[api_id] = changed[api_id]
        retired = [api for api_id, api in self.apis.items() if apis.get(api_id) is not api]
        for api in apis.values():
            api.guard.apply(access)
        self.access = access
        self.apis = apis
        self.routes = Routes(apis.values())
        for api in retired:
            self._retire(api)
        if changed or retired:
            log.info("gateway serves %d APIs (changed: %s)", len(apis), ", ".join(sorted(changed)) or "none")

    def stop(self, timeout=5):
        """On shutdown: streams are told to go away and connectors close (consumers leave their
        groups, so that a restarted gateway does not wait for them to time out)."""
        if self.watcher is not None:
            self.watcher.kill()
        self.pusher.stop(timeout)
        retiring = [self._retire(api) for api in self.apis.values()]
        self.apis = {}
        self.routes = Routes([])
        gevent.joinall(retiring, timeout=timeout)

    def _retire(self, api):
        self.retiring.add(api)
        greenlet = gevent.spawn(api.retire)
        greenlet.link(lambda _: self.retiring.discard(api))
        return greenlet

    def stats(self):
        return {
            "apis": {api_id: api.revision for api_id, api in self.apis.items()},
            "greenlets": sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead),
            "fds": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None,
            "retiring": len(self.retiring),
            "pid": os.getpid(),
        }
