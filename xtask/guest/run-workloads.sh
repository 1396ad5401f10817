#!/bin/sh
# Everything the hooks should see, with the workloads' own log on the console (not in
# doctor's JSON on stdout).
exec /bin/pinwatch-workload all --dir /mnt/ext4/work >/dev/console 2>&1
