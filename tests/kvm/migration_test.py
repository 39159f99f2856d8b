#!/usr/bin/env python3
"""Live migration of a running guest between bulkhead processes, run where
/dev/kvm works (tests/kvm/kvm-host provides one).

usage: migration_test.py migration --bulkhead B --bulkhead-ctl C --kernel K
                         --initramfs I --crash-kernel X --log DIR

One guest (1 vCPU, 512 MiB, a disk) boots once and moves from bulkhead to
bulkhead. In it a loop counts in RAM (/tmp/count) and appends its count to
the disk every 100 ms, each in a 64-byte record of its own; bh-guest-tool
dirty keeps rewriting 64 MiB of its memory with a generation number; a
32 MiB buffer in /tmp has its sha256 taken before.
- unix: (RAM copied in passes) to a second bulkhead: the source exits 0,
  the destination runs the guest; while it ran, migration-status showed
  passes and pages; the host saw the disk's records stop and go on (the
  downtime, beside the one the source measured);
- unix:,local=on (guest RAM passed as its memfd) to a third;
- the third runs in a network namespace of its own, and the guest goes on
  over tcp: to a fourth in a second one, joined to the first by a veth
  pair;
- refusals and failures, after each of which the source still runs (its
  count goes on) and holds no more fds than before: a destination whose
  disk path is missing (refused at CONFIG: no page sent); the
  destination killed -9 in the middle of the
  memory; the destination killed -9 during the stop-and-copy pass (the
  connection cut in the last pass); abandon-migration on the source, and
  on the destination. Each destination of a failure exits non-zero and
  leaves no process.
- then: the dirtier stops and finds every page at its last generation,
  the buffer's sha256 is what it was, the count went on without a restart,
  the disk's records have no gap and no damage;
- last, the source killed -9 in the middle of a migration: the
  destination exits non-zero and leaves no process.
Every wait is bounded.
"Did not converge" is checked by test_migration_api, whose guest is a host
process: here the guest's vCPU shares the emulated host's one CPU with the
VMM, so while a pass is copied the guest barely runs, and even downtime=1
converges once a pass finds nothing dirty.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import boot_test as bt
from boot_test import Fail
# The counter's records on the disk, as the snapshot test reads them.
from snapshot_test import RECORD, check_records, guest_count

CASES = ("migration",)
MIB = 1024 * 1024
DISK_SIZE = 16 * MIB
DIRTY_MIB = 64
BUF_MIB = 32
MIGRATE_S = 600      # one migration, start to answer
FAIL_S = 180         # a failing migration's answer
DOWNTIME_OK = 30000  # ms accepted where the migration must succeed
NS = "bh-migdst"
NS_SRC = "bh-migsrc"
NS_ADDR = "10.99.7.2"
HOST_ADDR = "10.99.7.1"
PORT = 6007
# BH_MIGRATION_TEST_FAILURES=0 leaves the refusals and failures out (the
# sanitizer pass of tests/run: test_migration_api covers those paths under
# the sanitizers without KVM, and the run stays within CI's time).
FAILURES = os.environ.get("BH_MIGRATION_TEST_FAILURES", "1") != "0"


class RecordWatch:
    """Polls the disk image from the host: the longest time no new record
    appeared (the guest's downtime as the disk saw it, plus up to one
    100 ms tick)."""

    def __init__(self, path):
        self.path = path
        self.stop = False
        self.gaps = []
        self.t = threading.Thread(target=self.run, daemon=True)

    def top(self):
        with open(self.path, "rb") as f:
            data = f.read()
        n = len(data) // RECORD
        while n > 0 and not data[(n - 1) * RECORD:n * RECORD].strip(b"\0"):
            n -= 1
        return n

    def run(self):
        last_top, last_t = self.top(), time.monotonic()
        while not self.stop:
            time.sleep(0.02)
            t = self.top()
            now = time.monotonic()
            if t != last_top:
                self.gaps.append(now - last_t)
                last_top, last_t = t, now

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop = True
        self.t.join(5)

    def wait_new(self, limit):
        """Until a record appears after the longest gap so far: the
        destination writes again (bounded)."""
        n = len(self.gaps)
        deadline = time.monotonic() + limit
        while len(self.gaps) == n and time.monotonic() < deadline:
            time.sleep(0.05)

    def longest(self):
        return max(self.gaps) if self.gaps else float("nan")


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def wait_api(args, vm, sock, step):
    deadline = time.monotonic() + bt.BOOT_S
    while not os.path.exists(sock) or \
            bt.ctl(args, sock, "ping", check=False)[0] != 0:
        vm.pump(0.3)
        if vm.exited():
            raise Fail(f"{step}: bulkhead exited with status {vm.status}: "
                       f"{vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise Fail(f"{step}: no API on {sock} after {bt.BOOT_S} s")


def ctl_bg(args, sock, *cmd, limit=MIGRATE_S):
    """bulkhead-ctl in the background: (Popen, log path)."""
    log = os.path.join(args.log, f"ctl-{cmd[0]}-{time.monotonic_ns()}.json")
    f = open(log, "wb")
    p = subprocess.Popen([args.bulkhead_ctl, "--api-socket", sock, "--json",
                          "--timeout", str(limit)] + list(cmd),
                         stdout=f, stderr=subprocess.STDOUT,
                         env=bt.run_env())
    f.close()
    return p, log


def bg_result(p, log, limit, step):
    try:
        st = p.wait(limit)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Fail(f"{step}: bulkhead-ctl did not answer in {limit} s")
    with open(log, errors="replace") as f:
        return st, f.read()


def status(args, sock):
    st, out = bt.ctl(args, sock, "migration-status", check=False)
    if st != 0 or not out:
        return {}
    return out.get("status", out)


def spawn(args, vm_factory, sub, argv):
    """A bulkhead whose console and stderr go into a directory of its own
    under the log directory (each process of the chain keeps its logs)."""
    top = args.log
    d = os.path.join(top, sub.replace(" ", "-"))
    os.makedirs(d, exist_ok=True)
    args.log = d
    try:
        return vm_factory(argv)
    finally:
        args.log = top


class Dest:
    """A bulkhead waiting for a migration, and its receive-migration."""

    def __init__(self, args, vm_factory, name, url, prefix=()):
        self.sock = os.path.join(args.sockdir, f"{name}.sock")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.vm = spawn(args, vm_factory, f"dst-{name}",
                        list(prefix) + [args.bulkhead, "--log-level",
                                        "debug", "--api-socket",
                                        f"path={self.sock}"])
        wait_api(args, self.vm, self.sock, f"destination {name}")
        self.recv = ctl_bg(args, self.sock, "receive-migration", url)
        self.name = name

    def wait_failed(self, step):
        st = self.vm.wait_exit(FAIL_S, f"{step}: the destination to exit")
        if st == 0:
            raise Fail(f"{step}: the destination exited 0 after a failed "
                       f"migration")
        rst, out = bg_result(*self.recv, 30, step)
        if rst == 0:
            raise Fail(f"{step}: receive-migration answered success: {out}")
        return out


def wait_listening(path, step, vm=None):
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if vm:
            vm.pump(0.1)
        else:
            time.sleep(0.1)
        if time.monotonic() > deadline:
            raise Fail(f"{step}: {path} never appeared")


def still_runs(args, vm, sock, before, fds0, step):
    """After a failed migration the source runs on, counting, its fds
    back to where they were."""
    if bt.api_state(args, sock) != "RUNNING":
        raise Fail(f"{step}: the source is {bt.api_state(args, sock)}, not "
                   f"RUNNING")
    time.sleep(1)
    n = guest_count(vm, f"{step}: the count after")
    if n <= before:
        raise Fail(f"{step}: the source's count stays at {n}")
    deadline = time.monotonic() + 10
    while fd_count(vm.proc.pid) > fds0:
        if time.monotonic() > deadline:
            raise Fail(f"{step}: the source holds {fd_count(vm.proc.pid)} "
                       f"fds, {fds0} before")
        vm.pump(0.3)
    return n


def migrate(args, vm_factory, src, src_sock, disk, name, url, opts,
            prefix=(), watch_status=True):
    """Moves the guest from src to a new bulkhead; returns (vm, sock,
    summary)."""
    dst = Dest(args, vm_factory, name, url, prefix)
    if url.startswith("unix:"):
        wait_listening(url[5:], f"{name}: the migration socket")
    else:
        time.sleep(1)
    t = time.monotonic()
    seen = {}
    with RecordWatch(disk) as w:
        send = ctl_bg(args, src_sock, "send-migration", url + opts)
        while send[0].poll() is None:
            if watch_status:
                s = status(args, src_sock)
                if s.get("phase"):
                    seen[s.get("phase")] = s
            src.pump(0.2)
            dst.vm.pump(0.1)
            if time.monotonic() - t > MIGRATE_S:
                raise Fail(f"{name}: no answer to send-migration")
        st, out = bg_result(*send, 5, name)
        took = time.monotonic() - t
        if st != 0:
            raise Fail(f"{name}: send-migration: status {st}: {out}")
        rst, rout = bg_result(*dst.recv, 60, f"{name}: receive-migration")
        if rst != 0:
            raise Fail(f"{name}: receive-migration: status {rst}: {rout}")
        sst = src.wait_exit(bt.POWEROFF_S, f"{name}: the source to exit")
        if sst != 0:
            raise Fail(f"{name}: the source exited {sst}, not 0")
        if bt.api_state(args, dst.sock) != "RUNNING":
            raise Fail(f"{name}: the destination is "
                       f"{bt.api_state(args, dst.sock)}")
        # The destination's first record closes the gap.
        w.wait_new(30)
        time.sleep(0.5)
    res = re.search(r'"downtime_ms":\s*"?(\d+)', out)
    passes = re.search(r'"pass":\s*(\d+)', out)
    sent = re.search(r'"bytes_sent":\s*"?(\d+)', out)
    summary = (f"{name}: {took:.1f} s, {int(sent.group(1)) // MIB if sent else 0}"
               f" MiB in {int(passes.group(1)) + 1 if passes else 1} passes, "
               f"downtime {res.group(1) if res else '?'} ms (the disk's "
               f"records stopped for {w.longest() * 1000:.0f} ms)")
    if watch_status and "memory" not in seen and "memfd" not in seen:
        raise Fail(f"{name}: migration-status never showed the memory "
                   f"being sent (saw {sorted(seen)})")
    return dst.vm, dst.sock, summary


def failing(args, vm_factory, src, src_sock, name, url, opts, want,
            action=None, prefix=()):
    """A migration that must fail, leaving the source running."""
    before = guest_count(src, f"{name}: the count before")
    fds0 = fd_count(src.proc.pid)
    dst = Dest(args, vm_factory, name, url, prefix)
    if url.startswith("unix:"):
        wait_listening(url[5:], f"{name}: the migration socket")
    send = ctl_bg(args, src_sock, "send-migration", url + opts,
                  limit=FAIL_S)
    if action:
        action(dst, send)
    st, out = bg_result(*send, FAIL_S + 10, name)
    if st == 0:
        raise Fail(f"{name}: send-migration succeeded")
    if want not in out:
        raise Fail(f"{name}: the error does not say {want!r}: {out}")
    dst.wait_failed(name)
    still_runs(args, src, src_sock, before, fds0, name)
    msg = re.search(r'"message":\s*"([^"]*)"', out)
    return f"{name}: {msg.group(1) if msg else out.strip()[-160:]}"


def wait_phase(args, sock, phases, limit, step):
    """Waits for the migration just asked for to be in one of phases; the
    status shows the last one's outcome until it begins."""
    deadline = time.monotonic() + limit
    begun = False
    while True:
        s = status(args, sock)
        if s.get("phase") in phases and \
                (s.get("phase") != "memory" or int(s.get("pages_sent", 0))):
            return s
        if s.get("phase") not in ("done", "failed", "none", None):
            begun = True
        elif begun:
            raise Fail(f"{step}: the migration ended ({s}) before "
                       f"{phases}")
        if time.monotonic() > deadline:
            raise Fail(f"{step}: no phase in {phases} after {limit} s")
        time.sleep(0.05)


def failures(args, vm_factory, vm, sock, diskdir, results):
    """Each refused or failed migration leaves vm (the source) running."""
    results.append(failing(
        args, vm_factory, vm, sock, "disk missing",
        f"unix:{args.sockdir}/mig-nodisk.sock", f",downtime={DOWNTIME_OK}",
        "lines.img",
        prefix=("unshare", "-m", "sh", "-c",
                f"mount -t tmpfs none {diskdir} && exec \"$@\"", "sh")))

    def kill_in_memory(dst, send):
        wait_phase(args, sock, ("memory",), 60, "the destination's kill")
        dst.vm.proc.send_signal(signal.SIGKILL)
    results.append(failing(
        args, vm_factory, vm, sock, "destination killed",
        f"unix:{args.sockdir}/mig-kill.sock", f",downtime={DOWNTIME_OK}",
        "destination", action=kill_in_memory))

    def cut_last_pass(dst, send):
        wait_phase(args, sock, ("pausing", "stop-and-copy"), 120,
                   "the cut in the last pass")
        dst.vm.proc.send_signal(signal.SIGKILL)
    results.append(failing(
        args, vm_factory, vm, sock, "cut in the last pass",
        f"unix:{args.sockdir}/mig-cut.sock", f",downtime={DOWNTIME_OK}",
        "destination", action=cut_last_pass))

    def abandon_src(dst, send):
        wait_phase(args, sock, ("memory",), 60, "abandon on the source")
        bt.ctl(args, sock, "abandon-migration")
    results.append(failing(
        args, vm_factory, vm, sock, "abandoned by the source",
        f"unix:{args.sockdir}/mig-ab1.sock", f",downtime={DOWNTIME_OK}",
        "abandoned", action=abandon_src))

    def abandon_dst(dst, send):
        wait_phase(args, sock, ("memory",), 60, "abandon on the destination")
        bt.ctl(args, dst.sock, "abandon-migration")
    results.append(failing(
        args, vm_factory, vm, sock, "abandoned by the destination",
        f"unix:{args.sockdir}/mig-ab2.sock", f",downtime={DOWNTIME_OK}",
        "gave up", action=abandon_dst))


def netns_down():
    for ns in (NS_SRC, NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def case_migration(args, vm_factory):
    args.sockdir = bt.socket_dir(args.log)
    diskdir = os.path.join(args.log, "disks")
    if os.path.exists(diskdir):
        shutil.rmtree(diskdir)
    os.makedirs(diskdir)
    disk = os.path.join(diskdir, "lines.img")
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    sock = os.path.join(args.sockdir, "src.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    vm = spawn(args, vm_factory, "src",
               bt.argv(args) + ["--log-level", "debug",
                                "--api-socket", f"path={sock}",
                                "--disk", f"path={disk}"])
    bt.boot_to_prompt(vm)
    vm.send("(n=0; while true; do n=$((n+1)); echo $n >/tmp/count; "
            "printf '%-63s\\n' \"count $(printf %010d $n)\" | "
            "dd of=/dev/vda bs=64 seek=$n conv=notrunc,fsync 2>/dev/null; "
            "sleep 0.1; done) &\n", "the counter")
    sha0 = vm.value("SHA0", f"yes migration-buffer-$(printf %01011d 0) | "
                    f"head -c {BUF_MIB * MIB} >/tmp/buf; sha256sum </tmp/buf",
                    "the buffer", bt.IO_S).split()[0]
    vm.send(f"rm -f /tmp/dirty.stop; bh-guest-tool dirty {DIRTY_MIB} "
            f"/tmp/dirty.stop >/tmp/dirty.out 2>&1 &\n", "the dirtier")
    time.sleep(2)
    n0 = guest_count(vm, "the count before the migrations")
    results = []

    # Refusals first, on the first source.
    if FAILURES:
        failures(args, vm_factory, vm, sock, diskdir, results)
    else:
        results.append("refusals and failures left out "
                       "(BH_MIGRATION_TEST_FAILURES=0)")

    # The guest moves: unix with copies, unix with its memfd, tcp.
    vm, sock, s1 = migrate(args, vm_factory, vm, sock, disk, "unix",
                           f"unix:{args.sockdir}/mig1.sock",
                           f",downtime={DOWNTIME_OK}")
    # Two network namespaces joined by a veth pair: the local=on hop lands
    # in the first, the TCP hop goes from it to the second.
    netns_down()
    for c in (["ip", "netns", "add", NS_SRC],
              ["ip", "netns", "add", NS],
              ["ip", "-n", NS_SRC, "link", "add", "bhmig0", "type", "veth",
               "peer", "name", "bhmig1", "netns", NS],
              ["ip", "-n", NS_SRC, "addr", "add", f"{HOST_ADDR}/24", "dev",
               "bhmig0"],
              ["ip", "-n", NS_SRC, "link", "set", "bhmig0", "up"],
              ["ip", "-n", NS_SRC, "link", "set", "lo", "up"],
              ["ip", "-n", NS, "addr", "add", f"{NS_ADDR}/24", "dev",
               "bhmig1"],
              ["ip", "-n", NS, "link", "set", "bhmig1", "up"],
              ["ip", "-n", NS, "link", "set", "lo", "up"]):
        p = subprocess.run(c, capture_output=True)
        if p.returncode != 0:
            raise Fail(f"{' '.join(c)}: {p.stderr.decode().strip()}")
    vm, sock, s2 = migrate(args, vm_factory, vm, sock, disk, "local",
                           f"unix:{args.sockdir}/mig2.sock",
                           ",local=on", watch_status=False,
                           prefix=("ip", "netns", "exec", NS_SRC))
    vm, sock, s3 = migrate(args, vm_factory, vm, sock, disk, "tcp",
                           f"tcp:{NS_ADDR}:{PORT}",
                           f",downtime={DOWNTIME_OK}",
                           prefix=("ip", "netns", "exec", NS))
    results += [s1, s2, s3]

    # What the guest saw.
    vm.send("touch /tmp/dirty.stop\n", "stopping the dirtier")
    got = vm.value("DIRTY", "until grep -q '^DIRTY_[OB]' /tmp/dirty.out; "
                   "do sleep 0.2; done; tail -n1 /tmp/dirty.out",
                   "the dirtier's verdict", bt.IO_S)
    if not got.startswith("DIRTY_OK"):
        raise Fail(f"the dirtier found: {got}")
    sha1 = vm.value("SHA1", "sha256sum </tmp/buf", "the buffer after",
                    bt.IO_S).split()[0]
    if sha1 != sha0:
        raise Fail(f"the buffer's sha256 is {sha1} after the migrations, "
                   f"{sha0} before")
    n1 = guest_count(vm, "the count after the migrations")
    if n1 <= n0:
        raise Fail(f"the count is {n1} after the migrations, {n0} before")
    vm.send("kill %1\n", "stopping the counter")
    time.sleep(1)
    vm.pump(0.5)
    top = check_records(disk, n0)

    # Last: the source killed in the middle; the destination gives up.
    dst = Dest(args, vm_factory, "source killed",
               f"unix:{args.sockdir}/mig-last.sock")
    wait_listening(f"{args.sockdir}/mig-last.sock", "the last migration")
    vm.send("yes bulkhead-dirt | head -c 100000000 >/tmp/more\n",
            "more RAM to send")
    time.sleep(3)
    ctl_bg(args, sock, "send-migration",
           f"unix:{args.sockdir}/mig-last.sock,downtime=1")
    wait_phase(args, sock, ("memory",), 60, "the source's kill")
    vm.kill()
    dout = dst.wait_failed("source killed")
    if "source" not in dout:
        raise Fail(f"source killed: the destination's error does not name "
                   f"the source: {dout}")
    netns_down()
    bt.wait_no_children("after the last migration")
    shutil.rmtree(diskdir)
    return ("; ".join(results) +
            f"; the dirtier's 64 MiB all at its last generation, the "
            f"buffer's sha256 the same, the count {n0} -> {n1}, records "
            f"1..{top} whole; the source killed mid-way: the destination "
            f"exited non-zero")


def main():
    ap = argparse.ArgumentParser(description="bulkhead migration tests")
    ap.add_argument("case", choices=CASES)
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--bulkhead-ctl", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initramfs", required=True)
    ap.add_argument("--crash-kernel", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    bt.case_migration = case_migration
    return bt.run_case(args, f"migration_test {args.case}")


if __name__ == "__main__":
    sys.exit(main())
