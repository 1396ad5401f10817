#!/bin/busybox sh
# PID 1 of the VM-matrix guest. Prepares the machine, runs pinwatch over the workloads, and
# writes one result line per pass to /dev/ttyS1 (a file on the host); the console (ttyS0) gets
# the human log. Never exits: it powers the VM off.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null

result() { echo "PINWATCH-RESULT $*" >/dev/ttyS1; }
log() { echo "guest: $*" >/dev/console; }
# Waits up to 2 minutes for a daemon's /metrics on PORT; false if it never answered.
serving() {
  for _ in $(seq 1 240); do
    wget -q -O /dev/null "http://127.0.0.1:$1/metrics" 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}

log "kernel $(uname -r)"
result "release $(uname -r)"

# Modules in dependency order (built-in ones are simply absent from the list).
while read -r m; do
  case "$m" in
    brd) insmod "/lib/modules/$m.ko" rd_nr=2 rd_size=65536 ;;
    # QEMU's intel-iommu runs without interrupt remapping (intremap=off).
    vfio_iommu_type1) insmod "/lib/modules/$m.ko" allow_unsafe_interrupts=1 ;;
    *) insmod "/lib/modules/$m.ko" 2>/dev/null ;;
  esac
done </lib/modules/load-order

# ext4 on a RAM disk: the image is made on the host (mkfs.ext4), copied onto /dev/ram0 here.
mkdir -p /mnt/ext4
if dd if=/images/ext4.img of=/dev/ram0 bs=1M 2>/dev/null && mount -t ext4 /dev/ram0 /mnt/ext4; then
  log "ext4 mounted on /dev/ram0"
else
  log "ext4 setup FAILED"
fi
mkdir -p /mnt/ext4/work

# xfs on the second RAM disk: its page cache holds large folios on every kernel tested.
mkdir -p /mnt/xfs
if dd if=/images/xfs.img of=/dev/ram1 bs=1M 2>/dev/null && mount -t xfs /dev/ram1 /mnt/xfs; then
  log "xfs mounted on /dev/ram1"
else
  log "xfs setup FAILED"
fi

# hugetlbfs with a few 2 MiB pages: a correct DMA backing that must stay silent.
# Eight: one stays in a hugetlbfs file; the huge-pages pass pins two private ones and its fork
# copies them into two more.
echo 8 >/proc/sys/vm/nr_hugepages
mkdir -p /mnt/huge && mount -t hugetlbfs hugetlbfs /mnt/huge || log "hugetlbfs setup FAILED"

# `cargo xtask bench` boots the same image with pinwatch.bench: the benchmark instead of the tests.
if grep -qw pinwatch.bench /proc/cmdline; then
  ip link set lo up
  /bin/bench
  sync
  poweroff -f
fi

# `cargo xtask vm --show` (the README's main job) boots with pinwatch.show: what an operator
# came for, in a few screens. The daemon and an audit watch the same real workloads at once.
if grep -qw pinwatch.show /proc/cmdline; then
  show() { sed 's/^/PINWATCH-SHOW /' >/dev/ttyS1; }
  ip link set lo up
  /bin/pinwatch run --listen 127.0.0.1:9469 >/dev/null 2>/dev/console &
  d=$!
  serving 9469 || log "daemon on port 9469 not serving"
  echo "What this kernel does with each hazard (pinwatch doctor):" | show
  /bin/pinwatch doctor 2>&1 | sed -n '/^  hazard /,$p' | show
  echo "" | show
  echo "What the real workloads provoked (pinwatch audit -- workloads):" | show
  /bin/pinwatch audit -- /bin/run-workloads 2>/dev/console | show
  sleep 4
  echo "" | show
  echo "The same findings as the daemon exports them (pinwatch run, /metrics, non-zero series):" | show
  wget -q -O - http://127.0.0.1:9469/metrics |
    grep -E '^pinwatch_(findings_total|finding_pages_total|fork_copied_pages_total|pinned_folio_cleans_total|pfn_untracks_total)' |
    grep -v ' 0$' | show
  kill -TERM $d
  wait $d
  echo "PINWATCH-SHOW-DONE" >/dev/ttyS1
  sync
  poweroff -f
fi

# The report as an operator sees it (the README's main job), line by line to the result port.
log "pass: pinwatch doctor -- workloads (human report)"
/bin/pinwatch doctor -- /bin/run-workloads 2>&1 | sed 's/^/PINWATCH-REPORT /' >/dev/ttyS1

# Detection: every finding the workloads provoke, as JSON.
log "pass: pinwatch audit -- workloads"
json=$(/bin/pinwatch audit --json -- /bin/run-workloads 2>/dev/console)
code=$?
result "audit $code $json"
# What the discard scenarios (workloads/src/discard/scenarios.rs) saw in that run, one line each.
sed -n 's/^workload discard: /PINWATCH-DISCARD /p' /tmp/workloads.out >/dev/ttyS1

# Pins older than pinwatch: a VFIO file pin taken before the audit starts and written back
# while it runs (6.1 grants it; 6.12 and 7.2 refuse it at once).
log "pass: pinwatch audit --for 12s around a pin taken before it"
# The pin is written back once the audit says it is ready (its log line), so the writeback is
# observed however long attaching takes on a busy machine.
rm -f /tmp/audit-ready
/bin/pinwatch-workload vfio --file /mnt/ext4/work/held.dat --writeback-after /tmp/audit-ready \
  >/dev/console 2>&1 &
held=$!
/bin/pinwatch audit --json --for 12s --log-level info >/tmp/audit-pre.json 2>/tmp/audit-pre.log &
a=$!
for _ in $(seq 1 600); do
  grep -q "ready: every hook attached" /tmp/audit-pre.log && break
  sleep 0.2
done
touch /tmp/audit-ready
wait $a
code=$?
wait $held
result "audit-preexisting $code $(cat /tmp/audit-pre.json)"

# The pins inventory (`pinwatch pins`, /proc only, no eBPF): an io_uring pin of 37 pages taken
# before any pinwatch runs must be listed with its holder and exactly its pages; once the holder
# has exited, it must be gone.
log "pass: pinwatch pins around an io_uring pin older than pinwatch"
rm -f /tmp/pins-held
/bin/pinwatch-workload iouring --pages 37 --held-flag /tmp/pins-held --hold-ms 600000 \
  >/dev/console 2>&1 &
holder=$!
for _ in $(seq 1 300); do [ -e /tmp/pins-held ] && break; sleep 0.1; done
json=$(/bin/pinwatch pins --json 2>/dev/console)
result "pins-held $? holder=$holder $json"
/bin/pinwatch pins 2>&1 | sed 's/^/PINWATCH-PINS /' >/dev/ttyS1
kill $holder
wait $holder
json=$(/bin/pinwatch pins --json 2>/dev/console)
result "pins-released $? holder=$holder $json"

# guest_memfd (issue 14): KVM needs SVM in the guest's CPU model for kvm_amd, and no vCPU to
# create a VM and its guest_memfd. One audit runs the workload three times in sequence: pinned by
# io_uring and punched while pinned, then the controls (punch after unregistering; never
# pinned). Each mode has its own sizes (pages/punched: 16/8, 20/10, 24/12), so a finding in the
# one findings list names its mode. 7.2 has guest_memfd with host mmap; 6.1 and 6.12 answer
# ENOTTY (workload exit 3). Results only: what pinwatch must find here comes with the hazard
# rules.
log "pass: guest_memfd pinned by io_uring, punched (and the controls), in one audit"
svm=0
grep -qw svm /proc/cpuinfo && svm=1
result "kvm svm=$svm kvm_amd=$([ -d /sys/module/kvm_amd ] && echo loaded || echo absent) dev-kvm=$([ -c /dev/kvm ] && echo yes || echo no)"
# The audited command is one line (the JSON shows it as run). Each workload's own exit status
# (3: no guest_memfd) is kept apart from the audit's.
gmem_run() {
  printf '/bin/pinwatch-workload gmem --punch %s --pages %s --punch-pages %s >/tmp/gmem-%s.out 2>&1; echo $? >/tmp/gmem-%s.rc; ' \
    "$1" "$2" "$3" "$1" "$1"
}
run="$(gmem_run pinned 16 8)$(gmem_run after-unregister 20 10)$(gmem_run never-pinned 24 12)"
json=$(/bin/pinwatch audit --json -- sh -c "$run" 2>/dev/console)
result "audit-gmem $? $json"
for mode in pinned after-unregister never-pinned; do
  result "gmem-$mode $(cat /tmp/gmem-$mode.rc) $(tr '\n' ' ' </tmp/gmem-$mode.out)"
done

# What packaging/pinwatch.service grants (an unprivileged user with six capabilities) is enough
# where every hook attaches without perf events; where one needs a kprobe (6.1's 8-argument
# pin_user_pages_remote), Debian's perf_event_paranoid=3 refuses it and doctor says how to fix
# it: the documented remedy (paranoid 2) is applied and recorded.
CAPS=bpf,perfmon,sys_resource,syslog,sys_ptrace,dac_read_search
log "pass: doctor as an unprivileged user with the unit's capabilities"
json=$(/bin/pinwatch-workload as-user --uid 65534 --caps $CAPS -- /bin/pinwatch doctor --json 2>/dev/console)
code=$?
result "caps-doctor $code $json"
if [ "$code" != 0 ]; then
  echo 2 >/proc/sys/kernel/perf_event_paranoid
  result "caps-remedy perf_event_paranoid=2"
fi

# The daemon as production runs it, under the same workloads. The guest's own scrape goes to
# the result port (promtool-checked and compared with the findings log on the host); the host's
# Prometheus scrapes the same daemon through QEMU's forwarded port meanwhile.
log "pass: pinwatch run under the workloads"
ip link set lo up
{ ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0; } || log "network setup FAILED"
# As packaging/pinwatch.service runs it: an unprivileged user with only its capabilities.
/bin/pinwatch-workload as-user --uid 65534 --caps $CAPS -- \
  /bin/pinwatch run --listen 0.0.0.0:9469 --findings-log /tmp/findings.jsonl 2>/dev/console &
daemon=$!
up=0
serving 9469 && up=1
# Idle scrapes first: under TCG the busy guest answers scrapes late (Prometheus times them out),
# and a counter's rise is only visible to increase() and the alerts from a baseline sample.
sleep 3
/bin/run-workloads
# A finding is logged 2 s after its last event, once its pin settled (1 s); counters every 1 s.
sleep 6
cp /tmp/findings.jsonl /tmp/findings-at-scrape.jsonl
wget -q -O /tmp/metrics.txt http://127.0.0.1:9469/metrics || log "daemon scrape FAILED"
# Time for the host's Prometheus (1 s interval) to scrape the settled values too.
sleep 5
kill -TERM $daemon
wait $daemon
code=$?
result "daemon $code up=$up log-mode=$(stat -c %a /tmp/findings.jsonl)"
sed 's/^/PINWATCH-METRICS /' /tmp/metrics.txt >/dev/ttyS1
sed 's/^/PINWATCH-FINDING /' /tmp/findings-at-scrape.jsonl >/dev/ttyS1

# Scale: 17 io_uring rings of 16,384 single-page buffers, each buffer its own long-term pin call
# (278,528 pin calls as fast as the guest makes them). Registered in descending address order,
# so the kernel cannot gather the calls into runs: one record per call, the ring buffer's and
# the daemon's worst case. The ledger holds 262,144 live pins: the daemon tracks 262,144 pinned pages
# (1 GiB) and must evict, and count, the oldest 16,384. The daemon is scraped while the pins are
# held and after they are released; the host checks every pin call is either received or counted
# as dropped by the kernel, the evictions, the pages, and the daemon's resident memory.
log "pass: scale (278,528 pin calls, 262,144 live pinned pages)"
SCALE_RINGS=17
SCALE_CALLS=$((SCALE_RINGS * 16384))
/bin/pinwatch run --listen 127.0.0.1:9471 >/dev/null 2>/dev/console &
d=$!
serving 9471 || log "daemon on port 9471 not serving"
# Long-term pin calls received plus those inside records the kernel dropped, from a scrape.
seen() {
  wget -q -O - http://127.0.0.1:9471/metrics 2>/dev/null |
    awk '/^pinwatch_pins_total\{.*longterm="true"/ || /^pinwatch_ringbuf_dropped_pin_calls_total / {n += $2} END {printf "%d", n}'
}
# Waits (10 minutes at most) until pin-many printed `pinned` (its output file, $1) and the daemon
# accounted for $2 pin calls, then two metric ticks, so a scrape shows the state after the last.
await_pins() {
  for _ in $(seq 1 1200); do
    grep -q '^pinned' "$1" && [ "$(seen)" -ge "$2" ] && break
    sleep 0.5
  done
  sleep 2.5
}
/bin/pinwatch-workload pin-many --rings $SCALE_RINGS --iovecs 16384 --pages 1 --descending \
  --hold-secs 600 >/tmp/pin-many.out 2>/dev/console &
w=$!
await_pins /tmp/pin-many.out $SCALE_CALLS
wget -q -O /tmp/scale-held.txt http://127.0.0.1:9471/metrics || log "scale scrape FAILED"
kill -TERM $w
wait $w
sleep 3
wget -q -O /tmp/scale-released.txt http://127.0.0.1:9471/metrics || log "scale scrape FAILED"
# The same storm in ascending order, 4 rings: each registration's 16,384 calls join its first into
# one run in the kernel. The last ring's run stays open while its pins are held: only the
# daemon's reading of open runs can account for it. Pages must be exact, ledger entries few.
log "pass: scale, runs (65,536 contiguous pin calls gathered in the kernel)"
base=$(seen)
/bin/pinwatch-workload pin-many --rings 4 --iovecs 16384 --pages 1 --hold-secs 600 \
  >/tmp/pin-runs.out 2>/dev/console &
w=$!
await_pins /tmp/pin-runs.out $((base + 65536))
wget -q -O /tmp/runs-held.txt http://127.0.0.1:9471/metrics || log "runs scrape FAILED"
kill -TERM $w
wait $w
sleep 3
wget -q -O /tmp/runs-released.txt http://127.0.0.1:9471/metrics || log "runs scrape FAILED"
# A storm of pinned folios cleaned: 4,096 VFIO-pinned ext4 pages written back 20 times. 6.1
# grants the pin (81,920 pinned-folio-cleaned events); later kernels refuse it (none).
mkclean=$(/bin/pinwatch-workload vfio --file /mnt/ext4/work/clean-storm.dat --pages 4096 \
  --writebacks 20 2>&1)
rm -f /mnt/ext4/work/clean-storm.dat
sleep 2.5
wget -q -O /tmp/scale-cleaned.txt http://127.0.0.1:9471/metrics || log "scale scrape FAILED"
kill -TERM $d
wait $d
code=$?
result "scale $code calls=$SCALE_CALLS $(tr '\n' ' ' </tmp/pin-many.out)"
result "clean-storm $mkclean"
result "scale-runs $(tr '\n' ' ' </tmp/pin-runs.out)"
sed 's/^/PINWATCH-RUNS-HELD /' /tmp/runs-held.txt >/dev/ttyS1
sed 's/^/PINWATCH-RUNS-RELEASED /' /tmp/runs-released.txt >/dev/ttyS1
sed 's/^/PINWATCH-SCALE-HELD /' /tmp/scale-held.txt >/dev/ttyS1
sed 's/^/PINWATCH-SCALE-RELEASED /' /tmp/scale-released.txt >/dev/ttyS1
sed 's/^/PINWATCH-SCALE-CLEANED /' /tmp/scale-cleaned.txt >/dev/ttyS1

# A job runner (a build, a CI gate): short-lived workers each pin a file of their own with
# io_uring and exit before pinwatch reads their events; then the same jobs as threads. The
# audited tree is known from the kernel's fork records, so every job is reported.
log "pass: audit of a job runner with short-lived workers, then threads"
json=$(/bin/pinwatch audit --json -- /bin/pinwatch-workload job-runner --jobs 4 --dir /mnt/ext4/work 2>/dev/console)
result "audit-jobs $? $json"
json=$(/bin/pinwatch audit --json -- /bin/pinwatch-workload job-runner --jobs 4 --threads --dir /mnt/ext4/work 2>/dev/console)
result "audit-jobs-threads $? $json"

# Huge pages at fork: io_uring pins two 2 MiB pages of private hugetlb memory, then two THPs,
# and each process forks while they are pinned. The kernel copies the hugetlb pages whole and
# splits the THPs to copy them page by page; the findings say which page size was copied.
log "pass: pinned huge pages at fork (hugetlb, THP)"
json=$(/bin/pinwatch audit --json -- sh -c '{ /bin/pinwatch-workload iouring --fork --huge hugetlb --pages 1024 &&
  /bin/pinwatch-workload iouring --fork --huge thp --pages 1024; } >/tmp/huge.out' 2>/dev/console)
result "audit-huge $? $json"
result "huge-workloads $(tr '\n' ' ' </tmp/huge.out)"

# Large folios under a pin: VFIO pins an xfs MAP_SHARED file read back in 2 MiB folios, then
# dirties it and writes it back. 6.1 grants the pin and cleans the pinned folios (the clean is
# reported in base pages, with its folios); 6.12 and 7.2 refuse the pin. Then a read-only pin
# of an xfs MAP_PRIVATE file in 2 MiB folios, written to: 6.1 copies each pinned page of the
# large folios at the write fault, 6.12 and 7.2 unshare them at pin time.
log "pass: xfs files in large folios pinned, written back, written to"
json=$(/bin/pinwatch audit --json -- sh -c '{ /bin/pinwatch-workload vfio --file /mnt/xfs/large.dat \
  --pages 1024 --large-folios && /bin/pinwatch-workload vfio --file /mnt/xfs/private.dat \
  --pages 1024 --large-folios --private --read-only; } >/tmp/large.out' 2>/dev/console)
result "audit-large-folios $? $json"
result "large-folio-workloads $(tr '\n' ' ' </tmp/large.out)"

# Start-up: a VFIO file pin taken while the daemon is still attaching its hooks, written back
# once it is ready. Nothing may be judged on half the hooks: no file-pin finding for a pin the
# daemon did not fully see, and its writeback (6.1) blamed on a pin from before it was ready.
log "pass: a pin taken while the daemon is still attaching"
rm -f /tmp/daemon-ready
/bin/pinwatch run --listen 127.0.0.1:9473 --findings-log /tmp/startup.jsonl >/dev/null 2>/tmp/startup.log &
d=$!
/bin/pinwatch-workload vfio --file /mnt/ext4/work/startup.dat --writeback-after /tmp/daemon-ready \
  >/tmp/startup-pin.out 2>&1 &
w=$!
serving 9473 || log "daemon on port 9473 not serving"
touch /tmp/daemon-ready
wait $w
rm -f /mnt/ext4/work/startup.dat
# A finding is logged 2 s after its last event; counters every 1 s.
sleep 4
wget -q -O - http://127.0.0.1:9473/metrics 2>/dev/null | grep -E '^pinwatch_(ready_time_seconds|withheld_before_ready_total|findings_total)' \
  | sed 's/^/PINWATCH-STARTUP-METRICS /' >/dev/ttyS1
kill -TERM $d
wait $d
result "startup $? $(cat /tmp/startup-pin.out)"
sed 's/^/PINWATCH-STARTUP-FINDING /' /tmp/startup.jsonl >/dev/ttyS1
sed 's/^/PINWATCH-STARTUP-LOG /' /tmp/startup.log >/dev/ttyS1

# Releases by someone else while the process lives: io_uring buffers unregistered by another
# thread, then a ring closed without unregistering (the kernel unpins from a kworker). The
# daemon is scraped after each release while the workload still lives: no page may still count
# as pinned. Last, buffers held while another thread does O_DIRECT into them (short-term pins
# and unpins of the same memory): they must still count as pinned.
log "pass: pins released by another thread and by a kworker"
/bin/pinwatch run --listen 127.0.0.1:9474 >/dev/null 2>/tmp/release.log &
d=$!
serving 9474 || log "daemon on port 9474 not serving"
for _ in $(seq 1 600); do
  grep -q "ready: every hook attached" /tmp/release.log && break
  sleep 0.2
done
# Runs workload round ROUND (the rest of the arguments: pinwatch-workload iouring's flags), waits
# for its /tmp/ROUND flag, gives the kworker's unpins, the daemon's drain and its 1 s gauge
# refresh 3 s, then scrapes the pin series, tagged with the round and whether it still lives.
release_round() {
  round=$1
  shift
  rm -f "/tmp/$round"
  /bin/pinwatch-workload iouring --pages 64 "$@" >"/tmp/release-$round.out" 2>&1 &
  w=$!
  for _ in $(seq 1 300); do [ -e "/tmp/$round" ] && break; sleep 0.1; done
  sleep 3
  alive=0
  kill -0 $w 2>/dev/null && alive=1
  wget -q -O - http://127.0.0.1:9474/metrics 2>/dev/null |
    grep -E '^pinwatch_(live_pinned_pages|unpinned_pages_total|pins_total|map_insert_failures_total)' |
    sed "s/^/PINWATCH-RELEASE-METRICS $round alive=$alive /" >/dev/ttyS1
  kill $w 2>/dev/null
  wait $w
}
release_round thread --release thread --released-flag /tmp/thread --linger-ms 15000
release_round close --release close --released-flag /tmp/close --linger-ms 15000
release_round held --odirect-from /mnt/ext4/work/odirect-held.dat --held-flag /tmp/held --hold-ms 15000
rm -f /mnt/ext4/work/odirect-held.dat
kill -TERM $d
wait $d
result "releases $?"

# Full kernel maps: every insert that fails is counted, exported, alerted and logged. The maps
# are made small (PINWATCH_MAP_ENTRIES) and filled with foreign keys, then the workloads run.
# INFLIGHT is filled alone, in an audit: a pin it cannot carry never reaches the others.
log "pass: kernel maps made small and full"
SMALL=INFLIGHT=4,FORKING=4,WP_FAULTS=4,LAST_PIN_STACK=4,ZAPPING=4,STACKS=1
RUST_LOG=info,probe_user=debug PINWATCH_MAP_ENTRIES=$SMALL /bin/pinwatch run --listen 127.0.0.1:9472 >/dev/null 2>/tmp/full-maps.log &
d=$!
serving 9472 || log "daemon on port 9472 not serving"
filled=$(/bin/pinwatch-workload fill-map --name FORKING --name WP_FAULTS \
  --name ZAPPING --name LAST_PIN_STACK 2>&1)
/bin/run-workloads
sleep 2.5
wget -q -O /tmp/full-maps.txt http://127.0.0.1:9472/metrics || log "full-maps scrape FAILED"
kill -TERM $d
wait $d
result "full-maps $? $filled"
sed 's/^/PINWATCH-FULL-MAPS /' /tmp/full-maps.txt >/dev/ttyS1
sed 's/^/PINWATCH-FULL-MAPS-LOG /' /tmp/full-maps.log >/dev/ttyS1
json=$(PINWATCH_MAP_ENTRIES=$SMALL /bin/pinwatch audit --json -- sh -c \
  '/bin/pinwatch-workload fill-map --name INFLIGHT >&2; exec /bin/pinwatch-workload iouring --fork >&2' \
  2>/tmp/full-inflight.log)
result "full-inflight $? $json"
sed 's/^/PINWATCH-FULL-INFLIGHT-LOG /' /tmp/full-inflight.log >/dev/ttyS1
PINWATCH_MAP_ENTRIES=NO_SUCH_MAP=1 /bin/pinwatch audit --for 1s >/dev/null 2>/tmp/bad-entries.log
result "bad-map-entries $? $(head -n1 /tmp/bad-entries.log)"

# The other surfaces, each on a workload that pins, forks and exits.
log "pass: surfaces (events, audit --pid, audit --fail-on, no capabilities)"
/bin/pinwatch events --hazard fork-with-pins -- /bin/pinwatch-workload iouring --fork \
  >/tmp/events.jsonl 2>/dev/console
result "events $?"
sed 's/^/PINWATCH-EVENT /' /tmp/events.jsonl >/dev/ttyS1
# A process already running when the audit starts: it waits before pinning, so the audit
# (attaching takes seconds under TCG) sees everything it does, and ends when it exits.
sh -c 'sleep 20; exec /bin/pinwatch-workload iouring --fork' >/dev/console 2>&1 &
json=$(/bin/pinwatch audit --json --pid $! 2>/dev/console)
result "audit-pid $? $json"
json=$(/bin/pinwatch audit --json --fail-on early-pfn-untrack,longterm-file-pin -- /bin/pinwatch-workload iouring --fork 2>/dev/console)
result "audit-fail-on $? $json"
/bin/pinwatch-workload as-user --uid 65534 --caps "" -- /bin/pinwatch doctor >/dev/console 2>&1
result "unprivileged $?"

# Hostile names: the workload names itself with an escape sequence and a newline (PR_SET_NAME;
# the kernel keeps 15 bytes) and pins an ext4 MAP_SHARED file whose name holds a newline, a
# screen-clearing escape and a byte that is not UTF-8. The human report must show them escaped
# and forge no line; the JSON must keep every byte. busybox sh has no $'...': printf's octal
# escapes make the bytes.
log "pass: hostile names (audit of a process and a file named with escapes and a newline)"
evil_comm=$(printf '\033[31mEVIL\nFAKE-LINE')
evil_file=$(printf '/mnt/ext4/work/evil\n\033[2Jname\377.dat')
/bin/pinwatch audit -- /bin/pinwatch-workload iouring --comm "$evil_comm" --file "$evil_file" \
  2>/dev/console | sed 's/^/PINWATCH-HOSTILE /' >/dev/ttyS1
json=$(/bin/pinwatch audit --json -- /bin/pinwatch-workload iouring --comm "$evil_comm" \
  --file "$evil_file" 2>/dev/console)
result "audit-hostile $? $json"
rm -f "$evil_file"

# Faults: SIGKILL of the daemon (fentry links, then perf kprobes) leaves no program, link, map
# or kprobe event behind; SIGINT ends an audit early with its report.
log "pass: reliability (SIGKILL, SIGINT)"
# The kernel frees BPF objects asynchronously once their last reference goes: the baseline is
# read after the earlier passes' objects are gone, and the count after the kill may take a few
# seconds to return to it.
sleep 3
for method in auto kprobe; do
  before=$(/bin/pinwatch-workload bpf-objects)
  /bin/pinwatch run --listen 127.0.0.1:9470 --method $method >/dev/null 2>/dev/console &
  d=$!
  serving 9470 || log "daemon on port 9470 not serving"
  during=$(/bin/pinwatch-workload bpf-objects)
  kill -KILL $d
  wait $d
  for _ in $(seq 1 30); do
    after=$(/bin/pinwatch-workload bpf-objects)
    [ "$after" = "$before" ] && break
    sleep 0.5
  done
  result "sigkill-$method $before | $during | $after"
done
/bin/pinwatch audit --json --for 300s >/tmp/interrupted.json 2>/dev/console &
a=$!
sleep 3
kill -INT $a
wait $a
result "audit-interrupted $? $(cat /tmp/interrupted.json)"

# One pass per attach policy: auto (fentry first) and kprobe only, both over every workload.
for method in auto kprobe; do
  log "pass: pinwatch doctor --method $method -- workloads"
  json=$(/bin/pinwatch doctor --json --method "$method" -- /bin/run-workloads)
  code=$?
  result "doctor-$method $code $json"
done

log "done"
sync
poweroff -f
