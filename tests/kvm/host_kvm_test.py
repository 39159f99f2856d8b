#!/usr/bin/env python3
"""bulkhead on this host's own /dev/kvm, never inside the emulated KVM host.

Passes only if either
  - the guest boots to its init marker and powers off (a KVM that runs guest
    code at hardware speed), and `bulkhead --check-host=kvm` agrees (exit 0);
  - or bulkhead refuses the host within REFUSE_S seconds with exit status 2
    and a message that names what it found, and `--check-host=kvm` agrees
    (exit 1).
It never waits for a guest that cannot run: once bulkhead has run for
REFUSE_S seconds on a host that --check-host refuses, the test fails at once.

usage: host_kvm_test.py --bulkhead PATH --kernel PATH --initramfs PATH
                        [--log DIR]
"""
import argparse
import os
import re
import select
import subprocess
import sys
import time

REFUSE_S = 2.0   # spawn to exit status 2, as bulkhead promises
BOOT_S = 120     # spawn to the init marker on a KVM that runs at speed
EXIT_S = 30      # marker to the end of bulkhead after the guest powers off
MARKER = b"BULKHEAD-INIT-MARKER"
# What bulkhead says when it refuses a host (controller/hostcheck.c).
REFUSALS = (
    re.compile(r"runs only PVM guest kernels, and a stock kernel would run "
               r"under instruction emulation"),
    re.compile(r"runs guest code under emulation, not at hardware speed"),
    re.compile(r"cannot open /dev/kvm: "),
    re.compile(r"/dev/kvm \(.*\) lacks KVM_CAP_"),
    re.compile(r"/dev/kvm \(.*\) could not run a probe guest"),
)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initramfs", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()

    have = os.path.exists("/dev/kvm")
    print("this host: /dev/kvm %s" % ("exists" if have else "is missing"))

    t0 = time.monotonic()
    chk = subprocess.run([a.bulkhead, "--check-host=kvm"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=30)
    check_s = time.monotonic() - t0
    report = chk.stdout.decode(errors="replace")
    print("bulkhead --check-host=kvm: status %d in %.2f s" %
          (chk.returncode, check_s))
    print("    " + report.strip().replace("\n", "\n    "))
    if chk.returncode not in (0, 1):
        fail("--check-host=kvm ended with status %d" % chk.returncode)
    host_ok = chk.returncode == 0

    cmd = [a.bulkhead, "--kernel", a.kernel, "--initramfs", a.initramfs,
           "--cmdline", "console=ttyS0 quiet bulkhead.run=poweroff",
           "--cpus", "boot=1", "--memory", "size=512M", "--serial", "tty"]
    print("running: " + " ".join(cmd))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    err = b""
    marker_at = None
    streams = {p.stdout.fileno(): "out", p.stderr.fileno(): "err"}
    try:
        while streams:
            now = time.monotonic() - t0
            if marker_at is None:
                limit = REFUSE_S if not host_ok else BOOT_S
            else:
                limit = marker_at + EXIT_S
            if now >= limit:
                break
            r, _, _ = select.select(list(streams), [], [],
                                    min(0.1, limit - now))
            for fd in r:
                data = os.read(fd, 65536)
                if not data:
                    del streams[fd]
                elif streams[fd] == "out":
                    out += data
                else:
                    err += data
            if marker_at is None and MARKER in out:
                marker_at = time.monotonic() - t0
                print("init marker after %.1f s" % marker_at)
        try:
            rc = p.wait(timeout=max(0.0, REFUSE_S - (time.monotonic() - t0))
                        if marker_at is None and not host_ok else 5)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    elapsed = time.monotonic() - t0
    text = err.decode(errors="replace")
    if a.log:
        os.makedirs(a.log, exist_ok=True)
        with open(os.path.join(a.log, "bulkhead.out"), "wb") as f:
            f.write(out)
        with open(os.path.join(a.log, "bulkhead.err"), "wb") as f:
            f.write(err)
    print("bulkhead: status %s after %.2f s" % (rc, elapsed))
    if text.strip():
        print("    " + text.strip().replace("\n", "\n    "))

    if marker_at is not None:
        if rc != 0:
            fail("the guest booted but bulkhead ended with status %s" % rc)
        if not host_ok:
            fail("the guest booted on a host that --check-host=kvm refused")
        print("PASS: this host's /dev/kvm booted the guest (marker after "
              "%.1f s)" % marker_at)
        return
    if rc is None:
        fail("bulkhead neither refused the host within %.1f s nor booted "
             "the guest: it would have waited for a guest that cannot run"
             % REFUSE_S if not host_ok else
             "no init marker within %d s on a KVM that --check-host=kvm "
             "passed" % BOOT_S)
    if rc != 2:
        fail("bulkhead ended with status %d, not 2 (a refusal) or 0 "
             "(the guest powered off)" % rc)
    if elapsed > REFUSE_S:
        fail("bulkhead refused the host after %.2f s, not within %.1f s"
             % (elapsed, REFUSE_S))
    if not any(x.search(text) for x in REFUSALS):
        fail("bulkhead exited 2 without a message that names what it "
             "found in /dev/kvm")
    if host_ok:
        fail("bulkhead refused a host that --check-host=kvm passed")
    print("PASS: bulkhead refused this host's /dev/kvm in %.2f s with "
          "status 2" % elapsed)


if __name__ == "__main__":
    main()
