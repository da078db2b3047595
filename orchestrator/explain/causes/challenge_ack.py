"""challenge-ack: a client that lost a connection the server still holds connects again from the same port.

Wire signature: the client's SYN on a four-tuple the server has ESTABLISHED
is answered not with a SYN/ACK but with a bare ACK whose acknowledgment
number has nothing to do with the SYN (RFC 5961 §4: the challenge ACK
carries the old connection's rcv_nxt). The client, in SYN_SENT, finds the
ACK unacceptable and answers with a bare RST whose seq is that ACK's ack
number. That RST is in window for the old connection, so the server drops
it; the client's SYN, retried, then succeeds.

Apart from its neighbours: peer-restart's RST answers data or an ACK of an
established connection; here the segment answered is the server's ACK to a
fresh SYN, and no SYN/ACK came before the RST.

References: RFC 5961 §4 (blind reset attack using the SYN bit);
net/ipv4/tcp_input.c tcp_validate_incoming (tcp_send_challenge_ack) and
tcp_rcv_synsent_state_process (reset_and_undo: SK_RST_REASON_TCP_INVALID_ACK_SEQUENCE);
SCENARIOS.md challenge-ack.
"""
from __future__ import annotations

from ...connections import SEQ_MOD
from ..context import Context
from ..facts import Facts
from ..verdict import Finding

ID = "challenge-ack"
FAMILIES = frozenset({"no-socket"})
TELL = ("`nstat TcpExtTCPChallengeACK TcpExtTCPSYNChallenge` on the server; `ss -tn` on the server "
        "showing the old connection ESTABLISHED while the client reconnects from the same port")
ZEEK = "RSTO, history SaRhA (the SYN, the challenge ACK, the client's RST, then the retried handshake)"


def check(f: Facts, ctx: Context) -> Finding | None:
    syn = next((p for p in f.xs if p.is_first_syn), None)
    ack = f.answered
    if f.x_role != "client" or syn is None or ack is None or f.rst.has_ack:
        return None
    if not ack.is_bare_ack or ack.time < syn.time or any(p.is_synack for p in f.ys):
        return None
    if ack.ack == (syn.seq + 1) & SEQ_MOD:
        return None   # an ACK of this SYN would be a (broken) handshake, not a challenge
    found = Finding(ID, f"{f.y_text} answered {f.x_text}'s SYN with a bare ACK for another sequence space "
                        "(a challenge ACK: it still holds an older connection on these ports), and "
                        f"{f.x_text} answered that with RST", TELL, decided=True)
    found.add(syn, "a new SYN on a four-tuple the server still has ESTABLISHED")
    found.add(ack, "not a SYN/ACK: the challenge ACK (RFC 5961 §4), ack = the old connection's next byte")
    found.add(f.rst, "RST with seq = the challenge's ack: the client, in SYN_SENT, refuses it")
    found.sentence = (f"{f.x_text} had lost a connection that {f.y_text} still held and connected again "
                      "from the same port: the server answered the SYN with a challenge ACK (RFC 5961), "
                      "the client's RST to it cleared the stale connection, and the client's retried SYN "
                      "can then succeed.")
    return found
