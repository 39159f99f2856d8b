#!/bin/sh
# systemd-analyze verify on bulkhead@.service (the copy whose ExecStart names
# the build's bulkhead), with its man pages findable for Documentation=.
set -eu
unit=$1
src=$(dirname "$0")/..
command -v systemd-analyze >/dev/null || {
	echo "systemd-analyze not found: install systemd"
	exit 1
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/man/man1"
cp "$src/man/bulkhead.1" "$src/man/bulkhead-ctl.1" "$dir/man/man1/"
cp "$unit" "$dir/"
cd "$dir"
# verify prints its findings and exits non-zero on any of them.
MANPATH="$dir/man" systemd-analyze verify ./bulkhead@.service 2>&1 | tee log
if [ -s log ]; then
	echo "systemd-analyze verify reported the above"
	exit 1
fi
MANPATH="$dir/man" systemd-analyze verify ./bulkhead@.service
echo "bulkhead@.service verifies"
