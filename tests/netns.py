"""Worker "hosts" for tests: network namespaces of the test's own, each joined to the root
namespace by a veth pair, reaching PostgreSQL and Redis through a relay over that link.

PostgreSQL and Redis listen on loopback only, and are shared with other test sessions, so
they are not reconfigured: a `Relay` in the test process listens on the root end of each
link (10.231.X.<4i+1>) and forwards to 127.0.0.1. A worker started under `host.prefix`
(`ip netns exec <ns>`) is told DATABASE_URL and REDIS_URL at that address (`host.env`).

`host.cut()` takes the root end of the link down: packets are dropped silently, in both
directions, and nobody is told, like a pulled cable or a partitioned switch. The worker's
connections hang (no reset, no error), and so do the relay's: it cannot forward what never
arrives, and it keeps its own connections to the servers open, as a real partition would
(the servers see nothing). `host.restore()` brings the link back and TCP carries on where it
stopped. Needs root and iproute2; without them `hosts()` fails with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

LOOPBACK = "127.0.0.1"
RELAY_CHUNK = 65536


class NetnsUnavailable(RuntimeError):
    """`ip` refused: this machine cannot give the test namespaces of its own."""


def ip(*args: str) -> str:
    """Run `ip <args>`; a refusal fails the test with ip's own words, never a skip."""
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    except FileNotFoundError as exc:
        raise NetnsUnavailable(f"`ip` (iproute2) is not installed: {exc}") from None
    if result.returncode != 0:
        raise NetnsUnavailable(
            f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}; "
            "the multi-host test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip netns`"
        )
    return result.stdout


class Relay:
    """Forwards `listen_host`:port to 127.0.0.1:port for each of `ports`, on an event loop
    thread of its own. Each accepted connection gets its own upstream connection; when
    either side closes, both are closed. No timeouts and no keepalives: over a cut link
    its connections stay open and silent, which is what the test wants to see survived."""

    def __init__(self, listen_host: str, ports: Sequence[int]) -> None:
        self.listen_host = listen_host
        self.ports = list(ports)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"relay-{listen_host}", daemon=True)
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        for port in self.ports:
            handler = functools.partial(self._relay, port)
            self._servers.append(await asyncio.start_server(handler, self.listen_host, port, reuse_address=True))

    async def _relay(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            writer.close()  # the server is down: the client sees a closed connection, as it would
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, writer), self._pipe(up_reader, writer, up_writer))

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, source_writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await source.read(RELAY_CHUNK):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for each in (sink, source_writer):  # the other direction's reader then sees EOF
                each.close()
                self._writers.discard(each)

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


@dataclass
class Host:
    """One worker host: a namespace and its link (root end `root_veth` at `root_ip`)."""

    netns: str
    root_veth: str
    ns_veth: str
    root_ip: str
    ns_ip: str
    relay: Relay | None = field(default=None, repr=False)

    @property
    def prefix(self) -> list[str]:
        """The command a process runs under to live on this host."""
        return ["ip", "netns", "exec", self.netns]

    def env(self) -> dict[str, str]:
        """DATABASE_URL (the test database) and REDIS_URL, both over this host's link."""
        db = settings.DATABASES["default"]
        return {
            "DATABASE_URL": f"postgresql://{db['USER']}@{self.root_ip}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": _with_host(settings.REDIS_URL, self.root_ip),
        }

    def cut(self) -> None:
        ip("link", "set", self.root_veth, "down")

    def restore(self) -> None:
        ip("link", "set", self.root_veth, "up")

    def owns(self, pid: int) -> bool:
        """Whether process `pid` lives in this host's namespace (`ip netns identify`)."""
        return ip("netns", "identify", str(pid)).split() == [self.netns]


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """`count` hosts, each with its relay running; all removed on the way out, however it goes."""
    made: list[Host] = []
    try:
        for index in range(count):
            host = _make_host(index)
            made.append(host)
            host.relay = Relay(host.root_ip, _server_ports())
            host.relay.start()
        yield made
    finally:
        for host in made:
            _remove_host(host)


def _make_host(index: int) -> Host:
    pid = os.getpid()
    subnet = f"10.231.{pid % 256}"  # a /30 per host; the pid keeps two sessions apart
    host = Host(
        netns=f"nomaflow-{pid}-{index}",
        root_veth=f"nf{pid}r{index}",  # interface names: at most 15 characters
        ns_veth=f"nf{pid}n{index}",
        root_ip=f"{subnet}.{4 * index + 1}",
        ns_ip=f"{subnet}.{4 * index + 2}",
    )
    ip("netns", "add", host.netns)
    ip("link", "add", host.root_veth, "type", "veth", "peer", "name", host.ns_veth)
    ip("link", "set", host.ns_veth, "netns", host.netns)
    ip("addr", "add", f"{host.root_ip}/30", "dev", host.root_veth)
    ip("link", "set", host.root_veth, "up")
    ip("-n", host.netns, "addr", "add", f"{host.ns_ip}/30", "dev", host.ns_veth)
    ip("-n", host.netns, "link", "set", host.ns_veth, "up")
    ip("-n", host.netns, "link", "set", "lo", "up")
    return host


def _remove_host(host: Host) -> None:
    """Best effort, each part on its own: one failure must not leave the others behind."""
    if host.relay is not None:
        host.relay.stop()
    for args in (["link", "del", host.root_veth], ["netns", "del", host.netns]):
        subprocess.run(["ip", *args], capture_output=True, timeout=15)


def _server_ports() -> list[int]:
    return [int(settings.DATABASES["default"]["PORT"] or 5432), urlsplit(settings.REDIS_URL).port or 6379]


def _with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username or parts.password:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc))
