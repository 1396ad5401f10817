#!/usr/bin/env bash
# Sets up everything and runs pinwatch's main job where this machine allows it: on a host
# with kprobes or fentry, `pinwatch doctor --watch` directly; on a host without (like our
# development VMs), inside each real Debian kernel under QEMU, showing doctor's report and
# the live hit count of every hook while real workloads run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release -p probe-user
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
echo "Running pinwatch inside Debian's 6.1, 6.12 and 7.2 kernels under QEMU instead:"
exec cargo xtask vm --show
