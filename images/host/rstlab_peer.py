#!/usr/bin/env python3
"""RST Lab peer agent: holds TCP sockets by name and makes socket calls on command.

Standard library only; runs as the main process of every lab host container:

    python3 rstlab_peer.py agent --host NAME

Protocol (JSON lines; stdout carries protocol lines only, diagnostics go to stderr):

* At start: {"event": "ready", "host": NAME, "t": <time.time()>, "pid": PID}
* Command on stdin: {"id": 7, "call": "connect", "args": {...}}. Each command runs
  in its own thread, so a blocking call never holds up the others.
* Exactly one answer per command:
      {"id", "host", "call", "sock", "args", "start", "end",
       "ok", "result", "errno", "error"}
  "start"/"end" are time.time() taken immediately before the first and after the
  last syscall the command made (or around the whole command if it made none).
  "errno" is the kernel's errno name (errno.errorcode), "error" its text. A bad
  command (unknown call, missing or unknown args) answers ok=false, errno=null.
  Python-level socket timeouts are never used: sockets stay in blocking mode,
  so SO_RCVTIMEO/SO_SNDTIMEO and the kernel's own timers decide.
* {"call": "quit"} is answered, then the process exits at once with status 0,
  as it does on EOF on stdin and on SIGTERM. Sockets are not closed one by one:
  the kernel closes whatever is still open when the process exits.

Calls and args (defaults after "="); "sock" names a socket in the agent's table:
  socket      {sock}                    new unconnected IPv4 TCP socket
  setsockopt  {sock, option, value}     option: see SOCKOPTS below
  bind        {sock, port, addr="0.0.0.0"}  a fixed local port (SO_REUSEADDR) -> {"addr"}
  listen      {sock, port, addr="0.0.0.0", backlog=16}  -> {"addr"}
  accept      {sock, as}                stores the connection as "as" -> {"peer", "local"}
  connect     {sock, host, port, nonblocking=false, timeout=null} -> {"local", "peer"}
              nonblocking: O_NONBLOCK connect, poll for POLLOUT up to timeout s,
              then SO_ERROR; a poll timeout answers ok=false, errno=null,
              result "poll-timeout" and leaves the socket open.
  send        {sock, bytes, repeat=1, interval=0.0, byte="x", keep_going=false,
               sigpipe=false} -> list of per-send() records
  recv        {sock, bytes=65536, exact=false} -> {"received", "eof"}
  shutdown    {sock, how="RDWR"}        how: RD, WR or RDWR
  close       {sock}
  sleep       {seconds}
  shell       {cmd, timeout=30}         /bin/sh -c -> {"rc", "signal", "stdout", "stderr"}
  exec        {argv, default_sigpipe=false, timeout=30} -> same as shell
  counters    {}                        Tcp* and TcpExt* counters, named as nstat does
  reset       {phase}                   between scenarios (rstlab_pristine.py): "abort" closes every socket
                                        (RST, no FIN) -> {"aborted", "busy"}; "check" empties the caches a
                                        fresh host lacks, puts back iptables -> {"pristine", "why"}
  sockets     {}                        the table: {name: {"fd", "local", "peer"}}
  put_file    {path, data, mode=0o755}  write a file (base64 data) -> {"path", "bytes"}

Waiting for a kernel state (rstlab_wait.py; each takes timeout=10 and answers
{"waited": s, ...}, or ok=false with what was last seen):
  wait_socket    {sock=null, local_port, remote_port, state, recv_q, send_q, retransmits,
                  probes, count=1, gone=false}   rows of /proc/net/tcp; numbers are minimums
  wait_counter   {counter, value}       a counter of this namespace reaches value (counted from the
                                        host's last reset, on a new host from zero)
  wait_blocked   {sock}                 a thread is in a syscall on the socket (recv, accept began)
  wait_conntrack {src, dst, sport, dport, state, gone=false}   /proc/net/nf_conntrack
  quiet          {within}               answered at once: {"timers": sockets whose timer sends within
                                        `within` s, "processes": processes other than init and the agent,
                                        "may_owe_ack": sockets that may still send a delayed ACK}

One-shot writer (a C-like program for SIGPIPE scenarios):

    python3 rstlab_peer.py writer --host H --port P [--bytes 5000] [--count 50]
        [--interval 0.05] [--default-sigpipe] [--keep-going] [--gate FIFO]

connects (blocking), then makes `count` plain send() calls (no MSG_NOSIGNAL),
printing one JSON line per call; exits 0 at the end or at the first error
(unless --keep-going). With --default-sigpipe, SIGPIPE is at SIG_DFL, so a send
that gets EPIPE kills the process with signal 13, like a C program. Linux
reports the first send after a RST as ECONNRESET (no signal) and only later
ones as EPIPE, so being killed needs --keep-going. With --gate FIFO (made if
missing) every send after the first waits for one line on FIFO: the scenario
releases the writer step by step (`echo > FIFO`) instead of racing its clock.
"""
from __future__ import annotations

import base64
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable


class BadCommand(Exception):
    """The command cannot be carried out as given (answers errno=null)."""


class Reply:
    """A handler's answer when it is not simply ok=true with a result."""

    def __init__(self, result: Any, ok: bool, errno: str | None = None, error: str | None = None) -> None:
        self.result, self.ok, self.errno, self.error = result, ok, errno, error


class Clock:
    """Runs syscalls, keeping the start of the first and the end of the last."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.last = (0.0, 0.0)

    def __call__(self, fn: Callable, *args: Any) -> Any:
        t0 = time.time()
        try:
            return fn(*args)
        finally:
            t1 = time.time()
            self.last = (t0, t1)
            if self.start is None:
                self.start = t0
            self.end = t1


def errname(exc: OSError) -> str | None:
    """The kernel's name for an OSError's errno (EAI_* for resolver errors)."""
    if isinstance(exc, socket.gaierror):
        return next((n for n in dir(socket) if n.startswith("EAI_")
                     and getattr(socket, n) == exc.errno), None)
    return errno.errorcode.get(exc.errno) if exc.errno else None


def errtext(exc: OSError) -> str:
    return exc.strerror or str(exc)


def addr_of(getter: Callable) -> list | None:
    """getsockname/getpeername as [ip, port], or None when there is none."""
    try:
        return list(getter())[:2]
    except OSError:
        return None


class Table:
    """Sockets by name.

    Every socket ever created is also kept in `_keep`: a socket object that is
    garbage-collected closes its descriptor, which would put a FIN on the wire.
    """

    def __init__(self) -> None:
        self._socks: dict[str, socket.socket] = {}
        self._keep: list[socket.socket] = []
        self._lock = threading.Lock()

    def get(self, name: str) -> socket.socket:
        with self._lock:
            if name not in self._socks:
                raise BadCommand(f"no socket named {name!r}")
            return self._socks[name]

    def add(self, name: str, sock: socket.socket) -> None:
        with self._lock:
            self._keep.append(sock)
            if name in self._socks:
                raise BadCommand(f"socket name {name!r} already in use")
            self._socks[name] = sock

    def get_or_create(self, name: str) -> socket.socket:
        with self._lock:
            if name not in self._socks:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._keep.append(sock)
                self._socks[name] = sock
            return self._socks[name]

    def check_free(self, name: str) -> None:
        with self._lock:
            if name in self._socks:
                raise BadCommand(f"socket name {name!r} already in use")

    def pop(self, name: str) -> socket.socket:
        with self._lock:
            if name not in self._socks:
                raise BadCommand(f"no socket named {name!r}")
            return self._socks.pop(name)

    def snapshot(self) -> dict[str, socket.socket]:
        with self._lock:
            return dict(self._socks)

    def close_all(self, abort: bool = False) -> int:
        """Close every socket and forget every name (between scenarios: rstlab_pristine); with `abort`,
        an open connection ends with a RST (SO_LINGER {1, 0}). How many were still open."""
        with self._lock:
            still = [s for s in self._keep if s.fileno() >= 0]
            for sock in still:
                if abort:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _linger([1, 0]))
                    except OSError:
                        pass
                sock.close()
            self._socks.clear()
            self._keep.clear()
            return len(still)


TABLE = Table()


# ---------------------------------------------------------------- socket options

def _timeval(seconds: float) -> bytes:
    sec = int(seconds)
    return struct.pack("@ll", sec, int(round((seconds - sec) * 1_000_000)))


def _linger(value: list) -> bytes:
    onoff, seconds = value
    return struct.pack("@ii", int(onoff), int(seconds))


_SOL, _TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
SOCKOPTS: dict[str, tuple[int, int, Callable[[Any], Any]]] = {
    "SO_LINGER": (_SOL, socket.SO_LINGER, _linger),
    "SO_RCVTIMEO": (_SOL, socket.SO_RCVTIMEO, _timeval),
    "SO_SNDTIMEO": (_SOL, socket.SO_SNDTIMEO, _timeval),
    "SO_KEEPALIVE": (_SOL, socket.SO_KEEPALIVE, int),
    "SO_RCVBUF": (_SOL, socket.SO_RCVBUF, int),
    "SO_SNDBUF": (_SOL, socket.SO_SNDBUF, int),
    "SO_REUSEADDR": (_SOL, socket.SO_REUSEADDR, int),
    "TCP_NODELAY": (_TCP, socket.TCP_NODELAY, int),
    "TCP_KEEPIDLE": (_TCP, socket.TCP_KEEPIDLE, int),
    "TCP_KEEPINTVL": (_TCP, socket.TCP_KEEPINTVL, int),
    "TCP_KEEPCNT": (_TCP, socket.TCP_KEEPCNT, int),
    "TCP_USER_TIMEOUT": (_TCP, getattr(socket, "TCP_USER_TIMEOUT", 18), int),
    "TCP_SYNCNT": (_TCP, socket.TCP_SYNCNT, int),
    "TCP_LINGER2": (_TCP, socket.TCP_LINGER2, int),
    "TCP_QUICKACK": (_TCP, socket.TCP_QUICKACK, int),
}

SHUT = {"RD": socket.SHUT_RD, "WR": socket.SHUT_WR, "RDWR": socket.SHUT_RDWR}


# ---------------------------------------------------------------------- calls
# Each takes the command's Clock and its args as keyword arguments, so missing
# or unknown args fail as a TypeError (a bad command), never as a crash.

def call_socket(clock: Clock, *, sock: str) -> None:
    TABLE.add(sock, socket.socket(socket.AF_INET, socket.SOCK_STREAM))


def call_setsockopt(clock: Clock, *, sock: str, option: str, value: Any) -> None:
    if option not in SOCKOPTS:
        raise BadCommand(f"unknown option {option!r}; known: {', '.join(SOCKOPTS)}")
    level, name, encode = SOCKOPTS[option]
    s = TABLE.get(sock)
    clock(s.setsockopt, level, name, encode(value))


def call_bind(clock: Clock, *, sock: str, port: int, addr: str = "0.0.0.0") -> dict:
    s = TABLE.get_or_create(sock)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    clock(s.bind, (addr, int(port)))
    return {"addr": addr_of(s.getsockname)}


def call_listen(clock: Clock, *, sock: str, port: int, addr: str = "0.0.0.0",
                backlog: int = 16) -> dict:
    s = TABLE.get_or_create(sock)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    clock(s.bind, (addr, int(port)))
    clock(s.listen, int(backlog))
    return {"addr": addr_of(s.getsockname)}


def call_accept(clock: Clock, *, sock: str, as_: str) -> dict:
    listener = TABLE.get(sock)
    TABLE.check_free(as_)
    conn, _ = clock(listener.accept)
    TABLE.add(as_, conn)
    return {"peer": addr_of(conn.getpeername), "local": addr_of(conn.getsockname)}


def _connect_nonblocking(clock: Clock, s: socket.socket, addr: tuple,
                         timeout: float | None) -> Reply | None:
    s.setblocking(False)
    try:
        err = clock(s.connect_ex, addr)
        if err == errno.EINPROGRESS:
            poller = select.poll()
            poller.register(s, select.POLLOUT)
            ms = None if timeout is None else max(0, int(float(timeout) * 1000))
            if not clock(poller.poll, ms):
                return Reply("poll-timeout", False, None,
                             f"not connected after {timeout} s (socket left open)")
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return None
    finally:
        s.setblocking(True)


def call_connect(clock: Clock, *, sock: str, host: str, port: int,
                 nonblocking: bool = False, timeout: float | None = None) -> Any:
    addr = (socket.gethostbyname(host), int(port))
    s = TABLE.get_or_create(sock)
    if nonblocking:
        gave_up = _connect_nonblocking(clock, s, addr, timeout)
        if gave_up:
            return gave_up
    else:
        clock(s.connect, addr)  # blocking socket: one plain connect() syscall
    return {"local": addr_of(s.getsockname), "peer": addr_of(s.getpeername)}


def call_send(clock: Clock, *, sock: str, bytes: int, repeat: int = 1,
              interval: float = 0.0, byte: str = "x", keep_going: bool = False,
              sigpipe: bool = False) -> Reply:
    s = TABLE.get(sock)
    payload = byte.encode("latin-1") * int(bytes)
    flags = 0 if sigpipe else socket.MSG_NOSIGNAL
    records: list[dict] = []
    first: dict | None = None
    for i in range(int(repeat)):
        if i and interval:
            time.sleep(float(interval))
        try:
            sent = clock(s.send, payload, flags)
            rec = {"t": clock.last[0], "end": clock.last[1], "ok": True, "sent": sent}
        except OSError as exc:
            rec = {"t": clock.last[0], "end": clock.last[1], "ok": False,
                   "errno": errname(exc), "error": errtext(exc)}
            first = first or rec
        records.append(rec)
        if not rec["ok"] and not keep_going:
            break
    return Reply(records, records[-1]["ok"] if records else True,
                 first and first["errno"], first and first["error"])


def call_recv(clock: Clock, *, sock: str, bytes: int = 65536, exact: bool = False) -> Any:
    s = TABLE.get(sock)
    want, total, eof = int(bytes), 0, False
    while True:
        try:
            data = clock(s.recv, want - total if exact else want)
        except OSError as exc:
            if not total:
                raise
            return Reply({"received": total, "eof": False}, False, errname(exc), errtext(exc))
        total += len(data)
        eof = not data
        if not exact or eof or total >= want:
            return {"received": total, "eof": eof}


def call_shutdown(clock: Clock, *, sock: str, how: str = "RDWR") -> None:
    if how not in SHUT:
        raise BadCommand(f"how must be one of {', '.join(SHUT)}")
    clock(TABLE.get(sock).shutdown, SHUT[how])


def call_close(clock: Clock, *, sock: str) -> None:
    clock(TABLE.pop(sock).close)


def call_sleep(clock: Clock, *, seconds: float) -> None:
    time.sleep(float(seconds))


def _run(clock: Clock, argv: list, timeout: float, restore_signals: bool) -> Reply:
    """Runs a child with stdin on /dev/null (never the agent's command pipe)."""
    import subprocess   # here, not at the top: the agent starts with every host, and few scenarios run programs
    try:
        proc = clock(lambda: subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=float(timeout),
            restore_signals=restore_signals))
    except subprocess.TimeoutExpired as exc:
        result = {"rc": None, "signal": None, "stdout": _text(exc.stdout),
                  "stderr": _text(exc.stderr)}
        return Reply(result, False, None, f"killed after the {timeout} s timeout")
    rc = proc.returncode
    sig = signal.Signals(-rc).name if rc < 0 else None
    result = {"rc": rc, "signal": sig, "stdout": _text(proc.stdout),
              "stderr": _text(proc.stderr)}
    error = None if rc == 0 else (f"killed by {sig}" if sig else f"exit status {rc}")
    return Reply(result, rc == 0, None, error)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def call_shell(clock: Clock, *, cmd: str, timeout: float = 30) -> Reply:
    return _run(clock, ["/bin/sh", "-c", cmd], timeout, restore_signals=True)


def call_exec(clock: Clock, *, argv: list, default_sigpipe: bool = False,
              timeout: float = 30) -> Reply:
    if not isinstance(argv, list) or not argv:
        raise BadCommand("argv must be a non-empty list of strings")
    # restore_signals=False: the child inherits the agent's ignored SIGPIPE.
    return _run(clock, [str(a) for a in argv], timeout, restore_signals=bool(default_sigpipe))


def call_put_file(clock: Clock, *, path: str, data: str, mode: int = 0o755) -> dict:
    """Writes a file the scenario brought (base64 `data`), creating its folder."""
    content = base64.b64decode(data)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, int(mode))
    return {"path": path, "bytes": len(content)}


def _proc_counters(path: str, wanted: set[str]) -> dict[str, int]:
    """Header/value line pairs of /proc/net/{snmp,netstat} as nstat names them."""
    out: dict[str, int] = {}
    headers: dict[str, list[str]] = {}
    with open(path) as f:
        for line in f:
            prefix, _, rest = line.partition(":")
            if prefix not in wanted:
                continue
            if prefix not in headers:
                headers[prefix] = rest.split()
            else:
                out.update((prefix + k, int(v))
                           for k, v in zip(headers.pop(prefix), rest.split()))
    return out


def call_counters(clock: Clock) -> dict[str, int]:
    return {**_proc_counters("/proc/net/snmp", {"Tcp"}),
            **_proc_counters("/proc/net/netstat", {"TcpExt"})}


def call_sockets(clock: Clock) -> dict:
    return {name: {"fd": s.fileno(), "local": addr_of(s.getsockname),
                   "peer": addr_of(s.getpeername)}
            for name, s in TABLE.snapshot().items()}


def _waiting(wait: Callable[..., Any], clock: Clock, *args: Any, **kwargs: Any) -> Any:
    import rstlab_wait   # next to this file; loaded only by scenarios that wait
    try:
        return wait(rstlab_wait, clock, *args, **kwargs)
    except rstlab_wait.Failed as exc:
        return Reply(exc.result, False, None, str(exc))


def call_wait_socket(clock: Clock, *, sock: str | None = None, local_port: int | None = None,
                     remote_port: int | None = None, state: str | list | None = None,
                     recv_q: int | None = None, send_q: int | None = None, retransmits: int | None = None,
                     probes: int | None = None, count: int = 1, gone: bool = False,
                     timeout: float = 10.0) -> Any:
    inode = os.fstat(TABLE.get(sock).fileno()).st_ino if sock is not None else None
    return _waiting(lambda w, c: w.wait_socket(
        c, inode, local_port=local_port, remote_port=remote_port, state=state, recv_q=recv_q,
        send_q=send_q, retransmits=retransmits, probes=probes, count=count, gone=gone,
        timeout=timeout), clock)


ZERO: dict[str, int] = {}   # the counters when this host was last reset (a new host counts from zero)


def _counters_since_reset(clock: Clock) -> dict[str, int]:
    return {k: v - ZERO.get(k, 0) for k, v in call_counters(clock).items()}


def call_wait_counter(clock: Clock, *, counter: str, value: int, timeout: float = 10.0) -> Any:
    return _waiting(lambda w, c: w.wait_counter(c, lambda: _counters_since_reset(c), counter=counter,
                                                value=value, timeout=timeout), clock)


def call_wait_blocked(clock: Clock, *, sock: str, timeout: float = 10.0) -> Any:
    fd = TABLE.get(sock).fileno()
    return _waiting(lambda w, c: w.wait_blocked(c, fd, timeout=timeout), clock)


def call_wait_conntrack(clock: Clock, *, src: str | None = None, dst: str | None = None,
                        sport: int | None = None, dport: int | None = None, state: str | None = None,
                        gone: bool = False, timeout: float = 10.0) -> Any:
    return _waiting(lambda w, c: w.wait_conntrack(c, src=src, dst=dst, sport=sport, dport=dport,
                                                  state=state, gone=gone, timeout=timeout), clock)


def call_quiet(clock: Clock, *, within: float) -> dict:
    import rstlab_wait
    return rstlab_wait.quiet(float(within))


BASELINE: dict | None = None   # this host as it started (rstlab_pristine.baseline), when asked for


def call_reset(clock: Clock, *, phase: str) -> dict:
    """Between two scenarios on this host: "abort" its sockets, then "check" that it is as it was at
    start (after putting back what can be), or say why not (rstlab_pristine)."""
    import rstlab_pristine
    import rstlab_wait
    if phase == "abort":
        return rstlab_pristine.abort(TABLE)
    if phase != "check":
        raise BadCommand("phase must be abort or check")
    done = rstlab_pristine.reset(BASELINE, rstlab_wait.other_processes(os.getpid()))
    if done["pristine"]:   # the next scenario's wait_counter counts from here, as on a new host from zero
        ZERO.clear()
        ZERO.update(call_counters(clock))
    return done


CALLS: dict[str, Callable[..., Any]] = {
    "socket": call_socket,
    "setsockopt": call_setsockopt,
    "bind": call_bind,
    "listen": call_listen,
    "accept": call_accept,
    "connect": call_connect,
    "send": call_send,
    "recv": call_recv,
    "shutdown": call_shutdown,
    "close": call_close,
    "sleep": call_sleep,
    "shell": call_shell,
    "exec": call_exec,
    "counters": call_counters,
    "sockets": call_sockets,
    "quiet": call_quiet,
    "reset": call_reset,
    "put_file": call_put_file,
    "wait_socket": call_wait_socket,
    "wait_counter": call_wait_counter,
    "wait_blocked": call_wait_blocked,
    "wait_conntrack": call_wait_conntrack,
}


# ---------------------------------------------------------------------- agent

class Agent:
    def __init__(self, host: str) -> None:
        self.host = host
        self._out = threading.Lock()

    def emit(self, obj: dict) -> None:
        line = json.dumps(obj, default=str) + "\n"
        with self._out:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (OSError, ValueError):  # the orchestrator is gone
                os._exit(0)

    def answer(self, cmd: dict) -> dict:
        args = cmd.get("args")
        args = {} if args is None else args
        call = cmd.get("call")
        ans = {"id": cmd.get("id"), "host": self.host, "call": call,
               "sock": args.get("sock") if isinstance(args, dict) else None,
               "args": args, "start": None, "end": None, "ok": False,
               "result": None, "errno": None, "error": None}
        clock = Clock()
        t0 = time.time()
        try:
            if call not in CALLS:
                raise BadCommand(f"unknown call {call!r}; known: {', '.join(CALLS)}, quit")
            if not isinstance(args, dict):
                raise BadCommand("args must be an object")
            kwargs = {("as_" if k == "as" else k): v for k, v in args.items()}
            result = CALLS[call](clock, **kwargs)
            if isinstance(result, Reply):
                ans.update(ok=result.ok, result=result.result, errno=result.errno,
                           error=result.error)
            else:
                ans.update(ok=True, result=result)
        except OSError as exc:
            ans.update(errno=errname(exc), error=errtext(exc))
        except BadCommand as exc:
            ans["error"] = str(exc)
        except Exception as exc:  # bad args (TypeError, ValueError, ...)
            ans["error"] = f"{type(exc).__name__}: {exc}".replace("'as_'", "'as'")
        t1 = time.time()
        ans["start"] = clock.start if clock.start is not None else t0
        ans["end"] = clock.end if clock.end is not None else t1
        return ans

    def handle_line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            cmd = json.loads(text)
            if not isinstance(cmd, dict):
                raise ValueError("a command must be a JSON object")
        except ValueError as exc:
            self.emit({"id": None, "host": self.host, "call": None, "sock": None,
                       "args": None, "start": time.time(), "end": time.time(),
                       "ok": False, "result": None, "errno": None,
                       "error": f"bad command line: {exc}"})
            return
        if cmd.get("call") == "quit":
            now = time.time()
            self.emit({"id": cmd.get("id"), "host": self.host, "call": "quit",
                       "sock": None, "args": cmd.get("args"), "start": now, "end": now,
                       "ok": True, "result": None, "errno": None, "error": None})
            os._exit(0)
        threading.Thread(target=lambda: self.emit(self.answer(cmd)), daemon=True).start()

    def run(self) -> None:
        self.emit({"event": "ready", "host": self.host, "t": time.time(), "pid": os.getpid()})
        for raw in sys.stdin.buffer:
            self.handle_line(raw)
        os._exit(0)  # EOF: leave the sockets as they are; the kernel closes them


# --------------------------------------------------------------------- writer

def open_gate(path: str) -> Any:
    """The FIFO the scenario releases each send through, opened once for the whole run, read and write.

    Held open for writing too, it never reads as EOF, and lines written while the writer is busy wait
    in it. Opened anew per line it lost them both ways under load: an `echo` that had written the last
    line but not yet closed made the next open return at once and its read meet EOF (a send released
    with no line); one that came before the previous read end was closed had its line dropped with the
    pipe (the writer then waited for it until its timeout).
    """
    if not os.path.exists(path):
        os.mkfifo(path)
    return open(os.open(path, os.O_RDWR), encoding="utf-8")   # Linux: O_RDWR on a FIFO never blocks


def writer(opts: Any) -> int:
    if opts.default_sigpipe:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    def out(rec: dict) -> None:
        sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()  # before the next send, which may kill the process

    gate = open_gate(opts.gate) if opts.gate else None
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t0 = time.time()
    try:
        s.connect((socket.gethostbyname(opts.host), opts.port))
    except OSError as exc:
        out({"call": "connect", "t": t0, "end": time.time(), "ok": False,
             "errno": errname(exc), "error": errtext(exc)})
        return 0
    out({"call": "connect", "t": t0, "end": time.time(), "ok": True,
         "local": addr_of(s.getsockname), "peer": addr_of(s.getpeername)})
    payload = b"x" * opts.bytes
    for i in range(opts.count):
        if i and gate is not None:
            gate.readline()   # blocks until the scenario writes the next line
        elif i and opts.interval:
            time.sleep(opts.interval)
        t0 = time.time()
        try:
            sent = s.send(payload)  # no MSG_NOSIGNAL
        except OSError as exc:
            out({"call": "send", "t": t0, "end": time.time(), "ok": False,
                 "errno": errname(exc), "error": errtext(exc)})
            if not opts.keep_going:
                return 0
            continue
        out({"call": "send", "t": t0, "end": time.time(), "ok": True, "sent": sent})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[:2] == ["agent", "--host"]:
        # how every host starts it: skip argparse (with re, shutil and gettext, a third of the start-up)
        return serve(args[2])
    import argparse
    parser = argparse.ArgumentParser(description="RST Lab peer agent")
    sub = parser.add_subparsers(dest="mode", required=True)
    agent = sub.add_parser("agent", help="serve JSON commands on stdin/stdout")
    agent.add_argument("--host", required=True, help="this host's name in answers")
    w = sub.add_parser("writer", help="connect and write chunks, like a C program")
    w.add_argument("--host", required=True)
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--bytes", type=int, default=5000)
    w.add_argument("--count", type=int, default=50)
    w.add_argument("--interval", type=float, default=0.05)
    w.add_argument("--default-sigpipe", action="store_true")
    w.add_argument("--keep-going", action="store_true",
                   help="keep writing after an error (needed to be killed by SIGPIPE)")
    w.add_argument("--gate", default=None, metavar="FIFO",
                   help="before each send after the first, wait for a line on this FIFO")
    opts = parser.parse_args(args)
    return writer(opts) if opts.mode == "writer" else serve(opts.host)


def serve(host: str) -> int:
    global BASELINE
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if os.environ.get("RSTLAB_BASELINE") == "1":   # this host may be reused: remember it as it starts
        import rstlab_pristine
        try:
            BASELINE = rstlab_pristine.baseline()
        except (OSError, ValueError, IndexError, KeyError) as exc:   # then it is never reused
            print(f"no baseline: {exc}", file=sys.stderr)
    Agent(host).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
