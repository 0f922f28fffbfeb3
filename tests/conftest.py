"""Fixtures for every test folder."""

from __future__ import annotations

import socket

import pytest


def loopback_works(timeout: float = 2.0) -> str | None:
    """``None`` when a TCP connection to 127.0.0.1 goes through, else why not (a network
    namespace with the loopback interface down binds but never connects)."""
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            server.settimeout(timeout)
            with socket.create_connection(server.getsockname(), timeout=timeout):
                server.accept()[0].close()
    except OSError as exc:
        return f"cannot connect over the loopback interface ({exc or type(exc).__name__})"
    return None


@pytest.fixture(scope="session")
def needs_loopback() -> None:
    """Skip a test that rendezvous over TCP on 127.0.0.1 (torchrun, gloo) where the
    loopback interface is down, instead of letting it wait for a peer forever."""
    reason = loopback_works()
    if reason:
        pytest.skip(reason)
