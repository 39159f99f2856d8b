#!/bin/sh
# cmake --install into a temporary DESTDIR, then the files a host needs.
set -eu
build=$1 prefix=$2 libdir=$3
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
DESTDIR="$dest" cmake --install "$build" >/dev/null
root="$dest$prefix"
case $libdir in /*) lib=$dest$libdir ;; *) lib=$root/$libdir ;; esac
missing=0
for f in bin/bulkhead bin/bulkhead-ctl \
	libexec/bulkhead/bulkhead-vcpu libexec/bulkhead/bulkhead-dev-blk \
	libexec/bulkhead/bulkhead-dev-rng libexec/bulkhead/bulkhead-dev-console \
	libexec/bulkhead/bulkhead-dev-net libexec/bulkhead/bulkhead-dev-vsock \
	libexec/bulkhead/bulkhead-dev-pmem \
	lib/systemd/system/bulkhead@.service lib/sysusers.d/bulkhead.conf \
	lib/tmpfiles.d/bulkhead.conf share/doc/bulkhead/example.conf \
	share/man/man1/bulkhead.1 share/man/man1/bulkhead-ctl.1; do
	if [ ! -e "$root/$f" ]; then
		echo "missing: $prefix/$f"
		missing=1
	fi
done
[ -e "$lib/libbulkhead-client.so.0" ] || {
	echo "missing: libbulkhead-client.so.0 in $libdir"
	missing=1
}
for f in bin/bulkhead bin/bulkhead-ctl libexec/bulkhead/bulkhead-vcpu; do
	[ -x "$root/$f" ] || { echo "not executable: $f"; missing=1; }
done
# The installed unit runs the installed binary.
grep -q "^ExecStart=$prefix/bin/bulkhead --config /etc/bulkhead/%i.conf --name %i --api-socket path=/run/bulkhead/%i.sock\$" \
	"$root/lib/systemd/system/bulkhead@.service" || {
	echo "ExecStart does not name $prefix/bin/bulkhead"
	missing=1
}
# The installed controller looks for its children where they were put.
grep -q "$prefix/libexec/bulkhead" "$root/bin/bulkhead" || {
	echo "bin/bulkhead does not look in $prefix/libexec/bulkhead"
	missing=1
}
# No run path into the build tree.
for f in "$root"/bin/* "$root"/libexec/bulkhead/*; do
	if readelf -d "$f" | grep -E "R(UN)?PATH" | grep -q "$build"; then
		echo "$f: run path into $build"
		missing=1
	fi
done
[ "$missing" = 0 ] || exit 1
(cd "$dest" && find . -type f | sort)
echo "cmake --install: every file in place"
