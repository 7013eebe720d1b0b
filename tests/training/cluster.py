"""Helpers for the tests that start TensorFlow clusters on loopback in subprocesses."""

from __future__ import annotations

import socket
import subprocess

import pytest


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports the OS had free a moment ago (a server may still take one first: rare)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for a job; fail the test with its output's tail if it times out (then killed) or exits non-zero."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"{process.args[2:]} timed out after {timeout} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-4000:]
    return output
