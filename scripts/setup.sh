#!/usr/bin/env bash
# One-time (and idempotent) setup for building pinwatch and running its real-kernel VM matrix.
#
#   scripts/setup.sh            everything: apt packages, eBPF toolchain, the three test kernels
#   scripts/setup.sh toolchain  only what building and fuzzing need
#   scripts/setup.sh kernels    only the Debian kernels for the VM matrix
#   scripts/setup.sh snapshot   Chromium, for `cargo xtask dashboard-snapshot` (not needed by tests)
#   scripts/setup.sh bench      Debian's bpftrace, bundled into the guest by `cargo xtask bench`
#                               (not needed by tests; `all` does not install it)
#
# Everything downloaded is cached under ${PINWATCH_CACHE:-~/.cache/pinwatch}; a second run does
# no network work. Package registry hosts are never written here: the Debian mirror is read at run
# time from the system's own apt sources.
set -euo pipefail

CACHE=${PINWATCH_CACHE:-$HOME/.cache/pinwatch}
BPF_LINKER_VERSION=0.13.0
CARGO_FUZZ_VERSION=0.13.2
NIGHTLY=nightly
# prometheus brings promtool (metrics, rules and alert tests) and the server the scrape test runs.
APT_PACKAGES=(qemu-system-x86 busybox-static cpio e2fsprogs xfsprogs xz-utils kmod prometheus)

# The kernels of the VM matrix: short name, apt suite, exact image package. Exact names keep the
# matrix reproducible; xtask/src/expect.rs holds what the matrix expects of each build.
KERNELS=(
  "6.1  bookworm-security linux-image-6.1.0-56-cloud-amd64"
  "6.12 trixie            linux-image-6.12.107+deb13-cloud-amd64"
  "7.2  sid               linux-image-7.2.13+deb14-cloud-amd64"
)
# Modules the guest workloads need (with their dependencies, resolved from modinfo); virtio_net
# carries the daemon's metrics to the host's Prometheus; kvm and kvm_amd give the guest /dev/kvm
# for the guest_memfd workload (QEMU's qemu64 CPU model is AMD with SVM, which TCG emulates).
GUEST_MODULES=(brd xfs virtio_pci virtio_rng virtio_net vfio vfio_iommu_type1 vfio_pci kvm kvm_amd)

# Only for rendering the README's dashboard picture.
SNAPSHOT_PACKAGES=(chromium)

# Only for `cargo xtask bench`: its comparison mode runs the host's bpftrace (binary and shared
# libraries, copied by xtask/src/bundle.rs) inside the guest. The tests never need it.
BENCH_PACKAGES=(bpftrace)

log() { printf 'setup: %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "run as root (apt-get and module extraction need it)"; exit 1; }; }

install_apt_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { log "apt packages present"; return; }
  need_root
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_ebpf_toolchain() {
  rustup toolchain list | grep -q "^$NIGHTLY" || rustup toolchain install "$NIGHTLY" --profile minimal
  rustup component list --toolchain "$NIGHTLY" --installed | grep -q '^rust-src' ||
    rustup component add rust-src --toolchain "$NIGHTLY"
  # bpf-linker loads the nightly's libLLVM, so ask it through rustup (which sets the library path).
  if rustup run "$NIGHTLY" bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
    log "bpf-linker $BPF_LINKER_VERSION present"; return
  fi
  # bpf-linker links against LLVM; the nightly ships its own libLLVM, so point LLVM_PREFIX at a
  # directory whose lib/libLLVM.so is that library (no system LLVM needed).
  local sysroot llvm_lib prefix="$CACHE/llvm-prefix"
  sysroot=$(rustc +"$NIGHTLY" --print sysroot)
  llvm_lib=$(ls "$sysroot"/lib/libLLVM.so.* | head -n1)
  local major; major=$(basename "$llvm_lib" | sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/')
  mkdir -p "$prefix/lib"
  ln -sf "$llvm_lib" "$prefix/lib/libLLVM.so"
  log "building bpf-linker $BPF_LINKER_VERSION against the nightly's LLVM $major"
  LLVM_PREFIX=$prefix cargo +"$NIGHTLY" install --quiet "bpf-linker@$BPF_LINKER_VERSION" --locked \
    --no-default-features --features "llvm-$major"
}

# cargo-fuzz drives libFuzzer on the event decoder (probe-user/fuzz), with the nightly.
install_fuzzer() {
  if cargo +"$NIGHTLY" fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    log "cargo-fuzz $CARGO_FUZZ_VERSION present"; return
  fi
  log "building cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo +"$NIGHTLY" install --quiet "cargo-fuzz@$CARGO_FUZZ_VERSION" --locked
}

# A private apt tree so trixie/sid/bookworm-security can be read without touching system config.
private_apt() {
  local dir="$CACHE/apt" uri sec_uri
  uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  sec_uri=$(awk '/^URIs:/ && /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  [ -n "$sec_uri" ] || sec_uri="${uri%/debian}/debian-security"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  local kr=/usr/share/keyrings/debian-archive-keyring.gpg
  cat >"$dir/sources.list" <<EOF
deb [signed-by=$kr] $sec_uri bookworm-security main
deb [signed-by=$kr] $uri trixie main
deb [signed-by=$kr] $uri sid main
EOF
  APT_OPTS=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root)
  if [ -z "$(ls "$dir/lists" 2>/dev/null | grep -v partial)" ]; then
    log "reading package lists for bookworm-security, trixie, sid"
    apt-get "${APT_OPTS[@]}" update -qq
  fi
}

# Image package → the packages that actually carry vmlinuz and modules (7.2 splits them out).
kernel_payload_packages() {
  local image=$1
  echo "$image"
  apt-cache "${APT_OPTS[@]}" depends "$image" 2>/dev/null |
    awk '/Depends: linux-(binary|modules)-/ {print $2}'
}

fetch_kernel() {
  local short=$1 image=$2 out="$CACHE/kernels/$1" debs="$CACHE/debs/$1"
  # `ready` holds the module list it was built with: a changed list re-extracts from the cache.
  if [ -f "$out/ready" ] && [ "$(cat "$out/ready")" = "${GUEST_MODULES[*]}" ]; then
    log "kernel $short cached"; return
  fi
  if [ -z "$(ls "$debs"/*.deb 2>/dev/null)" ]; then
    log "fetching kernel $short ($image)"
    mkdir -p "$debs"
    (cd "$debs" && kernel_payload_packages "$image" | xargs apt-get "${APT_OPTS[@]}" download -qq)
  fi
  rm -rf "$out" && mkdir -p "$out/root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$out/root"; done
  local vmlinuz release moddir
  # bookworm/trixie: /boot/vmlinuz-REL; sid (7.x) ships it as /usr/lib/modules/REL/vmlinuz.
  vmlinuz=$(find "$out/root" \( -path '*/boot/vmlinuz-*' -o -path '*/lib/modules/*/vmlinuz' \) | head -n1)
  [ -n "$vmlinuz" ] || { log "kernel $short: no vmlinuz in $image"; exit 1; }
  # The module tree's directory name is the kernel release (under /usr on merged-/usr suites).
  moddir=$(find "$out/root" -mindepth 3 -maxdepth 4 -type d -path '*/lib/modules/*' | head -n1)
  release=$(basename "$moddir")
  cp "$vmlinuz" "$out/vmlinuz"
  echo "$release" >"$out/release"
  collect_modules "$out" "$moddir"
  rm -rf "$out/root"
  echo "${GUEST_MODULES[*]}" >"$out/ready"
}

# Copy the guest modules and their dependencies, decompressed (busybox insmod takes plain .ko),
# and write load-order: dependencies first.
collect_modules() {
  local out=$1 moddir=$2 release
  release=$(basename "$moddir")
  mkdir -p "$out/modules"
  : >"$out/load-order"
  declare -A seen=()
  add_module() {
    local name=${1//-/_} file
    [ -n "${seen[$name]:-}" ] && return
    seen[$name]=1
    file=$(find "$moddir" -regextype posix-extended \
      -regex ".*/(${name}|${name//_/-})\.ko(\.xz|\.zst)?" | head -n1)
    [ -n "$file" ] || { log "kernel $release: module $name is built in or absent"; return; }
    local dep
    for dep in $(modinfo -F depends "$file" | tr ',' ' '); do add_module "$dep"; done
    case "$file" in
      *.xz) xz -dc "$file" >"$out/modules/$name.ko" ;;
      *.zst) zstd -qdc "$file" >"$out/modules/$name.ko" ;;
      *) cp "$file" "$out/modules/$name.ko" ;;
    esac
    echo "$name" >>"$out/load-order"
  }
  local m
  for m in "${GUEST_MODULES[@]}"; do add_module "$m"; done
}

fetch_kernels() {
  private_apt
  local line
  for line in "${KERNELS[@]}"; do
    # shellcheck disable=SC2086
    set -- $line
    fetch_kernel "$1" "$3"
  done
}

main() {
  mkdir -p "$CACHE"
  case "${1:-all}" in
    toolchain) install_apt_packages "${APT_PACKAGES[@]}"; install_ebpf_toolchain; install_fuzzer ;;
    kernels) install_apt_packages "${APT_PACKAGES[@]}"; fetch_kernels ;;
    snapshot) install_apt_packages "${SNAPSHOT_PACKAGES[@]}" ;;
    bench) install_apt_packages "${BENCH_PACKAGES[@]}" ;;
    all) install_apt_packages "${APT_PACKAGES[@]}"; install_ebpf_toolchain; install_fuzzer; fetch_kernels ;;
    *) log "unknown step '$1' (expected: all, toolchain, kernels, snapshot, bench)"; exit 2 ;;
  esac
  log "done (cache: $CACHE)"
}

main "$@"
