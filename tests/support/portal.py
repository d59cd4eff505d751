"""The portal as a browser without JavaScript sees it: log-ins, CSRF tokens, forms and pages."""

import html
import re

import requests

from support.gatehouse import ADMIN_PASSWORD, MGMT

PASSWORD = "correct horse battery"  # every user the tests add has it
TRUST = "security.ssl.trustStore."  # the prefixes of the store fields of a group's form
KEY = "security.ssl.keyStore."


def csrf_token(html):
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


class EndpointsPage:
    """A signed-in browser on an API's Backend services page, with what its forms need."""

    def __init__(self, server, api_id):
        self.browser = portal_login(server)
        page = self.browser.get(server.portal + f"/apis/{api_id}/endpoints")
        self.token = csrf_token(page.text)
        self.endpoint_id = re.search(r"/endpoints/(\d+)/edit", page.text).group(1)
        group_id = re.search(r'id="group-(\d+)"', page.text).group(1)
        self.refresh = server.portal + f"/apis/{api_id}/groups/{group_id}/_fields"


def field_error(page, name):
    """The error shown beside an input, which the input points at (after its help, if it has one)."""
    assert re.search(
        rf'id="{re.escape(name)}"[^>]*aria-invalid="true" aria-describedby="(?:[^"]* )?{re.escape(name)}-error"',
        page.text,
    ), f"{name} is not marked invalid"
    return html.unescape(re.search(rf'<p class="error" id="{re.escape(name)}-error">([^<]*)</p>', page.text).group(1))


def connector_fields(html):
    """The connector settings a form shows (their input names)."""
    return set(re.findall(r'name="((?:cfg|shared)\.[^"]+)"', html))


def portal_login(server):
    browser = requests.Session()
    page = browser.get(server.portal + "/login")
    assert page.status_code == 200
    token = csrf_token(page.text)
    refused = browser.post(server.portal + "/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert refused.status_code == 400 and "CSRF" in refused.text  # a form post without its token is refused
    wrong = browser.post(server.portal + "/login", data={"csrf_token": token, "username": "admin", "password": "x"})
    assert "Wrong user name or password" in wrong.text
    ok = browser.post(
        server.portal + "/login",
        data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD},
        allow_redirects=False,
    )
    assert ok.status_code == 302
    return browser


def create_in_portal(server, browser, **overrides):
    page = browser.get(server.portal + "/apis/new")
    form = {
        "csrf_token": csrf_token(page.text),
        "name": "Orders feed",
        "version": "2.1",
        "path": "/orders",
        "type": "message",
        "entrypoint.http-get": "on",
        "entrypoint.http-post": "on",
        "entrypoint.sse": "on",
        "entrypoint.websocket": "on",
        "ep.http-get.messagesLimitCount": "3",
        "ep.http-get.messagesLimitDurationMs": "2000",
        "ep.http-get.headersInPayload": "on",
        "ep.http-get.metadataInPayload": "on",
        "ep.sse.heartbeatIntervalInMs": "2000",
        "ep.websocket.publisher.enabled": "on",
        "ep.websocket.subscriber.enabled": "on",
        "endpoint_type": "mock",
        "cfg.messageInterval": "20",
        "cfg.messageContent": "order <created> & paid",
        "cfg.headers": "region: eu",
        "cfg.metadata": "source: demo",
    }
    form.update(overrides)
    return browser.post(server.portal + "/apis/new", data=form, allow_redirects=False)


def login(server, username, password=PASSWORD):
    """A session logged in to the portal, as a browser would be."""
    client = requests.Session()
    token = csrf_token(client.get(server.portal + "/login").text)
    response = client.post(
        server.portal + "/login",
        allow_redirects=False,
        data={"csrf_token": token, "username": username, "password": password},
    )
    assert response.status_code == 302, response.text
    return client


def post_form(client, server, path, data=None, **kwargs):
    """POST a portal form with the session's CSRF token (read from a page every session may see)."""
    token = csrf_token(client.get(server.portal + "/login").text)
    return client.post(
        server.portal + path, data={"csrf_token": token, **(data or {})}, allow_redirects=False, **kwargs
    )


def add_user(server, admin, username, role):
    response = post_form(admin, server, "/users", {"username": username, "role": role, "password": PASSWORD})
    assert response.status_code == 302, response.text


def user_id(server, admin, username):
    page = admin.get(server.portal + "/users").text
    return int(re.search(rf'<tr id="user-{re.escape(username)}">.*?/users/(\d+)"', page, re.S).group(1))


def mgmt_as(server, username, method, path, password=PASSWORD, **kwargs):
    return requests.request(method, server.portal + MGMT + path, auth=(username, password), timeout=30, **kwargs)


class GroupPage:
    """A signed-in browser on a group's edit page."""

    def __init__(self, server, api_id):
        self.server, self.api_id = server, api_id
        self.browser = portal_login(server)
        services = self.browser.get(server.portal + f"/apis/{api_id}/endpoints")
        self.group_id = re.search(r'id="group-(\d+)"', services.text).group(1)
        self.url = server.portal + f"/apis/{api_id}/groups/{self.group_id}/edit"
        assert f'href="/apis/{api_id}/groups/{self.group_id}/edit"' in services.text  # the group's Edit link
        self.page = self.browser.get(self.url)
        assert self.page.status_code == 200
        self.token = csrf_token(self.page.text)
        self.form_id = re.search(r'name="form_id" value="([^"]+)"', self.page.text).group(1)

    def fields(self, **form):
        """Input names of the shared configuration the HTMX partial shows for these choices."""
        partial = self.browser.post(
            self.server.portal + f"/apis/{self.api_id}/groups/{self.group_id}/_shared",
            data={"csrf_token": self.token, **form},
        )
        assert partial.status_code == 200 and 'class="connector-fields"' in partial.text
        return shown(partial.text)

    def save(self, **form):
        return self.browser.post(
            self.url,
            data={
                "csrf_token": self.token,
                "form_id": self.form_id,
                "group_name": "brokers",
                "load_balancer": "round-robin",
                **form,
            },
        )

    def shared(self, secrets=False):
        query = "?includeSecrets=true" if secrets else ""
        exported = self.server.mgmt("GET", f"/apis/{self.api_id}/_export/definition{query}").json()
        return exported["api"]["endpointGroups"][0]


def shown(html):
    return set(re.findall(r'name="shared\.([^"]+)"', html))


def field(name):
    return {f"shared.{key}": value for key, value in name.items()}
