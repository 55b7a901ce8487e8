#!/bin/sh
# diskusage: how full the file system holding $MOUNT is, as the JSON outputs.
set -eu
df -Pk "$MOUNT" | awk 'NR == 2 {
  sub(/%$/, "", $5)
  printf "{\"mount\": \"%s\", \"used_percent\": %d, \"available_kb\": %d}\n", $6, $5, $4
}'
