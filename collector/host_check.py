"""Which `Host` values the collector's HTTP endpoints answer: loopback names only, unless configured otherwise.

DNS rebinding: a web page the user visits can point its own domain at 127.0.0.1 and have the browser send requests
to the local receiver or read API under that name. The `Host` header still carries the page's domain, so refusing
every name that is not loopback (localhost, 127.0.0.0/8, ::1) or explicitly allowed (`--allowed-hosts`) closes
that door, before the body is read and before anything is stored.

The gRPC receiver cannot make this check (grpcio gives neither handlers nor interceptors the `:authority`) and needs
none: browsers speak HTTP/2 only over TLS, so whatever a page makes them send to the plain-text gRPC port is
HTTP/1.1, which grpc's transport answers with no HTTP response at all (docs/decisions/2026-12-07-grpc-authority.md).
"""

from __future__ import annotations

import ipaddress
from typing import Awaitable, Callable, Iterable

from aiohttp import web

ANY_HOST = "*"
_WILDCARD_BINDS = {"", "0.0.0.0", "::"}


def host_name(header: str) -> str:
    """'Example.com:4318' -> 'example.com'; '[::1]:4318' -> '::1'; '127.0.0.1' -> '127.0.0.1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts(configured: Iterable[str], bind_hosts: Iterable[str] = ()) -> frozenset[str]:
    """The names answered besides loopback: the configured ones, and addresses the collector was told to bind
    (a user who binds 192.0.2.7 means to be reached as 192.0.2.7; a wildcard bind names no host)."""
    names = {host_name(name) if name != ANY_HOST else ANY_HOST for name in configured if name.strip()}
    names.update(host_name(host) for host in bind_hosts if host not in _WILDCARD_BINDS)
    return frozenset(names)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request with this `Host` header is answered. Browsers always send Host; a client that sends none
    (HTTP/1.0) is not a browser being rebound."""
    if header is None or ANY_HOST in allowed:
        return True
    name = host_name(header)
    return is_loopback(name) or name in allowed


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_check_middleware(allowed: frozenset[str]):
    """aiohttp middleware answering 403 to requests whose Host is neither loopback nor allowed."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Host")
        if not host_allowed(header, allowed):
            return web.json_response(
                {"error": f"Host {header!r} is not a local name: this endpoint answers localhost, 127.0.0.1 and "
                          "[::1] (add names with --allowed-hosts or $TRACEKIT_ALLOWED_HOSTS)"},
                status=403)
        return await handler(request)

    return check_host
