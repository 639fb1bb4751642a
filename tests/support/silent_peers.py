"""Connections that connect and never send a byte, re-opened as soon as the server closes one.

Run as a process of its own, so its reconnect loop does not slow the test's fake Asterisk::

    python -m tests.support.silent_peers HOST PORT COUNT

It prints ``open N`` once COUNT connections are established, then ``reopened N`` every second
(how many it had to re-open since the start), until it is terminated.
"""
from __future__ import annotations

import errno
import selectors
import socket
import sys
import time


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(code, "connect failed")
    return sock


def hold(host: str, port: int, count: int) -> None:
    address = (host, port)
    selector = selectors.DefaultSelector()
    for _ in range(count):
        selector.register(_connect(address), selectors.EVENT_READ)
    print(f"open {count}", flush=True)
    reopened, last_report = 0, time.monotonic()
    while True:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                continue  # the server said something: stay silent, stay connected
            selector.unregister(sock)
            sock.close()
            try:
                selector.register(_connect(address), selectors.EVENT_READ)
                reopened += 1
            except OSError:
                time.sleep(0.01)
        now = time.monotonic()
        if now - last_report >= 1.0:
            print(f"reopened {reopened}", flush=True)
            last_report = now


if __name__ == "__main__":
    hold(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
