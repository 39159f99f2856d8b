#!/usr/bin/env python3
"""Snapshot and restore of a running guest, run where /dev/kvm works
(tests/kvm/kvm-host provides one).

usage: snapshot_test.py snapshot --bulkhead B --bulkhead-ctl C --kernel K
                        --initramfs I --crash-kernel X --log DIR

One guest with --api-socket and a disk. In the guest a loop counts in RAM
(/tmp/count, a tmpfs) and appends its count to the disk every 100 ms, each
in a 64-byte record of its own at offset 64 * count, synced.
- pause (info says PAUSED), snapshot into a fresh directory (its files are
  there, guest memory takes less room than the guest has), a second
  snapshot into the same directory is refused, the VMM is killed (-9);
- bulkhead --restore source_url=file://DIR with a new API socket: info says
  PAUSED, resume; the count goes on from where it was (more than before,
  no restart from 1), the shell on the serial console answers, the guest's
  clock did not go back, the disk's records have no gap and no damage,
  the guest powers off and shutdown-vmm ends the VMM with status 0;
- a damaged copy of the snapshot is refused, each with status 2 and the
  file and the problem named, and no bulkhead-vcpu left behind: the state
  truncated, a byte of guest memory changed, another format version; then
  the disk grown by 1 MiB (the snapshot was taken with the old size).
Every wait is bounded.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import boot_test as bt
from boot_test import Fail

CASES = ("snapshot",)
MIB = 1024 * 1024
DISK_SIZE = 16 * MIB
RECORD = 64
COUNT_BEFORE = 20     # records written before the pause
RUN_AFTER_S = 3       # the restored guest counts this long
REFUSE_S = 60         # a refused restore's exit


def guest_count(vm, step):
    got = vm.value("COUNT", "cat /tmp/count", step)
    if not got.isdigit():
        raise Fail(f"{step}: the guest's count reads {got!r}")
    return int(got)


def records(path):
    """The disk's records: {n: text} for every non-empty 64-byte record."""
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    for i in range(len(data) // RECORD):
        rec = data[i * RECORD:(i + 1) * RECORD]
        if rec.strip(b"\0"):
            out[i] = rec
    return out


def check_records(path, last_before):
    got = records(path)
    if not got:
        raise Fail(f"{path}: no records")
    top = max(got)
    if top <= last_before:
        raise Fail(f"{path}: the last record is {top}, not past the "
                   f"{last_before} written before the snapshot")
    for n in range(1, top + 1):
        want = f"count {n:010d}".ljust(RECORD - 1).encode() + b"\n"
        if got.get(n) != want:
            raise Fail(f"{path}: record {n} of 1..{top} is "
                       f"{got.get(n)!r}, not {want!r} (a gap or damage)")
    return top


def restore_argv(args, sock, snapdir):
    return [args.bulkhead, "--api-socket", f"path={sock}",
            "--restore", f"source_url=file://{snapdir}"]


def refused(args, vm_factory, sock, snapdir, want, step):
    """A restore of snapdir exits with status 2 and says want; nothing of
    it is left."""
    vm = vm_factory(restore_argv(args, sock, snapdir))
    st = vm.wait_exit(REFUSE_S, f"the refusal of {step}")
    if st != 2:
        raise Fail(f"{step}: bulkhead --restore exited with status {st}, "
                   f"not 2: {vm.err.strip()[-300:]}")
    if want not in vm.err:
        raise Fail(f"{step}: the error does not say {want!r}: "
                   f"{vm.err.strip()[-300:]}")
    bt.wait_no_children(f"after the refusal of {step}")
    return vm.err.strip().splitlines()[-1]


def copy_snapshot(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for name in os.listdir(src):
        subprocess.run(["cp", "--sparse=always", os.path.join(src, name),
                        os.path.join(dst, name)], check=True)


def flip_byte(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xff]))


def first_data_offset(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_DATA)
    finally:
        os.close(fd)


def case_snapshot(args, vm_factory):
    sockdir = bt.socket_dir(args.log)
    sock1 = os.path.join(sockdir, "api1.sock")
    sock2 = os.path.join(sockdir, "api2.sock")
    for s in (sock1, sock2):
        if os.path.exists(s):
            os.unlink(s)
    disk = os.path.join(args.log, "lines.img")
    snapdir = os.path.join(args.log, "snap")
    if "," in disk or "," in snapdir:
        raise Fail("a comma in the log directory's path cannot go into "
                   "--disk or --restore")
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    if os.path.exists(snapdir):
        shutil.rmtree(snapdir)
    os.makedirs(snapdir)

    vm = vm_factory(bt.argv(args) + ["--api-socket", f"path={sock1}",
                                     "--disk", f"path={disk}"])
    t_marker = bt.boot_to_prompt(vm)
    vm.send("(n=0; while true; do n=$((n+1)); echo $n >/tmp/count; "
            "printf '%-63s\\n' \"count $(printf %010d $n)\" | "
            "dd of=/dev/vda bs=64 seek=$n conv=notrunc,fsync 2>/dev/null; "
            "sleep 0.1; done) &\n", "the counter")
    deadline = time.monotonic() + bt.IO_S
    while True:
        vm.pump(1)
        n = guest_count(vm, "the count before the snapshot")
        if n >= COUNT_BEFORE:
            break
        if time.monotonic() > deadline:
            raise Fail(f"the guest counted only to {n} in {bt.IO_S} s")
    date0 = int(vm.value("DATE0", "date +%s", "the guest's clock"))

    bt.ctl(args, sock1, "pause")
    if bt.api_state(args, sock1) != "PAUSED":
        raise Fail("info after pause: not PAUSED")
    t = time.monotonic()
    bt.ctl(args, sock1, "snapshot", f"file://{snapdir}", limit=300)
    t_snap = time.monotonic() - t
    names = sorted(os.listdir(snapdir))
    if names != ["config", "memory", "memory.map", "state"]:
        raise Fail(f"the snapshot directory holds {names}")
    mem = os.path.join(snapdir, "memory")
    used = os.stat(mem).st_blocks * 512
    if os.path.getsize(mem) != 512 * MIB or used >= 512 * MIB:
        raise Fail(f"memory: {os.path.getsize(mem)} bytes, {used} on disk")
    st, _ = bt.ctl(args, sock1, "snapshot", f"file://{snapdir}",
                   check=False)
    if st == 0:
        raise Fail("a second snapshot into the same directory was taken")
    # The count the guest had when paused: the disk's last record.
    n_snap = max(records(disk))
    vm.kill()
    bt.wait_no_children("after the first VMM was killed")

    # Restored: paused, then running on from where it was.
    t = time.monotonic()
    vm2 = vm_factory(restore_argv(args, sock2, snapdir))
    deadline = time.monotonic() + bt.BOOT_S
    while not os.path.exists(sock2) or \
            bt.ctl(args, sock2, "info", check=False)[0] != 0:
        vm2.pump(0.5)
        if vm2.exited():
            raise Fail(f"bulkhead --restore exited with status "
                       f"{vm2.status}: {vm2.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise Fail(f"no API on {sock2} {bt.BOOT_S} s after --restore")
    if bt.api_state(args, sock2) != "PAUSED":
        raise Fail(f"info after --restore: {bt.api_state(args, sock2)}, "
                   f"not PAUSED")
    t_restore = time.monotonic() - t
    bt.ctl(args, sock2, "resume")
    start = len(vm2.out)
    end = time.monotonic() + RUN_AFTER_S
    while time.monotonic() < end:
        vm2.pump(0.2)
    n_after = guest_count(vm2, "the count after the restore")
    if n_after <= n_snap:
        raise Fail(f"the restored guest's count is {n_after}, not past "
                   f"{n_snap} (where it was at the snapshot)")
    date1 = int(vm2.value("DATE1", "date +%s", "the clock after restore"))
    if date1 < date0:
        raise Fail(f"the guest's clock went back: {date0} before the "
                   f"snapshot, {date1} after the restore")
    vm2.send("kill %1\n", "stopping the counter")
    time.sleep(1)
    vm2.pump(0.5)
    # With an API socket the VMM outlives its guest: shutdown-vmm ends it.
    vm2.send("poweroff -f\n", "poweroff")
    deadline = time.monotonic() + bt.POWEROFF_S
    while "guest powered off" not in vm2.err:
        if vm2.exited() or time.monotonic() > deadline:
            raise Fail("the restored guest did not power off")
        vm2.pump(0.5)
    bt.ctl(args, sock2, "shutdown-vmm")
    st = vm2.wait_exit(bt.POWEROFF_S, "bulkhead to exit after shutdown-vmm")
    if st != 0:
        raise Fail(f"the restored VMM exited with status {st}, not 0")
    del start
    top = check_records(disk, n_snap)

    # Damaged snapshots, each refused by name.
    bad = os.path.join(args.log, "snap-bad")
    copy_snapshot(snapdir, bad)
    with open(os.path.join(bad, "state"), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(bad, "state")) - 10)
    msgs = [refused(args, vm_factory, sock2, bad, "state: truncated",
                    "a truncated state")]
    copy_snapshot(snapdir, bad)
    flip_byte(os.path.join(bad, "memory"),
              first_data_offset(os.path.join(bad, "memory")) + 100)
    msgs.append(refused(args, vm_factory, sock2, bad, "memory: corrupted",
                        "guest memory with a byte changed"))
    copy_snapshot(snapdir, bad)
    flip_byte(os.path.join(bad, "config"), 12)
    msgs.append(refused(args, vm_factory, sock2, bad, "format version",
                        "a config of another version"))
    with open(disk, "r+b") as f:
        f.truncate(DISK_SIZE + MIB)
    msgs.append(refused(args, vm_factory, sock2, snapdir,
                        "the snapshot was taken with",
                        "a disk of another size"))
    shutil.rmtree(bad)
    shutil.rmtree(snapdir)
    os.unlink(disk)
    return (f"marker after {t_marker:.1f} s; paused at count {n_snap}, "
            f"snapshot in {t_snap:.1f} s ({used // MIB} MiB of 512 on "
            f"disk); restored and paused in {t_restore:.1f} s; counted on "
            f"to {n_after}, records 1..{top} whole, clock {date0} -> "
            f"{date1}; refused: " + "; ".join(msgs))


def main():
    ap = argparse.ArgumentParser(description="bulkhead snapshot tests")
    ap.add_argument("case", choices=CASES)
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--bulkhead-ctl", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initramfs", required=True)
    ap.add_argument("--crash-kernel", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    bt.case_snapshot = case_snapshot
    return bt.run_case(args, f"snapshot_test {args.case}")


if __name__ == "__main__":
    sys.exit(main())
