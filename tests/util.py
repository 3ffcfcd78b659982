"""Helpers for tests that wait on something outside the test: a broker, a service, a browser."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Page

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None | Literal[False]], timeout_s: float, what: str, interval: float = 0.2
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy; return that.

    Raises AssertionError naming ``what`` (and the last value seen) when ``timeout_s`` passes first.
    The time it took is printed: pytest shows it when the test fails later.
    """
    t0 = time.monotonic()
    while True:
        got = condition()
        waited = time.monotonic() - t0
        if got:
            print(f"{time.strftime('%H:%M:%S')} {what}: {waited:.1f} s")
            return got
        if waited > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {got!r:.300})")
        time.sleep(interval)


def raw_ws_handshake(port: int, path: str, cookie: str) -> socket.socket:
    """A websocket client on 127.0.0.1 that completes the handshake and then never reads (with a
    small receive window, so the server's sends back up at once)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, f"handshake refused: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def dismiss_dialogs(page: Page, messages: list[str]) -> None:
    """Dismiss every dialog (alert, confirm) the page opens, noting its message in ``messages``."""

    def on_dialog(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)


def short_memory(folder: Path, n: int = 200, name: str = "questions.jsonl") -> Path:
    """A list of the first ``n`` shipped remembered questions (``folder / name``), for a knowledge
    base whose subject is not the memory: embedding all of them with a test's sequence cap costs the
    suite minutes."""
    from assist.knowledge.memory import MEMORY_PATH

    out = folder / name
    lines = MEMORY_PATH.read_text(encoding="utf-8").splitlines()[:n]
    out.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return out
