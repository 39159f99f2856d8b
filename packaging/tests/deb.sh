#!/bin/sh
# cpack -G DEB, then what dpkg-deb says of the package: its name, version,
# architecture, the runtime libraries it depends on, and its files.
set -eu
build=$1 prefix=$2 version=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
command -v dpkg-deb >/dev/null || { echo "dpkg-deb not found"; exit 1; }
(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || {
	cat "$out/cpack.log"
	exit 1
}
deb=$out/bulkhead_${version}_amd64.deb
[ -f "$deb" ] || { ls "$out"; echo "no $deb"; exit 1; }
dpkg-deb -I "$deb"
dpkg-deb -c "$deb" >"$out/files"
cat "$out/files"
fail=0
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libseccomp2 libcap-ng0 libprotobuf-c1 libevent-core-2.1-7 \
	liburing2 libxxhash0; do
	echo "$depends" | grep -q "\\b$lib\\b" || {
		echo "Depends lacks $lib"
		fail=1
	}
done
[ "$(dpkg-deb -f "$deb" Package)" = bulkhead ] || fail=1
[ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || fail=1
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail=1
for f in bin/bulkhead bin/bulkhead-ctl libexec/bulkhead/bulkhead-vcpu \
	libexec/bulkhead/bulkhead-dev-blk libexec/bulkhead/bulkhead-dev-rng \
	libexec/bulkhead/bulkhead-dev-console libexec/bulkhead/bulkhead-dev-net libexec/bulkhead/bulkhead-dev-vsock \
	libexec/bulkhead/bulkhead-dev-pmem \
	lib/systemd/system/bulkhead@.service lib/sysusers.d/bulkhead.conf \
	lib/tmpfiles.d/bulkhead.conf share/doc/bulkhead/example.conf \
	share/man/man1/bulkhead.1 share/man/man1/bulkhead-ctl.1; do
	grep -q " \\.$prefix/$f\$" "$out/files" || {
		echo "the package lacks $prefix/$f"
		fail=1
	}
done
dpkg-deb -e "$deb" "$out/control"
[ -x "$out/control/postinst" ] || { echo "no postinst"; fail=1; }
# Every library a binary links is provided by a package it depends on.
if command -v dpkg-shlibdeps >/dev/null; then
	mkdir -p "$out/x/debian" "$out/x/root"
	dpkg-deb -x "$deb" "$out/x/root"
	: >"$out/x/debian/control"
	bins=$(find "$out/x/root" -type f -perm -u+x)
	for p in $( (cd "$out/x" && dpkg-shlibdeps -O \
		-l"$out/x/root$prefix/lib" \
		-l"$out/x/root$prefix/lib/x86_64-linux-gnu" $bins 2>/dev/null) |
		sed 's/^shlibs:Depends=//; s/([^)]*)//g; s/,/ /g'); do
		echo "$depends" | grep -q "\\b$p\\b" || {
			echo "dpkg-shlibdeps wants $p, Depends lacks it"
			fail=1
		}
	done
fi
[ "$fail" = 0 ] || exit 1
echo "$(basename "$deb"): dependencies and files as expected"
