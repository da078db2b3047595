#!/bin/sh
# Lab host start: apply the role's network setup, then hand over to the peer agent.
#   RSTLAB_ROUTES    "PREFIX via GATEWAY[; ...]": routes through the router
#   RSTLAB_FIREWALL  "drop-closed": the Windows-like policy; SYNs to ports
#                    without a listener are dropped silently (no RST, no ICMP)
#   RSTLAB_HOST      the host's name in the agent's reports
set -eu
if [ -n "${RSTLAB_ROUTES:-}" ]; then
  echo "$RSTLAB_ROUTES" | tr ';' '\n' | while read -r route; do
    [ -z "$route" ] || ip route replace $route
  done
fi
if [ "${RSTLAB_FIREWALL:-}" = "drop-closed" ]; then
  iptables -A INPUT -i lo -j ACCEPT
  iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  # a SYN is accepted only when a listening socket exists for it
  iptables -A INPUT -p tcp --syn -m socket --nowildcard -j ACCEPT
  iptables -A INPUT -p icmp -j ACCEPT
  iptables -P INPUT DROP
  iptables -A OUTPUT -p icmp --icmp-type destination-unreachable -j DROP
fi
exec python3 /opt/rstlab/rstlab_peer.py agent --host "${RSTLAB_HOST:-$(hostname)}"
