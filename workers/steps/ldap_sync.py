"""`ldap_sync`: copy directory entries into a SQL table, through a paged LDAP search.

op_kwargs:
    connector     an `ldap` connector (url ldap://host:port or ldaps://; options bind_dn,
                  password, start_tls, ca_file)
    base_dn       where to search; `scope` is `sub` (default), `one` or `base`. A
                  `{{ params.x }}` in it is escaped as one RDN value (`,` `=` `+` …)
    filter        an LDAP filter, default `(objectClass=*)`. A `{{ params.x }}` in it is
                  escaped (RFC 4515: `*` `(` `)` `\\` NUL become `\\2a` …), and so are the
                  values of `filter_params` that `{name}` placeholders take, so a run param
                  can never change the filter's shape: `(uid={{ params.who }})` with
                  who=`user1*` matches only an entry whose uid is `user1*`. A literal brace
                  is written `\\7b` / `\\7d`, as LDAP allows.
    filter_params {name: value}, values are strings or numbers
    attributes    {ldap attribute: column}, e.g. {"uid": "username", "mail": "email"};
                  the pseudo-attribute `dn` is the entry's DN
    target        a postgres or sqlite connector; `table` (optionally schema.table) is
                  created with text columns and `key` as primary key if it is missing
    key           the column that identifies a row (one of the mapped columns)
    mode          `overwrite` (the table's rows replaced) or `merge` (upsert on `key`;
                  rows of entries no longer found are kept)
    page_size     entries per LDAP page and per write batch, default 500

Values: a multi-valued attribute gives its first value (in the server's order); a
missing one gives NULL; a value that is not UTF-8 (jpegPhoto, objectGUID) is stored
base64-encoded. Entries without a value for `key` are skipped and counted.

Everything is written (ldap_sync_target.py) in one target transaction, so a reader sees
the old rows or the new ones, never a half-written or empty table. On cancel the LDAP socket is closed and
the target's statement canceled from the event loop, so the blocked thread fails at
once and the transaction rolls back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ldap3 import BASE, LEVEL, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.operation.search import parse_filter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from core.errors import StepConfigError
from jobs.templating import ParamRule

from .base import (
    ConnectorConfig,
    Context,
    StepCanceled,
    StepType,
    expect,
    reject_unknown,
    require,
    run_in_thread,
)
from .ldap_sync_target import Target, writer

OPTIONS = (
    "connector", "base_dn", "scope", "filter", "filter_params", "attributes",
    "target", "table", "key", "mode", "page_size",
)  # fmt: skip
MODES = ("overwrite", "merge")
SCOPES = {"sub": SUBTREE, "one": LEVEL, "base": BASE}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")  # a name or an OID
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PROGRESS_INTERVAL_S = 2.0
TIMEOUT_S = 30  # connect and per-response timeout; a cancel does not wait for it


@dataclass(frozen=True)
class SyncSpec:
    connector: str
    base_dn: str
    scope: str
    filter: str
    attributes: dict[str, str]
    target: str
    table: str
    key: str
    mode: str
    page_size: int


def escape_filter_value(value: str) -> str:
    """RFC 4515 escaping, plus the braces: a param's text never becomes a `{name}` placeholder."""
    return escape_filter_chars(value).replace("{", "\\7b").replace("}", "\\7d")


class LdapSyncStep(StepType):
    """Sync LDAP entries (paged search) into a postgres or sqlite table."""

    type_name = "ldap_sync"
    connector_fields = {"connector": ("ldap",), "target": ("postgres", "sqlite")}
    # A param is one value inside the filter or the DN, never more of their syntax.
    param_rules = {"filter": ParamRule(escape=escape_filter_value), "base_dn": ParamRule(escape=escape_rdn)}

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        spec(op_kwargs)

    def summary(self, op_kwargs: dict[str, Any]) -> str:
        return " · ".join(f"{key}={op_kwargs.get(key, '?')}" for key in ("connector", "mode", "table"))

    async def execute(self, ctx: Context) -> None:
        sync = _Sync(ctx, spec(ctx.op_kwargs))
        # Shielded, so the cancel reaches us while the thread still runs (run_in_thread
        # alone would first wait for it): abort() makes its blocking call fail now.
        work = asyncio.ensure_future(run_in_thread(sync.run))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            sync.abort()
            with contextlib.suppress(BaseException):  # it rolls back and returns; a second cancel stops the wait
                await asyncio.shield(work)
            raise


def spec(op_kwargs: dict[str, Any]) -> SyncSpec:
    """Check op_kwargs; raise StepConfigError naming the first bad field."""
    reject_unknown(op_kwargs, "ldap_sync", OPTIONS)
    require(op_kwargs, "connector", str, "the name of an ldap connector")
    require(op_kwargs, "target", str, "the name of a postgres or sqlite connector")
    attributes = _attributes(op_kwargs)
    key = require(op_kwargs, "key", str, "the column that identifies a row")
    if key not in attributes.values():
        raise StepConfigError("key", f'"{key}" must be one of the mapped columns ({", ".join(attributes.values())})')
    mode = require(op_kwargs, "mode", str, "overwrite or merge")
    if mode not in MODES:
        raise StepConfigError("mode", f'"{mode}" is not a mode of ldap_sync (use overwrite or merge)')
    scope = expect(op_kwargs, "scope", str, "sub, one or base") or "sub"
    if scope not in SCOPES:
        raise StepConfigError("scope", f'"{scope}" is not a search scope (use sub, one or base)')
    page_size = expect(op_kwargs, "page_size", int, "an integer")
    page_size = 500 if page_size is None else page_size
    if not 1 <= page_size <= 10000:
        raise StepConfigError("page_size", f"must be between 1 and 10000, got {page_size}")
    return SyncSpec(
        connector=op_kwargs["connector"], base_dn=_base_dn(op_kwargs), scope=scope, filter=search_filter(op_kwargs),
        attributes=attributes, target=op_kwargs["target"], table=_table(op_kwargs), key=key, mode=mode,
        page_size=page_size,
    )  # fmt: skip


def search_filter(op_kwargs: dict[str, Any]) -> str:
    """`filter` with each `{name}` replaced by the escaped value of filter_params[name]."""
    template = expect(op_kwargs, "filter", str, "an LDAP filter string") or "(objectClass=*)"
    values = expect(op_kwargs, "filter_params", dict, "an object of {name: value}") or {}
    for name, value in values.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise StepConfigError("filter_params", f"{name}: expected a string or a number, got {value!r:.60}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(values) or "none"
            raise StepConfigError("filter", f"{{{name}}} has no value in filter_params (known: {known})")
        return escape_filter_value(str(values[name]))

    rendered = PLACEHOLDER.sub(substitute, template)
    try:
        parse_filter(rendered, None, auto_escape=False, auto_encode=True, validator=None, check_names=False)
    except LDAPException as exc:
        raise StepConfigError("filter", f'"{rendered:.200}" is not a valid LDAP filter ({exc})') from None
    return rendered


def _attributes(op_kwargs: dict[str, Any]) -> dict[str, str]:
    hint = 'an object of {ldap attribute: column}, e.g. {"uid": "username"}'
    attributes = require(op_kwargs, "attributes", dict, hint)
    if not attributes:
        raise StepConfigError("attributes", f"must map at least one attribute ({hint})")
    for attribute, column in attributes.items():
        if not ATTRIBUTE.match(attribute):
            raise StepConfigError("attributes", f'"{attribute:.60}" is not an LDAP attribute name')
        if not isinstance(column, str) or not IDENTIFIER.match(column):
            raise StepConfigError(
                "attributes", f"{attribute}: column {column!r:.60} must be letters, digits and _ (not first digit)"
            )
    if len(set(attributes.values())) != len(attributes):
        raise StepConfigError("attributes", "two attributes map to the same column")
    return attributes


def _base_dn(op_kwargs: dict[str, Any]) -> str:
    base_dn = require(op_kwargs, "base_dn", str, 'a DN such as "ou=people,dc=example,dc=org"')
    try:
        parse_dn(base_dn)
    except LDAPInvalidDnError:
        raise StepConfigError("base_dn", f'"{base_dn:.200}" is not a valid DN') from None
    return base_dn


def _table(op_kwargs: dict[str, Any]) -> str:
    table = require(op_kwargs, "table", str, "a table name, optionally schema.table")
    parts = table.split(".")
    if len(parts) > 2 or not all(IDENTIFIER.match(part) for part in parts):
        raise StepConfigError("table", f'"{table:.60}" must be a name or schema.name of letters, digits and _')
    return table


def first_value(values: list[bytes]) -> str | None:
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(values[0]).decode("ascii")


class _Sync:
    """One sync, run in a thread; `abort()` is called from the event loop on cancel."""

    def __init__(self, ctx: Context, spec: SyncSpec) -> None:
        self.ctx, self.spec = ctx, spec
        self.source = ctx.connector(spec.connector)
        self.writer = writer(
            ctx.connector(spec.target), Target(spec.table, list(spec.attributes.values()), spec.key, spec.mode)
        )
        self.ldap: Connection | None = None
        self.aborted = threading.Event()

    def run(self) -> None:
        self.ctx.log.debug(f"filter: {self.spec.filter}")
        try:
            self.writer.open()
            self._connect()
            count, skipped = self._copy()
            self.writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self.writer.rollback()
            raise
        finally:
            self.writer.close()
            self._close_ldap()
        if skipped:
            self.ctx.log.warning(f"{skipped} entries without a value for {self.spec.key} skipped")
        self.ctx.log.info(f"synced {count} entries into {self.spec.table} ({self.spec.mode})")

    def _connect(self) -> None:
        self.ctx.log.debug(f"connecting to {self.source.name}")
        self.ldap = _connection(self.source)
        self.ldap.open()
        # abort() sets the flag, then closes the socket it finds; we set the socket (open),
        # then look at the flag: either side sees the other, so no blocking call is missed.
        self._check()
        if self.source.options.get("start_tls"):
            self.ldap.start_tls()
        self.ldap.bind()

    def _copy(self) -> tuple[int, int]:
        count = skipped = 0
        last_line = started = time.monotonic()
        for batch, batch_skipped in self._batches():
            self._check()
            self.writer.write(batch)
            count, skipped = count + len(batch), skipped + batch_skipped
            now = time.monotonic()
            line = f"{count} entries so far ({count / max(now - started, 1e-6):.0f}/s)"
            if now - last_line >= PROGRESS_INTERVAL_S:
                self.ctx.log.info(line)
                last_line = now
            else:
                self.ctx.log.debug(line)
        return count, skipped

    def _batches(self) -> Iterator[tuple[list[tuple[str | None, ...]], int]]:
        assert self.ldap is not None
        columns = list(self.spec.attributes)
        wanted = [attribute for attribute in columns if attribute.lower() != "dn"] or ["1.1"]
        entries = self.ldap.extend.standard.paged_search(
            self.spec.base_dn, self.spec.filter, SCOPES[self.spec.scope], attributes=wanted,
            paged_size=self.spec.page_size, generator=True,
        )  # fmt: skip
        key_index = list(self.spec.attributes.values()).index(self.spec.key)
        batch: list[tuple[str | None, ...]] = []
        skipped = 0
        for entry in entries:
            if entry.get("type") != "searchResEntry":
                continue  # referrals
            raw = {name.lower(): values for name, values in entry["raw_attributes"].items()}
            row = tuple(entry["dn"] if a.lower() == "dn" else first_value(raw.get(a.lower(), [])) for a in columns)
            if row[key_index] is None:
                skipped += 1
                continue
            batch.append(row)
            if len(batch) >= self.spec.page_size:
                yield batch, skipped
                batch, skipped = [], 0
        if batch or skipped:
            yield batch, skipped

    def _check(self) -> None:
        if self.aborted.is_set():
            raise StepCanceled(f"step {self.ctx.step} was canceled")
        self.ctx.check_canceled()

    def abort(self) -> None:
        """From the event loop: make the thread's blocking LDAP or SQL call fail now."""
        self.aborted.set()
        sock = getattr(self.ldap, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a recv() in the thread returns at once
        self.writer.interrupt()

    def _close_ldap(self) -> None:
        if self.ldap is not None:
            with contextlib.suppress(Exception):
                self.ldap.unbind()


def _connection(connector: ConnectorConfig) -> Connection:
    """An unopened ldap3 connection: ldaps:// and StartTLS verify the server's certificate."""
    options = connector.options
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=options.get("ca_file") or None)
    server = Server(connector.url, get_info=NONE, tls=tls, connect_timeout=TIMEOUT_S)
    return Connection(
        server, user=options.get("bind_dn") or None, password=options.get("password") or None,
        receive_timeout=TIMEOUT_S, raise_exceptions=True, read_only=True,
    )  # fmt: skip
