"""ip-filtering: refuses a request whose client address is in `blacklistIps`, or is not in
`whitelistIps` when one is given, with Gravitee's 403 (the blacklist wins when both hold it).

The client address is the one the gateway believes (`GATEHOUSE_TRUSTED_PROXIES`): an
X-Forwarded-For from any other peer is not. `matchAllFromXForwardedFor` checks every address of
X-Forwarded-For besides it, and every one must pass. Gravitee's whitelist lets a request by when any
one of them is listed; that reads an X-Forwarded-For a client writes itself, so here the extra
addresses can only refuse more, never let in what the client's own address would not.

Entries are IPs or CIDRs (IPv4 or IPv6; several may share an entry, comma-separated, as in
Gravitee), parsed once with the step; host names are refused at save, as Gatehouse does not look
them up (so `lookupIpVersion` is kept and unused). A CIDR holds its network and broadcast addresses
too: Gravitee's `isInclusiveHostCount` true, the only way its /32 matches."""

import ipaddress

from ..http import client_address
from ..messages import Interrupted
from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import evaluate, template

REFUSED = "Your IP ({}) or some proxies whereby your request pass through are not allowed to reach this resource."
LIST_HELP = (
    "IPs or CIDRs, IPv4 or IPv6 (10.0.0.0/8, 2001:db8::/32), one a line. Host names are refused:"
    " Gatehouse does not look them up."
)
LISTS = (
    Field("whitelistIps", "list", "Allowed IPs (CIDR allowed)", help=LIST_HELP + " Empty: every address not refused."),
    Field("blacklistIps", "list", "Refused IPs (CIDR allowed)", help=LIST_HELP + " Refused even when allowed above."),
)


def networks(entries):
    """The entries as networks; a ValueError names the first that is not an IP or a CIDR."""
    found = []
    for entry in entries or ():
        for item in (part.strip() for part in entry.split(",")):
            if not item:
                continue
            if "{#" in item:
                raise ValueError(f"{item!r}: expressions are not supported in address lists")
            try:
                found.append(ipaddress.ip_network(item, strict=False))  # 10.0.0.2/10 as Gravitee reads it
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR (host names are not looked up)") from None
    return tuple(found)


def _lists(values, settings):
    problems = {}
    for f in LISTS:
        try:
            networks(values.get(f.path))
        except ValueError as exc:
            problems[f.path] = f"{f.label}: {exc}"
    return problems


def _within(ip, nets):
    return ip is not None and any(ip in net for net in nets)


class IpFiltering:
    def __init__(self, configuration):
        self.whitelist = networks(configuration.get("whitelistIps"))
        self.blacklist = networks(configuration.get("blacklistIps"))
        self.every_hop = configuration["matchAllFromXForwardedFor"]
        custom = configuration["useCustomIPAddress"]
        self.custom = template(configuration.get("customIPAddress"), "customIPAddress") if custom else None

    def on_request(self, exchange):
        refused = [address for address in self._addresses(exchange) if not self._allowed(address)]
        if refused:
            raise Interrupted(403, REFUSED.format(", ".join(refused)))

    def _addresses(self, exchange):
        if self.custom is not None:
            text = evaluate(self.custom, exchange.context, "Unable to evaluate the custom IP address", None)
            # Nothing to check is no address: a whitelist refuses it, as Gravitee's does.
            return [part.strip() for part in text.split(",") if part.strip()] or [""]
        environ = exchange.request.environ
        client = client_address(environ)
        if not self.every_hop:
            return [client]
        hops = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        return list(dict.fromkeys([*hops, client]))

    def _allowed(self, address):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None  # listed nowhere: a blacklist lets it by, a whitelist refuses it, as in Gravitee
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped  # a dual-stack listener's ::ffff:a.b.c.d is the IPv4 client a.b.c.d
        if _within(ip, self.blacklist):
            return False
        return not self.whitelist or _within(ip, self.whitelist)


SPEC = PolicySpec(
    type="ip-filtering",
    label="IP filtering",
    policy=IpFiltering,
    phases=("request",),
    description="Allow or refuse requests by the client's IP address (IPs and CIDRs).",
    configuration=Settings(
        fields=(
            Field(
                "matchAllFromXForwardedFor",
                "boolean",
                "Check every address of X-Forwarded-For",
                default=False,
                help="Each must pass, besides the client's own address (which trusted proxies alone may forward).",
            ),
            *LISTS,
            Field("useCustomIPAddress", "boolean", "Check a custom IP address instead", default=False),
            Field(
                "customIPAddress",
                "expression",
                "Custom IP address",
                required=True,
                when=("useCustomIPAddress", (True,)),
                help="May hold {#...}; several comma-separated, each must pass. Whoever writes what it reads"
                " (a header, say) chooses the address checked.",
            ),
            Field(
                "lookupIpVersion",
                "enum",
                "Host look-up IP version",
                default="ALL",
                choices=("ALL", "IPV4", "IPV6"),
                help="For host names, which Gatehouse does not look up: kept, not used.",
            ),
        ),
        checks=(_lists,),
    ),
)
