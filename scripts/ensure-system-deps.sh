#!/usr/bin/env bash
# Make sure the system packages the simulated board needs are installed:
#   - OpenSSH's sshd (the board's server) and ssh-keygen
#   - a system python3 with venv (the board's own Python, separate from the host venv)
#   - iproute2 and nftables for boards in network namespaces (tests, fleets)
# Installs Debian packages when we are root; otherwise says what to run.
set -euo pipefail
missing=()
{ [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1; } || missing+=(openssh-server)
{ command -v ssh-keygen && command -v ssh; } >/dev/null 2>&1 || missing+=(openssh-client)  # ansible uses OpenSSH
[ -x /usr/bin/time ] || missing+=(time)  # bench/profiler.py: `/usr/bin/time -v` peak RSS
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
# network-namespace boards (fleets, lossy links): ip/tc and nft
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "edgeship: installing ${missing[*]} (for the simulated board)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "edgeship: missing system packages for the simulated board; install them: sudo apt-get install ${missing[*]}" >&2
exit 1
