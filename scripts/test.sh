#!/usr/bin/env bash
# Sets up everything (idempotent, cached) and runs every test: formatting, lints, unit and CLI
# tests, dashboard and alert-rule checks, then the real-kernel VM matrix on Debian's 6.1, 6.12 and
# 7.2 (with a real Prometheus scraping the daemon in each guest). Exit 0 only if all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check
step "lints (userspace; eBPF object built by probe-user's build.rs)"
cargo clippy --workspace --exclude probe-ebpf --all-targets -- -D warnings
step "lints (eBPF, nightly, bpfel-unknown-none)"
(cd probe-ebpf && cargo +nightly clippy --release --target bpfel-unknown-none -Z build-std=core -- -D warnings)
step "unit and CLI tests"
cargo test --workspace --exclude probe-ebpf
step "fuzzing the event decoder and the correlator (libFuzzer, 60 s)"
# No eBPF object is needed to decode; the fuzz build carries sanitizer flags it must not get.
(cd probe-user && AYA_BUILD_SKIP=1 cargo +nightly fuzz run decode -- -max_total_time=60 -print_final_stats=1 2>&1 |
  grep -E '^(stat::number_of_executed_units|Done|==[0-9]+== ERROR|thread .* panicked|SUMMARY)' ; exit "${PIPESTATUS[0]}")
step "dashboards and alert rules (exported metric names, promtool check + unit tests)"
cargo xtask dashboards
step "real-kernel VM matrix (QEMU TCG: 6.1, 6.12, 7.2; daemon scraped by a real Prometheus)"
cargo xtask vm
