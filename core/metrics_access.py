"""Who may read the metrics, on the web's /metrics and on a worker's or scheduler's port.

A request is let in when it carries `Authorization: Bearer <NOMAFLOW_METRICS_TOKEN>`, or
when it comes from a network of NOMAFLOW_METRICS_ALLOW (default: this host only). A
request with a wrong token is refused even from an allowed network: its sender means to
authenticate and should hear that it failed. Refusals are one line of plain text, never a
page, and never say what the token or the allowed networks are.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import NamedTuple

from django.conf import settings

CONTENT_TYPE = "text/plain; charset=utf-8"


class Refusal(NamedTuple):
    status: int
    reason: str
    body: str
    headers: dict[str, str]


UNAUTHORIZED = Refusal(
    401, "Unauthorized", "metrics: the bearer token is missing or wrong\n", {"WWW-Authenticate": "Bearer"}
)
FORBIDDEN = Refusal(
    403,
    "Forbidden",
    "metrics: this address may not read the metrics (NOMAFLOW_METRICS_ALLOW, NOMAFLOW_METRICS_TOKEN)\n",
    {},
)


def refusal(remote_addr: str, authorization: str) -> Refusal | None:
    """None if the request may read the metrics, else how to refuse it."""
    token = settings.NOMAFLOW_METRICS_TOKEN
    if authorization:
        scheme, _, given = authorization.partition(" ")
        valid = (
            bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
        )
        return None if valid else UNAUTHORIZED
    if address_allowed(remote_addr):
        return None
    return UNAUTHORIZED if token else FORBIDDEN


def address_allowed(remote_addr: str) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])  # an IPv6 zone is not part of the address
    except ValueError:
        return False  # no peer address (a Unix socket): only a token lets it in
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return any(address in network for network in settings.NOMAFLOW_METRICS_ALLOW)
