#!/bin/sh
# hostcommand: run the input command ($COMMAND) with sh -c; write its exit status and
# output as the JSON outputs. A failing command is a result (rc), not a failed script.
set -u

json_string() {  # stdin as a JSON string: \ " tab CR and newlines escaped, other controls dropped
  tab=$(printf '\t') cr=$(printf '\r')
  tr -d '\000-\010\013\014\016-\037' |
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$tab/\\\\t/g" -e "s/$cr/\\\\r/g" |
    awk 'BEGIN { printf "\"" } { if (NR > 1) printf "\\n"; printf "%s", $0 } END { printf "\"" }'
}

out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
sh -c "$COMMAND" >"$out" 2>"$err" </dev/null
rc=$?
printf '{"rc": %d, "stdout": %s, "stderr": %s}\n' "$rc" "$(json_string <"$out")" "$(json_string <"$err")"
