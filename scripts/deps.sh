#!/usr/bin/env bash
# Installs the Debian packages the tests need, if missing (run as root, or
# with sudo available). Test servers and tools come from Debian only.
#   python3-tooz  OpenStack tooz, to prove our ring and records match its own
set -euo pipefail
need=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
