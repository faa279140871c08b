#!/usr/bin/env bash
# Make sure OpenSSH's sshd (the simulated board's server) is installed.
# Installs Debian's openssh-server when we are root; otherwise says what to run.
set -euo pipefail
if [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "edgeship: installing openssh-server (the simulated board's sshd)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
  exit 0
fi
echo "edgeship: sshd is missing; install it first: sudo apt-get install openssh-server" >&2
exit 1
