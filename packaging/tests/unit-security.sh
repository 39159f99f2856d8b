#!/bin/sh
# systemd-analyze security --offline on bulkhead@.service: prints the
# exposure score (docs/SYSTEMD.md records it); fails only if the command
# does.
set -eu
unit=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$unit" "$dir/bulkhead@web1.service"
cd "$dir"
systemd-analyze security --offline=true --no-pager ./bulkhead@web1.service \
	>out 2>&1 || {
	cat out
	exit 1
}
cat out
grep "Overall exposure level" out
