"""Helpers for the tests that start TensorFlow clusters on loopback in subprocesses."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports the OS had free a moment ago (a server may still take one first: rare)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports
