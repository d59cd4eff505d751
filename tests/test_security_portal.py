"""What the portal and the management API refuse (issue 14, defects 2, 3, 7, 8, 11 and two of 12),
each attack made against a real `gatehouse serve`: route takeover by another owner, cross-site
requests riding on a browser's cached Basic credentials, the login throttle, the redirect after
login, user names told by timing, deeply nested JSON and the session cookie's Secure flag."""

import base64
import json
import re
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from support.apis import mock_api, proxy_api
from support.gatehouse import ADMIN_PASSWORD, MGMT, launch
from support.http_backends import start_backend, url
from support.portal import PASSWORD, add_user, create_in_portal, csrf_token, login, mgmt_as, post_form

PROXY = "127.0.0.1/32"  # the tests' requests come through a "proxy" on loopback, so each can claim its address


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """One server for the module, trusting loopback as a proxy: each test sends its own
    X-Forwarded-For, so that failed logins of one test never lock another's address."""
    server = launch(tmp_path_factory.mktemp("portal"), GATEHOUSE_TRUSTED_PROXIES=PROXY)
    yield server
    server.stop()


def address():
    """A client address of its own, sent as X-Forwarded-For."""
    number = uuid.uuid4().int
    return {"X-Forwarded-For": f"10.{number % 256}.{number // 256 % 256}.{number // 65536 % 254 + 1}"}


def new_user(server, role="owner"):
    name = "u" + uuid.uuid4().hex[:8]
    add_user(server, login(server, "admin", ADMIN_PASSWORD), name, role)
    return name


def login_post(server, username, password, headers=None, query=""):
    """One login through the form, as a browser posts it: (response, the session)."""
    client = requests.Session()
    client.headers.update(headers or {})
    token = csrf_token(client.get(server.portal + "/login").text)
    response = client.post(
        server.portal + "/login" + query,
        allow_redirects=False,
        data={"csrf_token": token, "username": username, "password": password},
    )
    return response, client


# ----- defect 2: an owner cannot take another owner's traffic -----
@pytest.fixture
def backends():
    servers = [start_backend(name) for name in ("alice", "bob")]
    yield servers
    for backend in servers:
        backend.shutdown()
        backend.server_close()


def test_an_owner_cannot_take_the_traffic_of_another_owners_api(portal, backends):
    alice, bob = new_user(portal), new_user(portal)
    alices, bobs = backends

    def as_(who, method, path, **kwargs):
        return mgmt_as(portal, who, method, path, **kwargs)

    created = as_(alice, "POST", "/apis/_import/definition", json=proxy_api([url(alices)], path="/api"))
    assert created.status_code == 201, created.text
    alice_api = created.json()["id"]
    assert as_(alice, "POST", f"/apis/{alice_api}/_start").status_code == 204
    portal.wait_serving(alice_api, 1)

    def takeover(path, host=None):
        d = proxy_api([url(bobs)], path=path)
        if host:
            d["listeners"][0]["paths"][0]["host"] = host
        return d

    for path, host in (
        ("/api/admin", None),
        ("/api", "127.0.0.1"),
        ("/api/admin", "127.0.0.1"),
        ("/", None),
        ("/api/./admin/", None),
    ):
        refused = as_(bob, "POST", "/apis/_import/definition", json=takeover(path, host))
        assert refused.status_code == 409, (path, host, refused.text)
        message = refused.json()["message"]
        assert "Proxy /api" in message and alice in message, message
        assert refused.json()["errors"][0]["field"] == "listeners.paths"
    assert as_(bob, "POST", "/apis/_import/definition", json=takeover("/api")).status_code == 409  # the same path

    # Only whole segments nest: /ap and /apix are other paths. An owner may nest paths of their own APIs.
    mine = {path: as_(bob, "POST", "/apis/_import/definition", json=takeover(path)) for path in ("/ap", "/apix")}
    assert all(r.status_code == 201 and r.json()["warnings"] == [] for r in mine.values()), mine
    nested = as_(alice, "POST", "/apis/_import/definition", json=proxy_api([url(alices)], path="/api/v2"))
    assert nested.status_code == 201 and nested.json()["warnings"] == [], nested.text
    bob_api = mine["/apix"].json()["id"]

    # Edit: the management API's replace, and the portal's General tab (nothing saved).
    replaced = as_(bob, "PUT", f"/apis/{bob_api}/_import/definition", json=takeover("/api/admin"))
    assert replaced.status_code == 409 and "Proxy /api" in replaced.json()["message"], replaced.text
    browser = login(portal, bob)
    general = post_form(
        browser,
        portal,
        f"/apis/{bob_api}/general",
        {"name": "Proxy /apix", "version": "1", "description": "", "path.0": "/api/admin", "host.0": ""},
    )
    assert general.status_code == 409, general.text
    assert "overlaps the context path /api of the API &#39;Proxy /api&#39;" in general.text
    assert re.search(r'id="path\.0"[^>]* aria-invalid="true"', general.text)
    assert as_(bob, "GET", f"/apis/{bob_api}").json()["listeners"][0]["paths"] == [{"path": "/apix"}]

    # Create in the wizard: the path is refused on its step, no API is made.
    before = len(as_(bob, "GET", "/apis").json()["data"])
    wizard = create_in_portal(portal, browser, name="Takeover", path="/api/admin")
    assert wizard.status_code == 400 and "overlaps the context path /api" in wizard.text, wizard.text
    assert len(as_(bob, "GET", "/apis").json()["data"]) == before

    # Alice's clients still reach Alice's backend, on every path under /api.
    for path in ("/api/admin/users", "/api", "/api/x"):
        got = requests.get(portal.gateway + path, headers={"Host": "127.0.0.1"}, timeout=10)
        assert got.status_code == 200 and got.json()["backend"] == "alice", (path, got.text)

    # An admin may, and is told what it does.
    admin = as_("admin", "POST", "/apis/_import/definition", json=takeover("/api/admin"), password=ADMIN_PASSWORD)
    assert admin.status_code == 201, admin.text
    [warning] = admin.json()["warnings"]
    assert "overlaps the context path /api of the API 'Proxy /api'" in warning and alice in warning


def test_an_admin_editing_paths_in_the_portal_sees_the_takeover_warning(portal, backends):
    alice = new_user(portal)
    created = mgmt_as(
        portal, alice, "POST", "/apis/_import/definition", json=proxy_api([url(backends[0])], path="/shop")
    )
    assert created.status_code == 201
    admin_api = portal.import_api(proxy_api([url(backends[1])], path="/elsewhere"))
    browser = login(portal, "admin", ADMIN_PASSWORD)
    saved = post_form(
        browser,
        portal,
        f"/apis/{admin_api}/general",
        {"name": "Admin's", "version": "1", "description": "", "path.0": "/shop/basket", "host.0": ""},
    )
    assert saved.status_code == 302, saved.text
    page = browser.get(urljoin(portal.portal, saved.headers["Location"])).text
    assert 'class="flash warning"' in page and "overlaps the context path /shop of the API" in page
    assert "You may, as an admin" in page


# ----- defect 3: no cross-site request rides on cached Basic credentials -----
ATTACK = """<!doctype html><title>Win a prize</title>
<form method="post" action="{action}"></form>
<script>document.forms[0].submit()</script>"""


@pytest.fixture
def attacker(tmp_path):
    """A site of another origin (localhost, not 127.0.0.1: another site, too) serving `tmp_path`."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.folder = tmp_path
    httpd.origin = f"http://localhost:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def api_state(server, api_id):
    return server.mgmt("GET", f"/apis/{api_id}").json()["state"]


@pytest.mark.browser
def test_a_page_of_another_site_cannot_use_the_browsers_basic_credentials(portal, attacker):
    from support.browser import expect, launched_chromium

    api_id = portal.deploy_api(mock_api(path="/csrf-" + uuid.uuid4().hex[:6]))
    api_url = portal.portal + MGMT + f"/apis/{api_id}"
    (attacker.folder / "form.html").write_text(ATTACK.format(action=api_url + "/_stop"))
    (attacker.folder / "blank.html").write_text("<!doctype html><title>blank</title>")

    with launched_chromium() as browser:
        # The browser holds the admin's Basic credentials for the portal and sends them with every
        # request there, as one that was once asked for them does. (Chromium sends its cached ones
        # only to a Basic challenge, which the portal no longer gives browsers: checked below.)
        context = browser.new_context()
        basic = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        context.route(
            portal.portal + "/**",
            lambda route: route.continue_(headers=dict(route.request.headers, authorization=basic)),
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        assert page.goto(api_url).status == 200  # they work: a read is served

        with page.expect_response(lambda r: r.url.endswith("/_stop")) as stop:
            page.goto(attacker.origin + "/form.html", wait_until="commit")  # the form posts at once
        assert stop.value.status == 403
        expect(page.locator("body")).to_contain_text("this request came from a page of another site")
        assert api_state(portal, api_id) == "STARTED"

        page.goto(attacker.origin + "/blank.html")
        for script in (
            "url => fetch(url, {method: 'POST', credentials: 'include', mode: 'no-cors'})",
            "url => fetch(url, {method: 'POST', credentials: 'include', mode: 'no-cors', "
            "body: '{}', headers: {'Content-Type': 'text/plain'}})",
        ):
            with page.expect_response(lambda r: r.url.endswith("/_stop")) as stop:
                page.evaluate(script, api_url + "/_stop")
            assert stop.value.status == 403, script
        assert api_state(portal, api_id) == "STARTED"

        # Without credentials, a browser is not asked for Basic ones (it would cache them).
        anonymous = browser.new_context().new_page()
        refused = anonymous.goto(portal.portal + MGMT + "/apis")
        assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")

    # Scripts and command-line clients keep working unchanged.
    assert requests.get(portal.portal + MGMT + "/apis", timeout=10).headers["WWW-Authenticate"].startswith("Basic")
    assert portal.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
    if shutil.which("curl"):
        started = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                f"admin:{ADMIN_PASSWORD}",
                "-X",
                "POST",
                api_url + "/_start",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert started.stdout == "204", started
        assert api_state(portal, api_id) == "STARTED"


def test_state_changing_management_calls_refuse_browser_markers(portal):
    api_id = portal.import_api(mock_api(path="/markers-" + uuid.uuid4().hex[:6]))
    start = f"/apis/{api_id}/_start"
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {"Content-Type": "text/plain"},
    ):
        refused = portal.mgmt("POST", start, headers=headers, data=b"")
        assert refused.status_code == 403 and "Refused" in refused.json()["message"], (headers, refused.text)
    assert api_state(portal, api_id) == "STOPPED"
    own = {"Origin": portal.portal, "Sec-Fetch-Site": "same-origin"}
    assert portal.mgmt("POST", start, headers=own).status_code == 204
    assert portal.mgmt("GET", f"/apis/{api_id}", headers={"Origin": "http://evil.example"}).status_code == 200


# ----- defect 7: a success clears the user name's failures, not the address's -----
def test_logging_in_to_ones_own_account_does_not_reset_the_address_limit(portal):
    attacker, where = new_user(portal, "viewer"), address()

    def guess_four_names():
        for _ in range(4):
            guess, _ = login_post(portal, "victim" + uuid.uuid4().hex[:6], "guess", where)
            assert guess.status_code == 200 and "Wrong user name or password" in guess.text

    for _ in range(4):  # 4 guesses at other names, then a login to their own account
        guess_four_names()
        assert login_post(portal, attacker, PASSWORD, where)[0].status_code == 302
    guess_four_names()  # the 20th failure from this address, the limit
    locked, _ = login_post(portal, attacker, PASSWORD, where)
    assert locked.status_code == 429 and "Too many failed logins" in locked.text
    elsewhere, _ = login_post(portal, attacker, PASSWORD, address())
    assert elsewhere.status_code == 302  # the name itself is not locked


def test_a_success_clears_the_user_names_failures(portal):
    user = new_user(portal, "viewer")
    for _ in range(2):
        for _ in range(4):  # one under the name's limit of 5
            assert login_post(portal, user, "wrong", address())[0].status_code == 200
        assert login_post(portal, user, PASSWORD, address())[0].status_code == 302


# ----- defect 8: no open redirect after login -----
@pytest.mark.parametrize(
    "query",
    [
        "?next=/%09/evil.com",
        "?next=//evil.com",
        "?next=/%5Cevil.com",
        "?next=/%5C/evil.com",
        "?next=%5C%5Cevil.com",
        "?next=%20//evil.com",
        "?next=/%0d%0aSet-Cookie:%20x=1",
        "?next=https://evil.com/",
        "?next=/%0a/evil.com",
        "?next=%09/%09/evil.com",
        "?next=/%00/evil.com",
        "?next=javascript:alert(1)",
    ],
)
def test_the_redirect_after_login_stays_on_the_portal(portal, query):
    user = new_user(portal, "viewer")
    response, _ = login_post(portal, user, PASSWORD, address(), query)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location, location
    assert urlsplit(urljoin(portal.portal + "/login", location)).netloc == urlsplit(portal.portal).netloc


def test_a_local_next_is_still_followed(portal):
    user = new_user(portal, "viewer")
    response, client = login_post(portal, user, PASSWORD, address(), "?next=/tokens%3Fx%3D1")
    assert response.headers["Location"] == "/tokens?x=1"
    assert client.get(portal.portal + response.headers["Location"]).status_code == 200


# ----- defect 11: user names are not told by timing -----
def test_an_unknown_user_name_answers_as_slowly_as_a_wrong_password(portal):
    known = new_user(portal, "viewer")

    def median_seconds(names):
        times = []
        for name in names:
            client = requests.Session()
            token = csrf_token(client.get(portal.portal + "/login").text)
            begun = time.perf_counter()
            response = client.post(
                portal.portal + "/login",
                headers=address(),
                allow_redirects=False,
                data={"csrf_token": token, "username": name, "password": "not it"},
            )
            times.append(time.perf_counter() - begun)
            assert response.status_code == 200 and "Wrong user name or password" in response.text
        return statistics.median(times)

    wrong_password = median_seconds([known] * 5)  # the name's limit is 5: each of them still checks
    unknown = median_seconds(["nobody" + uuid.uuid4().hex[:6] for _ in range(5)])
    assert unknown >= 0.5 * wrong_password, (unknown, wrong_password)


# ----- defect 12: deeply nested JSON; the session cookie's Secure flag -----
def test_json_nested_100000_deep_is_a_400(portal):
    for body in (
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        json.dumps(dict(mock_api(path="/deep"), extra=json.loads("[" * 150 + "]" * 150))),
    ):
        refused = portal.mgmt(
            "POST", "/apis/_import/definition", data=body, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 400, refused.text[:300]
        assert "nests deeper than 100 levels" in refused.json()["message"]
    assert portal.mgmt("POST", "/apis/_import/definition", json=mock_api(path="/deep")).status_code == 201
    assert "Traceback" not in portal.log


def session_cookie(server, headers=None):
    response = requests.get(server.portal + "/login", headers=headers or {}, timeout=10)
    return next(
        value
        for name, value in response.headers.items()
        if name.lower() == "set-cookie" and value.startswith("session=")
    )


def secure(cookie):
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_the_session_cookie_is_secure_over_https_behind_a_trusted_proxy(portal, start_server):
    assert secure(session_cookie(portal, {"X-Forwarded-Proto": "https"}))
    assert not secure(session_cookie(portal, {"X-Forwarded-Proto": "http"}))
    assert not secure(session_cookie(portal))
    untrusting = start_server()  # no GATEHOUSE_TRUSTED_PROXIES: anyone could send the header
    assert not secure(session_cookie(untrusting, {"X-Forwarded-Proto": "https"}))
    always = start_server(GATEHOUSE_SECURE_COOKIES="true")
    assert secure(session_cookie(always))
    never = start_server(GATEHOUSE_SECURE_COOKIES="false", GATEHOUSE_TRUSTED_PROXIES=PROXY)
    assert not secure(session_cookie(never, {"X-Forwarded-Proto": "https"}))
    with pytest.raises(RuntimeError, match="GATEHOUSE_SECURE_COOKIES is 'sometimes': use auto, true, false"):
        start_server(GATEHOUSE_SECURE_COOKIES="sometimes")
