#!/bin/sh
# Everything the hooks should see, with the workloads' own log on the console (not in
# doctor's JSON on stdout), and kept in /tmp/workloads.out for the result port. The exit status
# is the workloads' (pipefail), not tee's.
set -o pipefail
/bin/pinwatch-workload all --dir /mnt/ext4/work 2>&1 | tee /tmp/workloads.out >/dev/console
