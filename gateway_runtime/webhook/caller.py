"""The webhook caller: POSTs a message to one subscription's callback, with its headers and
credentials (basic, bearer token or an OAuth2 client-credentials token), through the outbound
HTTP client; callbacks resolving to private addresses are refused."""

import base64
import ipaddress
import json
import os
import socket
import time
from urllib.parse import urlencode, urlsplit

from ..http_client import ClientError, split_url
from ..messages import EndpointError
from ..outbound_http import outbound_client, outbound_proxy, ssl_context

SNIPPET = 200  # characters of a callback's answer kept in the log
ALLOW_PRIVATE = "GATEHOUSE_WEBHOOK_ALLOW_PRIVATE"
# Not a message's to set: they describe the call itself.
NOT_FORWARDED = frozenset(("host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"))


class Refused(Exception):
    """A callback URL this gateway will not call."""


TOKEN_ENDPOINTS = "OAuth2 token endpoints"


def check_callback(url, what="callbacks"):
    """Raise Refused when the URL is not http(s) or its host resolves to loopback, link-local,
    private or otherwise non-public addresses (unless GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true), so
    that subscribers cannot make the gateway probe the network it runs in."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"'{url}' is not an http:// or https:// URL")
    if os.environ.get(ALLOW_PRIVATE, "").lower() == "true":
        return
    try:
        infos = socket.getaddrinfo(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError):
        raise Refused(f"the host {parts.hostname} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        address = getattr(address, "ipv4_mapped", None) or address
        if not address.is_global or address.is_multicast:
            raise Refused(
                f"{parts.hostname} resolves to {address}, a loopback, link-local or private address: "
                f"{what} must be public (the gateway's administrator may set {ALLOW_PRIVATE}=true)"
            )


class Caller:
    """Calls one subscription's callback: its pool, headers and credentials."""

    def __init__(self, entry, settings):
        self.url = settings["callbackUrl"]
        self.origin, self.target = split_url(self.url)
        self.headers = {h["name"]: h["value"] for h in settings.get("headers", [])}
        self.auth = settings.get("auth") or {"type": "none"}
        ssl = settings.get("ssl") or {}
        context = ssl_context(ssl) if self.url.startswith("https") or self.auth["type"] == "oauth2" else None
        self.client = outbound_client(
            outbound_proxy(entry.config.get("proxy") or {}, self.url),
            context,
            connect_timeout=entry.connect_timeout,
            read_timeout=entry.read_timeout,
            max_connections=entry.concurrency,
        )
        self.token = None  # (OAuth2 access token, monotonic expiry)

    def post(self, message):
        """(status, answer snippet); raises EndpointError when the callback cannot be reached."""
        check_callback(self.url)  # again at each call: what a name resolves to may change
        headers = {
            name: ", ".join(values) for name, values in message.headers.items() if name.lower() not in NOT_FORWARDED
        }
        headers.update(self.headers)
        headers.update(self._credentials())
        try:
            response = self.client.request(self.origin, "POST", self.target, headers, message.content)
            answer = response.read()
        except ClientError as exc:
            raise EndpointError(f"the callback {self.origin.authority} cannot be reached: {exc}") from None
        if response.status == 401:
            self.token = None  # the token may have been revoked: fetch a new one next time
        return response.status, answer[: SNIPPET * 4].decode("utf-8", "replace")[:SNIPPET]

    def _credentials(self):
        kind = self.auth["type"]
        if kind == "basic":
            basic = self.auth["basic"]
            return {"Authorization": basic_credentials(basic["username"], basic["password"])}
        if kind == "token":
            return {"Authorization": f"Bearer {self.auth['token']['value']}"}
        if kind == "oauth2":
            if self.token is None or time.monotonic() >= self.token[1]:
                self.token = self._fetch_token(self.auth["oauth2"])
            return {"Authorization": f"Bearer {self.token[0]}"}
        return {}

    def _fetch_token(self, oauth2):
        """An access token by the client-credentials grant (RFC 6749, 4.4): client authentication
        by HTTP Basic, as the RFC asks servers to support."""
        check_callback(oauth2["endpoint"], TOKEN_ENDPOINTS)
        form = {"grant_type": "client_credentials"}
        if oauth2.get("scopes"):
            form["scope"] = " ".join(oauth2["scopes"])
        headers = {
            "Authorization": basic_credentials(oauth2["clientId"], oauth2["clientSecret"]),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        origin, target = split_url(oauth2["endpoint"])
        try:
            response = self.client.request(origin, "POST", target, headers, urlencode(form).encode())
            answer = json.loads(response.read())
            token = answer["access_token"]
        except (ClientError, ValueError, KeyError, TypeError):
            raise EndpointError(f"no access token from {oauth2['endpoint']}") from None
        # Renewed a little before it expires, so that no call carries a token expiring on the way.
        lifetime = float(answer.get("expires_in") or 300) * 0.9
        return token, time.monotonic() + lifetime

    def close(self):
        self.client.close()


def basic_credentials(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
