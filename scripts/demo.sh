#!/usr/bin/env bash
# Sets up everything and runs pinwatch's main job where this machine allows it: on a host
# with kprobes or fentry, `pinwatch doctor --watch` directly; on a host without (like our
# development VMs), inside each real Debian kernel under QEMU, showing per kernel what the
# kernel does with each hazard, the hazards pinwatch found in real workloads (audit's report,
# ranked) and the daemon's metrics for them. Builds are quiet unless they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "Building pinwatch (quiet unless it fails)..."
if ! build_log=$(cargo build --quiet --release -p probe-user 2>&1); then
  printf '%s\n' "$build_log" >&2
  exit 1
fi
code=0
./target/release/pinwatch doctor >/dev/null 2>&1 || code=$?
case $code in
  0 | 6) exec ./target/release/pinwatch doctor --watch "${PINWATCH_DEMO_WATCH:-10s}" ;;
  5) ;; # nothing attaches on this kernel: fall through to the VM
  *) ./target/release/pinwatch doctor; exit $? ;;
esac
echo "This kernel cannot run kprobes or fentry; here is why:"
./target/release/pinwatch doctor | tail -n 4 || true
echo
echo "Running pinwatch inside Debian's 6.1, 6.12 and 7.2 kernels under QEMU instead"
echo "(real io_uring, VFIO, AF_XDP, fork and PCI workloads; a few minutes per kernel):"
exec cargo --quiet xtask vm --show
