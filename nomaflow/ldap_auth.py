"""Sign-in with directory credentials (ldap3), on when LDAP_SERVER_URI is set.

Login: refuse what cannot be a user name or a password (filter metacharacters, NUL, an
empty password, which LDAP would treat as an *unauthenticated* bind that "succeeds"),
find the user's entry with the service account (the name escaped too), bind as that DN
with the password, then make the Django roles match the directory: each configured group
(LDAP_GROUP_VIEWER / _OPERATOR / _EDITOR) the user is a member of gives that role, and a
role no longer held is removed. With group sync on (LDAP_GROUP_BASE_DN set), a user who
holds no role is refused, and `is_staff` (the admin site) follows the editor role: editing
jobs and connectors is the only thing the admin is for that a viewer or an operator may
not already do on the site (/nomaflow/login/ signs every role in). With it off, roles
and `is_staff` are left to the admin.

A local account with a usable password is never taken over by a directory entry of the
same name: ModelBackend signs it in, this backend leaves it alone.
"""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import HttpRequest
from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidCredentialsResult
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from core.roles import EDITOR, OPERATOR, ROLES, VIEWER

# Letters, digits and . _ - @ only: no filter metacharacter ( ) * \ NUL, no DN syntax.
logger = logging.getLogger(__name__)
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,149}$")
TIMEOUT_S = 10


class LDAPBackend(ModelBackend):
    """Authenticate against the directory; `get_user` and permissions are ModelBackend's."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if not settings.LDAP_SERVER_URI or not acceptable(username, password):
            return None
        assert username is not None and password is not None
        try:
            found = _directory_user(username, password)
        except LDAPException as exc:  # the directory is down or the service account is refused
            logger.warning("LDAP login of %s failed: %s", username, exc)
            return None
        if found is None:
            return None
        attributes, roles = found
        user = _sync_user(attributes, roles)
        return user if user is not None and self.user_can_authenticate(user) else None


def acceptable(username: str | None, password: str | None) -> bool:
    return bool(username and USERNAME.match(username) and password and "\x00" not in password)


def _server() -> Server:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.LDAP_CA_FILE or None)
    return Server(settings.LDAP_SERVER_URI, get_info=NONE, tls=tls, connect_timeout=TIMEOUT_S)


def _connection(user: str | None, password: str | None) -> Connection:
    conn = Connection(_server(), user=user, password=password, receive_timeout=TIMEOUT_S, raise_exceptions=True)
    conn.open()
    if settings.LDAP_START_TLS:
        conn.start_tls()
    conn.bind()
    return conn


def _directory_user(username: str, password: str) -> tuple[dict[str, Any], set[str] | None] | None:
    """(attributes, roles or None when group sync is off) if the credentials are good."""
    attr = settings.LDAP_USER_ATTR
    service = _connection(settings.LDAP_BIND_DN or None, settings.LDAP_BIND_PASSWORD or None)
    try:
        service.search(
            settings.LDAP_USER_BASE_DN, f"({attr}={escape_filter_chars(username)})", SUBTREE,
            attributes=[attr, "givenName", "sn", "mail"], size_limit=2,
        )  # fmt: skip
        entries = [entry for entry in service.response if entry.get("type") == "searchResEntry"]
        if len(entries) != 1:
            return None  # unknown, or ambiguous: never guess which one
        dn = entries[0]["dn"]
        try:
            _connection(dn, password).unbind()
        except LDAPInvalidCredentialsResult:
            return None  # a wrong password
        roles = _roles(service, dn) if settings.LDAP_GROUP_BASE_DN else None
    finally:
        service.unbind()
    attributes = {name.lower(): values for name, values in entries[0]["attributes"].items()}
    attributes["username"] = attributes.get(attr.lower()) or [username]
    return attributes, roles


def _roles(service: Connection, dn: str) -> set[str]:
    """Roles whose configured group lists `dn` as a member (groupOfNames or groupOfUniqueNames)."""
    member = escape_filter_chars(dn)
    service.search(
        settings.LDAP_GROUP_BASE_DN, f"(|(member={member})(uniqueMember={member}))", SUBTREE, attributes=["1.1"]
    )
    held = {_normal(entry["dn"]) for entry in service.response if entry.get("type") == "searchResEntry"}
    groups = {
        VIEWER: settings.LDAP_GROUP_VIEWER,
        OPERATOR: settings.LDAP_GROUP_OPERATOR,
        EDITOR: settings.LDAP_GROUP_EDITOR,
    }
    return {role for role, group in groups.items() if group and _normal(group) in held}


def _normal(dn: str) -> str:
    """Compare DNs without case or spaces around separators (cn, ou and dc ignore case)."""
    return "".join(f"{attr}={value}{sep}" for attr, value, sep in parse_dn(dn, strip=True)).lower()


@transaction.atomic
def _sync_user(attributes: dict[str, Any], roles: set[str] | None) -> User | None:
    username = _first(attributes["username"])
    user = User.objects.select_for_update().filter(username=username).first()
    if user is not None and user.has_usable_password():
        return None  # a local account: ModelBackend's to sign in, not the directory's
    if user is None:
        if roles is not None and not roles:
            return None  # no nomaflow role in the directory: nothing to create
        user = User(username=username)
        user.set_unusable_password()
    user.first_name = _first(attributes.get("givenname"))[:150]
    user.last_name = _first(attributes.get("sn"))[:150]
    user.email = _first(attributes.get("mail"))[:254]
    if roles is not None:
        user.is_staff = EDITOR in roles
    user.save()
    if roles is not None:
        _set_roles(user, roles)
        if not roles:
            return None  # roles stripped above; the user may no longer sign in
    return user


def _set_roles(user: User, roles: set[str]) -> None:
    current = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if current - roles:
        user.groups.remove(*Group.objects.filter(name__in=current - roles))
    for name in roles - current:
        user.groups.add(Group.objects.get_or_create(name=name)[0])


def _first(values: Any) -> str:
    if isinstance(values, list):
        return str(values[0]) if values else ""
    return "" if values is None else str(values)
