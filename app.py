"""Gatehouse: the application factory, `gatehouse serve`, and the gunicorn entry point.

`gatehouse serve` runs the portal (UI + management API) and the gateway in one gevent process, or
with `--workers N` in N such processes forked by a supervisor (gateway_runtime.supervisor).
Under gunicorn (`gunicorn -k gevent 'app:make_wsgi()'` binding both ports), one WSGI callable
dispatches by the port a request arrived on, and each worker runs its own gateway.
"""

import argparse
import fcntl
import functools
import gc
import logging
import os
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_PORTAL_PORT = 8084
DEFAULT_GATEWAY_PORT = 8082
DEFAULT_TCP_PORT = 4082  # TLS connections routed by SNI to tcp-proxy APIs; "off" turns it off
CONNECTORS_CLOSE_S = 5  # at shutdown, once no request uses them: consumers leave their groups


def create_app(test_config=None):
    from flask import Flask
    from flask_migrate import Migrate
    from flask_wtf.csrf import CSRFProtect

    from gateway_runtime import database
    from gateway_runtime.at_rest import Cipher
    from portal import auth, consumers, management, node, studio, ui, users
    from portal.models import db

    instance = os.environ.get("GATEHOUSE_INSTANCE_PATH", os.path.join(os.getcwd(), "instance"))
    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)  # the start-up lock lives there, whatever the key and database
    url = database.database_url(app.instance_path)
    secret_key = _secret_key(app.instance_path)
    app.config.from_mapping(
        SECRET_KEY=secret_key,
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=database.engine_options(url),
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_SAMESITE="Lax",
        SECURE_COOKIES="auto",  # the session cookie's Secure flag: auto (over HTTPS), true or false
        PERMANENT_SESSION_LIFETIME=8 * 3600,  # seconds since the last request: an idle session ends
        LOGIN_MAX_FAILURES=5,
        LOGIN_MAX_FAILURES_PER_ADDRESS=20,
        LOGIN_LOCK_SECONDS=30,  # doubles with each failure past the limit
        LOGIN_LOCK_MAX_SECONDS=3600,
        GATEWAY_URL=None,  # the gateway's public base URL in the portal's client commands; None: derived
        GATEWAY_PORT=DEFAULT_GATEWAY_PORT,
        TCP_PORT=DEFAULT_TCP_PORT,  # what serve / make_wsgi bind
    )
    app.config.from_prefixed_env("GATEHOUSE")
    if test_config:
        app.config.update(test_config)
    db.init_app(app)
    app.extensions["gatehouse_cipher"] = Cipher(secret_key)
    Migrate(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf = CSRFProtect(app)
    with app.app_context():
        database.install_sqlite_pragmas(db.engine)
    app.register_blueprint(auth.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(consumers.bp)
    app.register_blueprint(studio.bp)
    app.register_blueprint(management.bp)
    app.register_blueprint(node.bp)
    # Authorization header only, never the cookie; browsers caching Basic credentials: management.refuse_cross_site
    csrf.exempt(management.bp)
    auth.install_sessions(app)
    app.before_request(_database_unreachable)  # before anything reads the database
    app.before_request(auth.load_user)
    app.after_request(_security_headers)
    ui.register_error_pages(app)
    auth.check_every_view_guarded(app)
    return app


def _security_headers(response):
    """No page runs a script or style that is not one of our static files (so reflected input cannot
    run), none is framed, and no body is sniffed into another type."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def _secret_key(instance_path):
    """One key for every process on this instance folder, so sessions survive restarts and stored
    secrets stay readable. Nodes sharing a database must be given the same GATEHOUSE_SECRET_KEY."""
    if os.environ.get("GATEHOUSE_SECRET_KEY"):
        return os.environ["GATEHOUSE_SECRET_KEY"]
    path = os.path.join(instance_path, "secret_key")
    with _lock(instance_path):
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        elif os.stat(path).st_mode & 0o077:
            # The key decrypts every stored secret: a copy made readable to others is narrowed again.
            os.chmod(path, 0o600)
    with open(path) as f:
        return f.read().strip()


class _lock:
    """A file lock in the instance folder: processes of one instance folder starting together make
    its key and certificate one at a time (and migrate a SQLite database in it one at a time)."""

    def __init__(self, instance_path):
        self.path = os.path.join(instance_path, ".startup.lock")

    def __enter__(self):
        self.file = open(self.path, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


MIGRATION_LOCK = int.from_bytes(b"gatehous", "big")  # PostgreSQL advisory lock key: every node uses this one


@contextmanager
def _database_lock(app):
    """Nodes starting together prepare the database one at a time. On PostgreSQL the nodes'
    instance folders differ: an advisory lock, held by a connection of its own, makes the next
    node wait. A SQLite database is one instance folder's: its file lock does."""
    from sqlalchemy import text

    from portal.models import db

    if db.engine.dialect.name != "postgresql":
        with _lock(app.instance_path):
            yield
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            yield
        finally:
            connection.invalidate()  # its session ends, and the lock with it, even if the database went away


def prepare(app):
    """Apply pending migrations, check that this node's key reads the stored secrets, and make
    sure the admin user exists. A wrong key ends the process with one line saying what to do."""
    from flask_migrate import upgrade

    from gateway_runtime.at_rest import WrongKey
    from portal.auth import ensure_admin
    from portal.models import db

    with app.app_context(), _database_lock(app):
        upgrade(directory=str(ROOT / "migrations"))
        try:
            with db.engine.begin() as connection:
                app.extensions["gatehouse_cipher"].check_key(connection)
        except WrongKey:
            print(WrongKey(db.engine.url.render_as_string(hide_password=True)), file=sys.stderr, flush=True)
            # 3 is gunicorn's worker boot error: its master stops instead of starting workers again.
            sys.exit(3)
        ensure_admin()


def _start(app):
    """Prepare the database and start the gateway. When the database cannot be reached the node
    starts anyway: its gateway serves the deployments it last knew, its portal answers 503, and
    both catch up once the database is back (a node that crashed during an outage comes back)."""
    from sqlalchemy.exc import OperationalError

    from gateway_runtime.access_log import access_log_on
    from gateway_runtime.gateway import Gateway
    from gateway_runtime.http import max_message_bytes
    from gateway_runtime.last_known import LastKnown
    from gateway_runtime.metrics import metrics_on

    try:
        max_message_bytes()
        metrics_on()
        access_log_on()
    except ValueError as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(2)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    gateway = Gateway(url, app.extensions["gatehouse_cipher"], LastKnown(app.instance_path, url))
    app.extensions["gatehouse_gateway"] = gateway
    try:
        prepare(app)
        gateway.start()
    except OperationalError as exc:
        _start_offline(app, gateway, exc)
    return gateway


DATABASE_RETRY_S = 1
UNREACHABLE = (
    "The database is unreachable ({reason}), so the portal cannot work now. The gateway serves the "
    "APIs this node last knew, and the portal works again by itself once the database is back: check "
    "that the database server is up and that GATEHOUSE_DATABASE_URL names it."
)


def _start_offline(app, gateway, exc):
    import gevent

    from gateway_runtime.outage import Outage, one_line

    database = Outage(logging.getLogger("gatehouse"), "reaching the database")
    database.failed(exc)
    served = gateway.start_offline()
    logging.getLogger("gatehouse").warning(
        "serving %d last-known APIs (from %s) until the database is reachable; the portal answers 503 meanwhile",
        served,
        gateway.last_known.path,
    )
    app.extensions["gatehouse_unreachable"] = UNREACHABLE.format(reason=one_line(exc))
    gevent.spawn(_catch_up, app, gateway, database)


def _catch_up(app, gateway, database):
    import gevent
    from sqlalchemy.exc import OperationalError

    while True:
        gevent.sleep(DATABASE_RETRY_S)
        try:
            prepare(app)
            gateway.start()
        except OperationalError as exc:
            database.failed(exc)
        else:
            database.recovered()
            app.extensions.pop("gatehouse_unreachable")
            return


def _database_unreachable():
    """Before every portal request while the node started without its database: 503, saying so."""
    from flask import current_app, jsonify, render_template, request

    message = current_app.extensions.get("gatehouse_unreachable")
    if message is None or request.endpoint == "static" or request.blueprint == "node":  # probes answer as probes
        return None
    headers = {"Retry-After": "5"}
    if request.path.startswith("/management/"):
        return jsonify({"message": message, "errors": []}), 503, headers
    return render_template("error.html", code=503, message=message), 503, headers


def make_wsgi():
    """gunicorn entry point: `gunicorn -k gevent -b HOST:8084 -b HOST:8082 'app:make_wsgi()'`."""
    _configure_logging()
    app = create_app()
    gateway = _start(app)
    gateway_port = os.environ.get("GATEHOUSE_GATEWAY_PORT", str(DEFAULT_GATEWAY_PORT))
    app.config.update(GATEWAY_PORT=int(gateway_port), TCP_PORT=None)  # gunicorn serves no TCP port
    gc.freeze()

    def dispatch(environ, start_response):
        if environ.get("SERVER_PORT") == gateway_port:
            return gateway(environ, start_response)
        return app(environ, start_response)

    return dispatch


LOG_FORMAT = "GATEHOUSE_LOG_FORMAT"


def _configure_logging():
    """Log lines as text, or with GATEHOUSE_LOG_FORMAT=json one JSON object a line (a wrong value stops
    the start naming it)."""
    form = _log_format()
    logging.basicConfig(
        level=os.environ.get("GATEHOUSE_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if form == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLines())
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _log_format():
    form = os.environ.get(LOG_FORMAT, "text").strip().lower() or "text"
    if form not in ("text", "json"):
        print(f"{LOG_FORMAT} must be text or json, not {form[:40]!r}", file=sys.stderr, flush=True)
        sys.exit(2)
    return form


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, message, an access line's fields, a traceback."""

    def format(self, record):
        import json

        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _listener(host, port):
    """A listening socket whose connections send at once: pywsgi writes headers and body
    separately, and Nagle's algorithm would hold the body for the client's delayed ACK (~40 ms)."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _tcp_listener(app, gateway, sock, pool, handshake_timeout):
    """The TCP listener on `sock` (None when turned off), its certificate made under the instance lock."""
    from gateway_runtime.tcp import TcpListener, server_certificate

    if sock is None:
        return None
    with _lock(app.instance_path):
        certfile, keyfile = server_certificate(app.instance_path)
    listener = TcpListener(gateway, sock, certfile, keyfile, pool, handshake_timeout)
    listener.start()
    return listener


def _bind(args):
    return {
        "portal": _listener(args.host, args.portal_port),
        "gateway": _listener(args.host, args.gateway_port),
        "tcp": _listener(args.host, args.tcp_port) if args.tcp_port is not None else None,
    }


def _port_or_off(value):
    if str(value).lower() == "off":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a port number nor 'off'") from None


def _patch_all():
    """gevent's patch_all, with the installed packages' entry points read once instead of 25 times (gevent
    asks for its plugins before each module it patches; each ask scans every installed package, 0.4 s of CPU
    at each start here)."""
    from importlib import metadata

    from gevent import monkey

    found = metadata.entry_points()
    scan = metadata.entry_points
    metadata.entry_points = lambda **params: found.select(**params)
    try:
        monkey.patch_all()
    finally:
        metadata.entry_points = scan


WORKERS = "GATEHOUSE_WORKERS"


def serve(args):
    """One process, or with several workers a supervisor forking them (gateway_runtime.supervisor)."""
    workers = _workers(args.workers)
    if workers == 1:
        return _serve(args)
    with _metrics_folder():
        return _supervise(args, workers)


@contextmanager
def _metrics_folder():
    """Where the workers write their metrics (prometheus-client's multiprocess mode), so that a scrape of
    any of them sums them all: a fresh folder, named before anything here imports prometheus-client."""
    import shutil
    import tempfile

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the operator's own
        yield
        return
    folder = tempfile.mkdtemp(prefix="gatehouse-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(args, workers):
    from gateway_runtime.supervisor import Supervisor

    _configure_logging()
    listening = _bind(args)  # before the fork: every worker accepts on these, port 0 resolved once
    ports = [sock.getsockname()[1] if sock is not None else None for sock in listening.values()]
    # The workers refuse to start on TLS settings that are not whole: the certificate named means HTTPS.
    https = bool(os.environ.get("GATEHOUSE_GATEWAY_TLS_CERT", "").strip())
    announce = functools.partial(_say_ports, args.host, *ports, https)  # once, when the first worker serves
    sockets = [sock for sock in listening.values() if sock is not None]
    return Supervisor(workers, functools.partial(_serve, args, listening), announce, sockets).run()


def _workers(flag):
    """--workers, else GATEHOUSE_WORKERS, else one per CPU this process may run on; a wrong value
    ends the process with one line naming it."""
    name, raw = ("--workers", flag) if flag is not None else (WORKERS, os.environ.get(WORKERS, "").strip())
    if not raw:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        print(f"{name} must be a whole number greater than 0, not {raw!r}", file=sys.stderr, flush=True)
        sys.exit(2)
    return workers


def _serve(args, inherited=None, ready=None):
    """The portal and the gateway in this process, on the supervisor's listening sockets when it
    has `inherited` them (then `ready` tells the supervisor it serves), else on sockets of its own."""
    _patch_all()

    import signal
    import socket

    import gevent
    from gevent.event import Event

    from gateway_runtime.access_log import AccessLog, access_log_on
    from gateway_runtime.framing import strict
    from gateway_runtime.listeners import LimitedHandler, LimitedWSGIServer, raise_open_file_limit
    from gateway_runtime.metrics import measured, metrics_on, record
    from gateway_runtime.server.http1 import GatewayServer

    _configure_logging()
    open_file_limit = raise_open_file_limit()
    app = create_app()
    gateway = _start(app)
    limits = _limits(open_file_limit)
    if inherited:  # the supervisor's sockets, as gevent's (patched) sockets
        listening = {name: sock and socket.socket(fileno=sock.detach()) for name, sock in inherited.items()}
    else:
        listening = _bind(args)
    portal = LimitedWSGIServer(listening["portal"], app, limits, limits.max_portal)
    portal.handler_class = strict(LimitedHandler)  # the RFC 9112 framing the gateway's server checks too
    tls = _gateway_tls()
    logged = [AccessLog(_log_format() == "json").write] if access_log_on() else []
    recorders = ([record] if metrics_on() else []) + logged
    observed = measured(gateway, recorders) if recorders else gateway
    gateway_server = GatewayServer(listening["gateway"], observed, limits, limits.max_gateway, tls)
    tcp = _tcp_listener(app, gateway, listening["tcp"], gateway_server.pool, limits.header_timeout)
    app.config.update(GATEWAY_PORT=gateway_server.server_port, TCP_PORT=tcp.port if tcp is not None else None)
    portal.start()
    gateway_server.start()
    # Start-up made ~100k long-lived objects (Flask, SQLAlchemy, templates): keep them out of
    # every later full garbage collection, which would otherwise stall the gateway for tens of ms.
    gc.freeze()
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    gevent.signal_handler(signal.SIGHUP, _reload, tls)
    if ready is None:
        tcp_port = tcp.port if tcp is not None else None
        _say_ports(args.host, portal.server_port, gateway_server.server_port, tcp_port, tls is not None)
    else:
        ready(limits.shutdown_grace)
    stop.wait()
    _shut_down((portal, gateway_server), tcp, gateway, limits.shutdown_grace)
    return 0


def _say_ports(host, portal_port, gateway_port, tcp_port, https):
    print(f"Gatehouse portal:  http://{host}:{portal_port}/", flush=True)
    print(f"Gatehouse gateway: {'https' if https else 'http'}://{host}:{gateway_port}/", flush=True)
    if tcp_port is not None:
        print(f"Gatehouse TCP:     {host}:{tcp_port} (TLS, routed by SNI)", flush=True)


def _reload(tls):
    """SIGHUP (passed on to each worker by the supervisor): the gateway port's certificate and key
    read again at once, without waiting for the watcher to see the files change."""
    if tls is None:
        logging.getLogger("gatehouse").info("SIGHUP: nothing to reload (the gateway port has no TLS)")
    else:
        tls.reload()


def _shut_down(servers, tcp, gateway, grace):
    """SIGTERM or SIGINT: new connections are refused at once and idle kept-alive ones closed;
    streams are told to end (their APIs retire); requests in flight have `grace` seconds to
    finish, then what is left is cut and the process exits."""
    import gevent

    deadline = time.monotonic() + grace
    for server in servers:
        server.close()
    if tcp is not None:
        tcp.close()
    pools = {server.pool for server in servers}  # the TCP port's connections are in the gateway's
    log = logging.getLogger("gatehouse.listeners")
    log.info(
        "stopping: new connections refused; %d open connections have up to %g s to end",
        sum(len(pool) for pool in pools),
        grace,
    )
    retiring = gateway.stop(grace)
    for pool in pools:
        pool.join(timeout=max(0.0, deadline - time.monotonic()))
    left = sum(len(pool) for pool in pools)
    if left:
        log.warning(
            "the %g s shutdown grace (GATEHOUSE_SHUTDOWN_GRACE_SECONDS) is over: closing the %d connections still open",
            grace,
            left,
        )
        for pool in pools:
            pool.kill(timeout=1)
    gevent.joinall(retiring, timeout=CONNECTORS_CLOSE_S)  # no request uses them now


def _limits(open_file_limit):
    """The listeners' timeouts and caps; a wrong setting ends the process with one line naming it."""
    from gateway_runtime.listeners import Limits, SettingError, open_descriptors

    try:
        limits = Limits.from_environment(open_file_limit - open_descriptors())
    except SettingError as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(2)
    logging.getLogger("gatehouse.listeners").info(
        "connections at once: gateway %s (HTTP and TCP ports), portal %s; header timeout %g s, "
        "keep-alive timeout %g s, write timeout %g s, shutdown grace %g s",
        limits.max_gateway,
        limits.max_portal,
        limits.header_timeout,
        limits.keepalive_timeout,
        limits.write_timeout,
        limits.shutdown_grace,
    )
    return limits


def _gateway_tls():
    """The gateway port's TLS (GATEHOUSE_GATEWAY_TLS_*), None for plain HTTP; a wrong setting
    or file ends the process with one line naming it."""
    from gateway_runtime.listeners import SettingError
    from gateway_runtime.server.tls import GatewayTls

    try:
        return GatewayTls.from_environment()
    except SettingError as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(2)


def rotate_secret_key():
    """Encrypt every stored secret again with a new key: GATEHOUSE_NEW_SECRET_KEY, or, for an
    instance with a generated key file, a new generated one written to that file once the database
    holds what it encrypted. Every node must be stopped first, and started again with the new key."""
    from gateway_runtime.at_rest import Cipher
    from portal.models import db, reseal

    _configure_logging()
    app = create_app()
    prepare(app)  # migrated, and the current key reads what is stored
    key_file = None if os.environ.get("GATEHOUSE_SECRET_KEY") else os.path.join(app.instance_path, "secret_key")
    new_key = os.environ.get("GATEHOUSE_NEW_SECRET_KEY") or (key_file and secrets.token_hex(32))
    if not new_key:
        return _refuse("Set GATEHOUSE_NEW_SECRET_KEY to the new key (GATEHOUSE_SECRET_KEY holds the current one).")
    if len(new_key) < 16:
        return _refuse(
            "GATEHOUSE_NEW_SECRET_KEY is too short: use at least 16 characters, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_hex(32))'."
        )
    if new_key == app.config["SECRET_KEY"]:
        return _refuse("GATEHOUSE_NEW_SECRET_KEY is the current key: give another one.")
    with _lock(app.instance_path), app.app_context():
        pending = None
        if key_file:  # written first, so that a crash after the commit cannot lose the new key
            pending = key_file + ".new"
            with os.fdopen(os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(new_key)
        try:
            rows = reseal(Cipher(new_key))
            db.session.commit()
        except BaseException:
            if pending:
                os.remove(pending)
            raise
        if pending:
            os.replace(pending, key_file)
    where = f"the key file {key_file} holds the new key" if key_file else "set GATEHOUSE_SECRET_KEY to the new key"
    print(
        f"The secrets of {rows} stored rows are encrypted with the new key. Start every node again: {where}. "
        "Portal users log in again; API keys and access tokens keep working.",
        flush=True,
    )
    return 0


def _refuse(message):
    print(message, file=sys.stderr, flush=True)
    return 2


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gatehouse", description="Gatehouse API gateway and developer portal")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the portal and the gateway")
    run.add_argument("--host", default=os.environ.get("GATEHOUSE_HOST", "127.0.0.1"))
    run.add_argument("--portal-port", type=int, default=DEFAULT_PORTAL_PORT)
    run.add_argument("--gateway-port", type=int, default=DEFAULT_GATEWAY_PORT)
    run.add_argument(
        "--tcp-port",
        type=_port_or_off,
        default=os.environ.get("GATEHOUSE_TCP_PORT", DEFAULT_TCP_PORT),
        help="TLS port of tcp-proxy APIs (routed by SNI), or 'off'",
    )
    run.add_argument(
        "--workers",
        help=f"worker processes serving the same ports (default: {WORKERS}, else one per CPU); 1: no supervisor",
    )
    commands.add_parser(
        "rotate-secret-key",
        help="encrypt the stored secrets again with a new key (stop every "
        "node first); the new key comes from GATEHOUSE_NEW_SECRET_KEY, or is generated into the "
        "instance's key file",
    )
    args = parser.parse_args(argv)
    if args.command == "rotate-secret-key":
        return rotate_secret_key()
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
