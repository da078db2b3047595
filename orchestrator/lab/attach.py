"""A container's attached stdin/stdout/stderr, read by a thread as it arrives.

Attaching before the container starts misses nothing it writes, costs no exec
or log read, and works against a remote DOCKER_HOST. Without a TTY Docker
multiplexes stdout and stderr on the one socket (8-byte frame headers: stream,
three zero bytes, big-endian length); the reader thread splits the frames,
keeps stderr as text and hands stdout to `_on_stdout`, under a condition that
waiters block on.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any, Callable, TypeVar

from ..errors import LabRuntimeError

T = TypeVar("T")


class AttachedStream:
    """The attached streams of one container; subclasses say what the output means."""

    what = "the container"   # how errors name what runs in the container

    def __init__(self, api: Any, container_id: str, host: str, stdin: bool = False) -> None:
        self.host = host
        params = {"stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1}
        self._sock = api.attach_socket(container_id, params=params)
        self._raw: socket.socket = getattr(self._sock, "_sock", self._sock)
        self._cond = threading.Condition()
        self.stderr = ""
        self._closed = False
        self._reader = threading.Thread(target=self._read, name=f"attach-{host}", daemon=True)
        self._reader.start()

    # -- reading -------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            chunk = self._raw.recv(min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _read(self) -> None:
        try:
            while True:
                stream, size = struct.unpack(">BxxxL", self._recv_exact(8))
                data = self._recv_exact(size) if size else b""
                with self._cond:
                    if stream == 2:
                        self.stderr += data.decode(errors="replace")
                    else:
                        self._on_stdout(data)
                    self._cond.notify_all()
        except (EOFError, OSError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _on_stdout(self, data: bytes) -> None:
        """Called with the condition held, for every piece of stdout in order."""

    # -- waiting -------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """The container's output has ended (it exited, or the socket was closed)."""
        return self._closed

    def _wait(self, pick: Callable[[], T | None], timeout: float, what: str) -> T:
        """Block until `pick()` (called with the condition held) returns something other than None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = pick()
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if self._closed:
                    raise LabRuntimeError(f"{self.host}: {self.what} exited before {what.removeprefix('to ')}"
                                          f" ({self.stderr.strip()[-200:] or 'no message'})")
                if left <= 0:
                    raise LabRuntimeError(f"{self.host}: {self.what} took more than {timeout:g} s {what}")
                self._cond.wait(left)

    def detach(self) -> None:
        """Let go of the container without ending its stdin (no half-close: a container created with
        StdinOnce off keeps reading it, and the next client to attach writes to it)."""
        try:
            self._raw.close()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
