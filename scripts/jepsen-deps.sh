#!/usr/bin/env bash
# Installs what `make jepsen` needs for its network faults: iproute2 (ip netns,
# veth, bridge, tc netem) and nftables. Without root the harness runs only the
# process and cluster faults, and says so.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "jepsen-deps: not root; missing ${need[*]}: network faults will be skipped" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${need[@]}"
