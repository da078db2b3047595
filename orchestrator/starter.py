"""`python -m orchestrator new NAME`: a commented starting scenario that runs and passes as written.

The case is the simplest deterministic reset: the server closes a socket that
still holds unread data, so its kernel sends RST instead of FIN. Every field is
explained where it stands, so the file teaches the format while it runs.
"""
from __future__ import annotations

import os
from pathlib import Path

from .catalog import PROJECT_DIR
from .errors import OutputError
from .schema import SCHEMA_FILE

STARTER = """\
# yaml-language-server: $schema={schema}
#
# A scenario of your own. Run it:   python -m orchestrator run {file}
# Editors with the YAML language server complete and check this file from the schema above.
# Only `hosts` and `steps` are required; the id is the file's name unless you give `id:`.

title: Closing a socket with unread data sends RST, not FIN    # optional (default: the id)
claim: >-                          # optional: what someone says happens; the page weighs it against the capture
  A server that closes a connection without reading everything the client
  sent resets it, and the client's next recv fails with ECONNRESET.

hosts: [client, router, server]    # from compose.yaml; the router sits between client and server
capture: [client, server]          # tcpdump sidecars (default: every host)

steps:                             # peer-agent calls, in order; each waits for its answer unless background: true
  - {{host: server, call: listen, sock: l, port: 8080}}
  - {{host: client, call: connect, sock: c, to: "server:8080"}}
  - {{host: server, call: accept, sock: l, as: s}}
  - {{host: client, call: send, sock: c, bytes: 100}}                      # one 100-byte segment
  - {{host: server, call: recv, sock: s, bytes: 10, exact: true}}          # returns once it arrived; 90 stay unread
  - {{host: server, call: close, sock: s, note: 90 bytes are still unread}}
  - {{host: client, call: recv, sock: c}}

expect:
  packets:                         # per capture point, in order (others may come between unless exact: true)
    client:
      sequence:
        - client > server S
        - server > client S. ack=1
        - client > server P. seq=1 len=100
        - server > client R. seq=1 ack=101     # seq/ack relative to the initial sequence numbers
      absent: ["server > client F."]           # no FIN: the kernel aborted the connection
    server:
      sequence:
        - client > server P. len=100 dir=in
        - server > client R. seq=1 ack=101 dir=out
  app:                             # what each host's calls returned, in order
    server:
      - {{call: close, sock: s, errno: ok}}
    client:
      - {{call: recv, sock: c, errno: ECONNRESET}}
  counters:                        # kernel counter deltas over the run (nstat names)
    server: {{TcpExtTCPAbortOnClose: 1}}
  reasons:                         # why each host's TCP sent its RSTs, in the kernel's words (tcp:tcp_send_reset)
    server: [TCP_ABORT_ON_CLOSE]   # tcp_close found unread data
    client: []                     # the client's TCP sends none
"""


def starter_path(name: str) -> Path:
    """NAME, or NAME.yaml when it has no YAML suffix."""
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")


def write_starter(name: str) -> Path:
    """Write the starting scenario; an existing file is never overwritten."""
    path = starter_path(name)
    if path.exists():
        raise OutputError(f"{path} already exists", "choose another name, or remove it first")
    folder = path.resolve().parent
    inside = PROJECT_DIR in (folder, *folder.parents)
    schema = os.path.relpath(SCHEMA_FILE, folder) if inside else SCHEMA_FILE.as_uri()
    try:
        with path.open("x") as out:
            out.write(STARTER.format(schema=schema, file=path))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", "choose another folder") from None
    return path
