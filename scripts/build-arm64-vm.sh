#!/usr/bin/env bash
# Build (once) the boot files of the arm64 *VM* board (runtimes/vmboard.py) and print their dir:
# a Debian arm64 kernel + initrd and a raw ext4 disk made from a COPY of the cached arm64 rootfs
# (scripts/build-arm64-rootfs.sh; that rootfs is never modified).
#
#   scripts/build-arm64-vm.sh           # build if missing, print the directory
#   scripts/build-arm64-vm.sh --path    # print where it is (or would be); no build
#
# - Inside the copy (chroot under qemu-user): linux-image-arm64 (+ initramfs-tools: its initrd
#   loads virtio-blk and mounts root=/dev/vda) and busybox-static (init, ip). /sbin/init is
#   busybox init; /etc/edgeship/rcS mounts proc/sys/dev, loads virtio_net + 9p, sets the
#   qemu user-mode address 10.0.2.15/24, mounts the board's state dir (9p tag `state`, at the
#   host path given as edgeship.state=... on the kernel command line) and starts sshd with
#   <state>/vm_sshd_config. The disk is booted with snapshot=on: board state lives in <state>.
# - Cached under ${EDGESHIP_ARM64_VM_CACHE:-~/.cache/edgeship/arm64-vm}/<key>/; built in a temp
#   dir and renamed into place. Needs root; qemu-system-arm and e2fsprogs are apt-installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXTRA=linux-image-arm64,busybox-static
DISK_MB=2048
# --- recipe (hashed into the cache key, with the rootfs path) ---
read -r -d '' RCS <<'RC' || true
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
bb=/bin/busybox
$bb mount -t proc proc /proc; $bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev 2>/dev/null; $bb mkdir -p /dev/pts; $bb mount -t devpts devpts /dev/pts
$bb mount -o remount,rw /
$bb mount -t tmpfs -o mode=755 tmpfs /run; $bb mount -t tmpfs -o mode=1777 tmpfs /tmp
$bb hostname edgeship-vm
for m in virtio_net 9pnet_virtio 9p; do modprobe $m; done
$bb ip link set lo up; $bb ip link set eth0 up
$bb ip addr add 10.0.2.15/24 dev eth0; $bb ip route add default via 10.0.2.2
for a in $(cat /proc/cmdline); do case $a in edgeship.state=*) STATE=${a#*=};; esac; done
$bb mkdir -p "$STATE"
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose state "$STATE"
$bb mkdir -p /run/sshd
/usr/sbin/sshd -f "$STATE/vm_sshd_config" -E "$STATE/sshd.log" && echo EDGESHIP-VM-SSHD-UP
RC
INITTAB='::sysinit:/etc/edgeship/rcS
::shutdown:/bin/busybox umount -a -r'
read -r -d '' INITRD_HOOK <<'HOOK' || true
#!/bin/sh
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_mmio virtio_blk ext4; do force_load $m; done
HOOK
# --- end recipe ---
ROOTFS=$(bash "$HERE/build-arm64-rootfs.sh" --path)
CACHE=${EDGESHIP_ARM64_VM_CACHE:-${HOME}/.cache/edgeship/arm64-vm}
KEY=$(printf '%s\n' "$ROOTFS" "$EXTRA" "$DISK_MB" "$RCS" "$INITTAB" "$INITRD_HOOK" | sha256sum | cut -c1-12)
DEST="$CACHE/bookworm-arm64-vm-$KEY"
say() { echo "edgeship: $*" >&2; }
built() { [ -s "$DEST/vmlinuz" ] && [ -s "$DEST/initrd.img" ] && [ -s "$DEST/disk.img" ]; }
case "${1:-}" in
  --path) echo "$DEST"; exit 0 ;;
  "") ;;
  *) say "unknown option ${1}; use --path or no option"; exit 2 ;;
esac
built && { echo "$DEST"; exit 0; }
[ "$(id -u)" -eq 0 ] || { say "building the arm64 VM image needs root; run it with sudo"; exit 1; }
if ! command -v qemu-system-aarch64 >/dev/null || ! command -v mkfs.ext4 >/dev/null; then
  say "installing qemu-system-arm e2fsprogs (for the arm64 VM)..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-system-arm e2fsprogs >/dev/null
fi
ROOTFS=$(bash "$HERE/build-arm64-rootfs.sh")  # builds it when missing (~7 min), enables binfmt
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"; flock 9
built && { echo "$DEST"; exit 0; }
rm -rf --one-file-system "$CACHE"/.build.*
TMP=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf --one-file-system "$TMP"' EXIT
started=$(date +%s)
say "building the arm64 VM image into $DEST (kernel install under emulation, a few minutes)..."
cp -a "$ROOTFS" "$TMP/root"
R="$TMP/root"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# A small initrd: MODULES=most spawns a process per module, which takes far too long under
# qemu-user; list only what mounting root=/dev/vda needs (force-loaded at boot).
mkdir -p "$R/etc/initramfs-tools/conf.d" "$R/etc/initramfs-tools/hooks"
echo MODULES=list > "$R/etc/initramfs-tools/conf.d/edgeship"
printf '%s\n' "$INITRD_HOOK" > "$R/etc/initramfs-tools/hooks/edgeship"
chmod 755 "$R/etc/initramfs-tools/hooks/edgeship"
unshare --mount --propagation private -- sh -c '
  set -e; R="$1"; shift
  mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; mount -t tmpfs tmpfs "$R/tmp"
  export DEBIAN_FRONTEND=noninteractive
  chroot "$R" apt-get update -qq
  chroot "$R" apt-get install -y -qq --no-install-recommends "$@"
  chroot "$R" apt-get clean' sh "$R" ${EXTRA//,/ } >&2
rm -rf "$R"/var/lib/apt/lists/*
mkdir -p "$R/etc/edgeship"
printf '%s\n' "$RCS" > "$R/etc/edgeship/rcS"; chmod 755 "$R/etc/edgeship/rcS"
printf '%s\n' "$INITTAB" > "$R/etc/inittab"
ln -sf /bin/busybox "$R/sbin/init"
mkdir -p "$TMP/out"
cp -L "$R/vmlinuz" "$TMP/out/vmlinuz"; cp -L "$R/initrd.img" "$TMP/out/initrd.img"
mkfs.ext4 -q -L edgeship-vm -d "$R" "$TMP/out/disk.img" "${DISK_MB}M" >&2
echo "rootfs=$ROOTFS built=$(date -u +%FT%TZ) kernel=$(ls "$R/lib/modules")" > "$TMP/out/BUILD"
mv -T "$TMP/out" "$DEST"
say "arm64 VM image ready in $(( $(date +%s) - started )) s: $DEST"
echo "$DEST"
