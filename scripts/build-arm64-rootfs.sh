#!/usr/bin/env bash
# Build (once) the Debian bookworm arm64 root filesystem of the emulated Raspberry Pi `sim-arm64`
# and print its path on stdout.
#
#   scripts/build-arm64-rootfs.sh            # build if missing, print the rootfs directory
#   scripts/build-arm64-rootfs.sh --check    # exit 0 (and print it) when it is built; no build
#   scripts/build-arm64-rootfs.sh --path     # print where it is (or would be); no build
#
# - Debian's own tools: mmdebstrap (arm64, variant apt), qemu-user-static + binfmt-support
#   (`update-binfmts --enable qemu-aarch64` mounts binfmt_misc), arch-test to prove that arm64
#   binaries run. Installed with apt-get when missing and we are root; otherwise says what to run.
# - Cached per machine under ${EDGESHIP_ARM64_CACHE:-~/.cache/edgeship/arm64-rootfs}/<key>/, the
#   key being the hash of its recipe below (suite, packages, hooks: change one -> a new rootfs;
#   editing comments or messages keeps the cache). Built into a temp
#   directory and renamed into place when complete: never half-written. ~7 min, ~300 MB.
# - Python 3.11 like Raspberry Pi OS Bookworm; the board's runtimes (onnxruntime, ai-edge-litert,
#   numpy) are NOT installed here: edgeship provisions them offline from a host-side wheelhouse.
set -euo pipefail
MIRROR=${EDGESHIP_ARM64_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# --- recipe (hashed into the cache key) ---
PACKAGES=python3,python3-venv,openssh-server,openssh-sftp-server,ca-certificates,procps
HOOKS=(
  'rm -f "$1"/etc/ssh/ssh_host_*'
  'mkdir -p "$1"/run/sshd "$1"/root/.ssh && chmod 700 "$1"/root/.ssh'
  'chroot "$1" python3 -c "import venv, ensurepip, sys; print(sys.version)"'
)
# --- end recipe ---
CACHE=${EDGESHIP_ARM64_CACHE:-${HOME}/.cache/edgeship/arm64-rootfs}
KEY=$(printf '%s\n' "$SUITE" "$PACKAGES" "${HOOKS[@]}" | sha256sum | cut -c1-12)
DEST="$CACHE/$SUITE-arm64-$KEY"

say() { echo "edgeship: $*" >&2; }

ensure_tools() {
  local missing=()
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
  command -v arch-test >/dev/null 2>&1 || missing+=(arch-test)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "the arm64 board needs Debian tools; install them: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]} (for the arm64 board)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_binfmt() {
  # Mounts /proc/sys/fs/binfmt_misc when needed; F flag (qemu-user-static) works inside chroots.
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || \
     ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    if [ "$(id -u)" -ne 0 ]; then
      say "arm64 emulation is not enabled; run: sudo update-binfmts --enable qemu-aarch64"
      exit 1
    fi
    update-binfmts --enable qemu-aarch64 >&2
  fi
  if ! arch-test arm64 >/dev/null 2>&1; then
    say "arm64 binaries do not run here even with qemu-aarch64 enabled (arch-test arm64 failed);" \
        "check /proc/sys/fs/binfmt_misc/qemu-aarch64"
    exit 1
  fi
}

built() { [ -x "$DEST/usr/bin/python3" ] && [ -e "$DEST/.edgeship-rootfs" ]; }
case "${1:-}" in
  --path) echo "$DEST"; exit 0 ;;
  --check) built && { echo "$DEST"; exit 0; }; exit 1 ;;
  "") ;;
  *) say "unknown option ${1}; use --path, --check or no option"; exit 2 ;;
esac

if built; then
  ensure_tools
  ensure_binfmt
  echo "$DEST"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { say "building the arm64 rootfs needs root (mmdebstrap, chroot); run it with sudo"; exit 1; }
ensure_tools
ensure_binfmt
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"  # one build at a time; a second caller waits, then finds it built
flock 9
if built; then echo "$DEST"; exit 0; fi
rm -rf --one-file-system "$CACHE"/.build.*  # left by a killed build (we hold the lock: none is running)
TMP=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
say "building the arm64 Debian $SUITE rootfs into $DEST (first time ~7 min, ~300 MB)..."
started=$(date +%s)
hook_args=()
for hook in "${HOOKS[@]}"; do hook_args+=(--customize-hook="$hook"); done
mmdebstrap --quiet --architectures=arm64 --variant=apt --include="$PACKAGES" "${hook_args[@]}" \
  "$SUITE" "$TMP/rootfs" "$MIRROR" >&2
# Provenance: what built it and what is inside (read by the tests and the report).
{
  echo "suite=$SUITE"; echo "key=$KEY"; echo "built=$(date -u +%FT%TZ)"
  echo "python=$(chroot "$TMP/rootfs" python3 -c 'import platform; print(platform.python_version())')"
  echo "machine=$(chroot "$TMP/rootfs" uname -m)"
} > "$TMP/rootfs/.edgeship-rootfs"
mv -T "$TMP/rootfs" "$DEST"
say "arm64 rootfs ready in $(( $(date +%s) - started )) s: $DEST ($(du -sh "$DEST" | cut -f1))"
echo "$DEST"
