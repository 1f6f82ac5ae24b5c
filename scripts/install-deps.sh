#!/usr/bin/env bash
# Installs the system packages blockscope builds and tests with, when any is missing.
set -euo pipefail
# libnbd-bin (nbdinfo, nbdcopy), fio (ioengine=nbd) and python3-libnbd (pipelined libnbd
# clients and a known cookie, run by /usr/bin/python3) are the NBD clients the serve tests,
# ServedTruthTests and the soak use.
pkgs=(liburing-dev libzstd-dev zlib1g-dev libncurses-dev pkg-config qemu-utils tmux strace fio libnbd-bin python3-libnbd)
# `install-deps.sh vm`: what scripts/vm-test.sh and scripts/vhost-test.sh need to boot a
# guest (make vm-test, make vhost-test): qemu-system-x86 brings qemu-storage-daemon (the
# vhost-user reference server); gcc and libc6-dev build the guest's static zeroing helper.
if [ "${1:-}" = vm ]; then pkgs=(qemu-system-x86 linux-image-amd64 busybox-static cpio qemu-utils gcc libc6-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "blockscope: missing packages ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
