#!/bin/sh
# `cargo xtask bench`, inside the guest: each storm workload measured in five modes (below),
# rounds rotating the order of the modes so drift in the emulator does not favour one; then the
# per-program cost of the daemon's programs from the kernel's BPF run-time statistics, on the
# fast path (no pinned folio), the detailed path (pinned folios), the pin storms and the discard
# storms (page-cache removals, MADV_DONTNEED). One `PINWATCH-BENCH` line per figure to ttyS1.
# CLOCK says how QEMU runs the guest (icount: time is instructions).
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-2}
WORKLOADS="fork-cow msync iouring odirect mixed page-cache-churn madvise-churn madvise-churn-pinner"
CLOCK=${CLOCK:-wall}
DIR=/mnt/ext4/work
PORT=9469

# Where a storm keeps its file: ext4, but page-cache-churn's on tmpfs (/tmp, no huge=), whose
# folios are order-0 on every kernel: 16 removals a round everywhere (ext4 on 7.2 makes one
# large folio of a 64 KiB write), and no journal or block allocation around them.
storm_dir() { case $1 in page-cache-churn) echo /tmp/storm ;; *) echo $DIR ;; esac; }

bench() { echo "PINWATCH-BENCH $*" >/dev/ttyS1; }
log() { echo "bench: $*" >/dev/console; }

# The functions pinwatch attaches on this kernel, counted by bpftrace with the same kind of
# probe (fentry as kfunc, kprobe as kprobe, ...).
/bin/pinwatch doctor --json >/tmp/doctor.json 2>/dev/console
/bin/pinwatch-workload bpftrace-script </tmp/doctor.json >/tmp/count.bt 2>/dev/console ||
  log "bpftrace script FAILED"
bench "bpftrace-probes $(grep -c '^[a-z]' /tmp/count.bt)"
sed 's/^/PINWATCH-BENCH bpftrace-script /' /tmp/count.bt >/dev/ttyS1

wait_for() { # command, tries (0.5 s apart)
  for _ in $(seq 1 "$2"); do
    eval "$1" && return 0
    sleep 0.5
  done
  return 1
}

# The modes, in the order of the first round: no probes; the floor (pinwatch's attachments with
# every program returning at once); kernel-only (pinwatch's programs, records read and
# discarded); pinwatch in full; bpftrace counting the same probes.
MODES="none floor kernel-only pinwatch bpftrace"

start_daemon() { # bench mode
  /bin/pinwatch run --bench-mode "$1" --listen 127.0.0.1:$PORT >/tmp/findings.jsonl 2>/tmp/pinwatch.err &
  echo $! >/tmp/mode.pid
  wait_for "wget -q -O /dev/null http://127.0.0.1:$PORT/metrics 2>/dev/null" 600 ||
    log "pinwatch --bench-mode $1 did not start: $(cat /tmp/pinwatch.err)"
}

start_mode() {
  case $1 in
    none) ;;
    floor | kernel-only) start_daemon "$1" ;;
    pinwatch) start_daemon full ;;
    bpftrace)
      /usr/bin/bpftrace /tmp/count.bt >/tmp/bpftrace.out 2>&1 &
      echo $! >/tmp/mode.pid
      wait_for "grep -q '^Attaching' /tmp/bpftrace.out" 600 ||
        log "bpftrace did not start: $(cat /tmp/bpftrace.out)"
      # Attaching is printed before the probes are all in: let it finish.
      sleep 2
      ;;
  esac
}

is_daemon() { case $1 in floor | kernel-only | pinwatch) return 0 ;; esac; return 1; }

# The daemon's CPU time (clock ticks, user + system) and what its metrics say: records it
# decoded, records the kernel dropped. Printed as key=value words, keys prefixed by $1.
daemon_sample() {
  pid=$(cat /tmp/mode.pid)
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null)
  wget -q -O /tmp/metrics.txt http://127.0.0.1:$PORT/metrics
  awk -v ticks="${ticks:-0}" -v p="$1" '
    /^pinwatch_events_total/ { records += $2 }
    /^pinwatch_ringbuf_drops_total/ { drops += $2 }
    END { printf "%sticks=%d %srecords=%d %sdrops=%d", p, ticks, p, records, p, drops }' /tmp/metrics.txt
}

# Waits until the daemon has caught up with the records a workload left in the ring: its
# records and drops (drops are refreshed every second) stop changing. The workload's rate was
# measured while it ran; this makes the CPU, records and drops that follow belong to the
# workload that caused them. Under icount an idle guest skips ahead, so the wait costs little.
settle() {
  last=""
  for _ in $(seq 1 30); do
    sleep 1.2
    now=$(daemon_sample x_ | cut -d' ' -f2-)
    [ "$now" = "$last" ] && return 0
    last=$now
  done
  log "the daemon did not settle in 36 s"
}

stop_mode() {
  case $1 in
    none) return ;;
    floor | kernel-only | pinwatch)
      # What the daemon saw and dropped during the round, before it goes.
      wget -q -O /tmp/metrics.txt http://127.0.0.1:$PORT/metrics
      bench "pinwatch-round round=$2 mode=$1 $(grep -E '^pinwatch_(ringbuf_drops_total|event_decode_errors_total|map_insert_failures_total)' /tmp/metrics.txt | tr '\n' ' ')"
      kill -TERM "$(cat /tmp/mode.pid)" ;;
    bpftrace) kill -INT "$(cat /tmp/mode.pid)" ;;
  esac
  wait "$(cat /tmp/mode.pid)"
  bench "stopped mode=$1 round=$2 code=$?"
}

log "throughput ($CLOCK clock): $ROUNDS rounds x $WORKLOADS x $MODES x ${SECS}s"
log "page-cache-churn on: $(grep ' /tmp ' /proc/mounts) (a huge= option would mean large folios)"
modes=$MODES
for round in $(seq 1 "$ROUNDS"); do
  for mode in $modes; do
    start_mode "$mode"
    for w in $WORKLOADS; do
      before=""
      is_daemon "$mode" && before=$(daemon_sample before_)
      out=$(/bin/pinwatch-workload storm "$w" --seconds "$SECS" --dir "$(storm_dir "$w")" 2>&1)
      after=""
      is_daemon "$mode" && settle && after=$(daemon_sample after_)
      bench "round=$round mode=$mode workload=$w $out $before $after"
    done
    stop_mode "$mode" "$round"
  done
  # Rotate: the first mode goes last, so no mode always runs first or after the same one.
  modes="$(echo "$modes" | cut -d' ' -f2-) $(echo "$modes" | cut -d' ' -f1)"
done

# Per-program cost. Statistics cost a clock read per run, so they are on only here, not while
# throughput is measured.
log "per-program cost (kernel.bpf_stats_enabled=1)"
echo 1 >/proc/sys/kernel/bpf_stats_enabled
start_mode pinwatch
snapshot() { /bin/pinwatch-workload bpf-objects --programs | sed -n "s/^PROG /PINWATCH-BENCH prog phase=$1 /p" >/dev/ttyS1; }
snapshot start
# Fast path: COW faults and writeback of folios nobody pinned.
/bin/pinwatch-workload storm fork-cow --seconds "$SECS" --dir $DIR >/dev/console 2>&1
/bin/pinwatch-workload storm msync --seconds "$SECS" --dir $DIR >/dev/console 2>&1
snapshot fast
# Detailed path: write faults on pinned pages (a read-only VFIO pin of a private file mapping,
# then written: 6.1 copies the pinned page, 6.2+ reuses it) and writeback of pinned folios (a
# long-term VFIO pin of a shared ext4 mapping: granted on 6.1 only, refused later).
for _ in 1 2 3 4; do
  /bin/pinwatch-workload vfio --file $DIR/bench-private.dat --private --read-only --pages 256 >/dev/console 2>&1
  /bin/pinwatch-workload vfio --file $DIR/bench-shared.dat --pages 256 >/dev/console 2>&1
done
snapshot detailed
# Pin storms: io_uring registrations of single-page buffers (pin calls gathered into runs) and
# O_DIRECT reads (short-term pins).
/bin/pinwatch-workload storm iouring --seconds "$SECS" --dir $DIR >/dev/console 2>&1
/bin/pinwatch-workload storm odirect --seconds "$SECS" --dir $DIR >/dev/console 2>&1
snapshot storms
# Discards, none of a pinned page: page-cache removals (the tracepoint, once per folio) and
# MADV_DONTNEED (madvise, once per call) by a process that never pinned; then MADV_DONTNEED by a
# process that did (an unrelated io_uring registration), each call an event.
for w in page-cache-churn madvise-churn; do
  /bin/pinwatch-workload storm "$w" --seconds "$SECS" --dir "$(storm_dir "$w")" >/dev/console 2>&1
done
snapshot discards
/bin/pinwatch-workload storm madvise-churn-pinner --seconds "$SECS" >/dev/console 2>&1
snapshot pinner
stop_mode pinwatch cost
echo 0 >/proc/sys/kernel/bpf_stats_enabled
bench "done"
