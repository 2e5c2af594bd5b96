"""Where a connector url points: the destination a stored secret belongs to, and whether
it is nomaflow's own database.

Parsing only reads the url (urlsplit); nothing here rebuilds one, so no url is re-encoded.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from django.conf import settings

DEFAULT_PORTS = {"postgresql": "5432", "http": "80", "https": "443", "ldap": "389", "ldaps": "636"}
SCHEME_ALIASES = {"postgres": "postgresql"}
# libpq lets the query name the server too (`postgresql:///db?host=elsewhere`): a secret
# follows these as it follows the url's own host and port.
QUERY_TARGETS = ("host", "hostaddr", "port")


class Destination(NamedTuple):
    scheme: str
    hosts: tuple[str, ...]  # several for a libpq multi-host url
    port: str
    query: tuple[tuple[str, str], ...]  # QUERY_TARGETS given in the query


def destination(url: str) -> Destination:
    """Scheme, host(s), port (the scheme's default when absent) and libpq's query targets."""
    parts = urlsplit(url.strip())
    scheme = SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    hostports = [_host_port(item) for item in parts.netloc.rpartition("@")[2].split(",")]
    default = DEFAULT_PORTS.get(scheme, "")
    ports = {port or default for _, port in hostports}
    query = tuple(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in QUERY_TARGETS))
    return Destination(scheme, tuple(host for host, _ in hostports), ",".join(sorted(ports)), query)


def same_destination(url: str, other: str) -> bool:
    """True when both urls reach the same scheme, host and port (so a stored secret may stay)."""
    return destination(url) == destination(other)


def _host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):  # [::1]:5432
        host, _, rest = hostport[1:].partition("]")
        return host.lower(), rest.removeprefix(":")
    host, _, port = hostport.partition(":")
    return unquote(host).lower(), port


def is_own_database(url: str, *, resolve_names: bool = False) -> bool:
    """Whether a postgres url reaches nomaflow's own database (settings.DATABASES["default"]):
    same database name and port, and the same host or both on this machine. With
    `resolve_names` (the worker, about to connect anyway) host names are looked up too, so
    a DNS name pointing at the database host is caught."""
    own = settings.DATABASES["default"]
    target = _postgres_target(url)
    if "postgresql" not in own["ENGINE"] or target is None:
        return False
    servers, name = target
    own_host, own_port = str(own.get("HOST") or ""), str(own.get("PORT") or 5432)
    return name == own["NAME"] and any(
        port == own_port and _same_host(host, own_host, resolve_names) for host, port in servers
    )


def _postgres_target(url: str) -> tuple[list[tuple[str, str]], str] | None:
    """The (host, port) pairs libpq would try, and the database name; None if not postgres."""
    parts = urlsplit(url.strip())
    if SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower()) != "postgresql":
        return None
    given = dict(parse_qsl(parts.query, keep_blank_values=True))
    servers = [_host_port(item) for item in parts.netloc.rpartition("@")[2].split(",")]
    if given.get("host") or given.get("hostaddr"):
        servers = [(host.lower(), "") for host in (given.get("host") or given["hostaddr"]).split(",")]
    default_port = given.get("port") or os.environ.get("PGPORT", "5432")
    servers = [
        (host or os.environ.get("PGHOST", ""), given.get("port") or port or default_port) for host, port in servers
    ]
    name = (
        given.get("dbname") or unquote(parts.path.lstrip("/")) or _default_dbname(given.get("user") or parts.username)
    )
    return servers, name


def _default_dbname(username: str | None) -> str:
    """What libpq connects to when the url names no database: $PGDATABASE, else the user name."""
    user = unquote(username) if username else os.environ.get("PGUSER") or getpass.getuser()
    return os.environ.get("PGDATABASE") or user


def _same_host(host: str, own: str, resolve_names: bool) -> bool:
    if host == own.lower() or (_is_local(host) and _is_local(own)):
        return True
    if not resolve_names:
        return False
    mine = _addresses(own)
    return bool(mine & _addresses(host)) or (_is_local(own) and any(_is_local(a) for a in _addresses(host)))


def _is_local(host: str) -> bool:
    """The empty host and a socket directory (libpq's unix socket) are this machine too."""
    if host in ("", "localhost") or host.startswith("/"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return address.is_loopback or address.is_unspecified


def _addresses(host: str) -> set[str]:
    if not host or host.startswith("/"):
        return set()
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return set()
