#!/usr/bin/env python3
"""Snapshot and restore of a running guest, run where /dev/kvm works
(tests/kvm/kvm-host provides one).

usage: snapshot_test.py snapshot --bulkhead B --bulkhead-ctl C --kernel K
                        --initramfs I --crash-kernel X --log DIR

One guest with --api-socket, two disks and a virtio console to a file. In
the guest a loop counts in RAM
(/tmp/count, a tmpfs) and appends its count to the disk every 100 ms, each
in a 64-byte record of its own at offset 64 * count, synced.
- a 32 MiB write to the second disk (dd, synced) runs across the pause and
  the snapshot: it completes after the restore, and the disk holds what
  the guest wrote;
- pause (info says PAUSED), snapshot into a fresh directory (its files are
  there, guest memory takes less room than the guest has), a second
  snapshot into the same directory is refused, the VMM is killed (-9);
- bulkhead --restore source_url=file://DIR with a new API socket: info says
  PAUSED, resume; the count goes on from where it was (more than before,
  no restart from 1), the shell on the serial console answers, the guest's
  clock did not go back, the disk's records have no gap and no damage,
  a line the restored guest writes to /dev/hvc0 reaches the console file,
  the guest powers off and shutdown-vmm ends the VMM with status 0;
- two VMs restored side by side from the same snapshot, each with its own
  API socket and copies of the disks (--restore-disk ID=PATH), both count
  on into their own copy, and the original disk is not touched;
- a damaged copy of the snapshot is refused, each with status 2 and the
  file and the problem named, and no bulkhead-vcpu left behind: the state
  truncated, a byte of guest memory changed, another format version; then
  the disk grown by 1 MiB (the snapshot was taken with the old size).
A second guest, 2 vCPUs and 4 GiB, writes 64 MiB of a pattern into its RAM
(tmpfs) and runs a counter on each vCPU: its snapshot's memory file takes
far less room than 4 GiB, and restored, the pattern reads back the same
(sha256) and both counters go on.
Every wait is bounded.
"""

import argparse
import hashlib
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
BULK_SIZE = 32 * MIB  # written to the second disk across the snapshot
BULK_LINE = "bulkhead-snapshot-bulk-0123456789abcdef"
BIG_TOUCH = 64        # MiB the 4 GiB guest writes into its RAM
HVC_LINE = "BULKHEAD-SNAPSHOT-HVC0"


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
    bulk = os.path.join(args.log, "bulk.img")
    hvc = os.path.join(args.log, "hvc0.txt")
    snapdir = os.path.join(args.log, "snap")
    if "," in disk or "," in snapdir:
        raise Fail("a comma in the log directory's path cannot go into "
                   "--disk or --restore")
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    with open(bulk, "wb") as f:
        f.truncate(BULK_SIZE)
    if os.path.exists(hvc):
        os.unlink(hvc)
    if os.path.exists(snapdir):
        shutil.rmtree(snapdir)
    os.makedirs(snapdir)

    vm = vm_factory(bt.argv(args) + ["--api-socket", f"path={sock1}",
                                     "--disk", f"path={disk}",
                                     "--disk", f"path={bulk}",
                                     "--console", f"file={hvc}"])
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
    # A long write in flight across the pause and the snapshot; its end
    # is printed after the prompt, so no ^ in its pattern.
    vm.send(f"(yes {BULK_LINE} | head -c {BULK_SIZE} | dd of=/dev/vdb "
            f"bs=64k conv=fsync 2>/dev/null; echo BULK_RC=$?) &\n",
            "the long write")
    time.sleep(1)
    vm.pump(0.5)

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
    vm2.expect(re.compile(r"BULK_RC=(\d+)"), 0, bt.IO_S,
               "the long write to end after the restore")
    rc = re.search(r"BULK_RC=(\d+)", vm2.out).group(1)
    if rc != "0":
        raise Fail(f"the write across the snapshot ended with status {rc}")
    n_after = guest_count(vm2, "the count after the restore")
    if n_after <= n_snap:
        raise Fail(f"the restored guest's count is {n_after}, not past "
                   f"{n_snap} (where it was at the snapshot)")
    date1 = int(vm2.value("DATE1", "date +%s", "the clock after restore"))
    if date1 < date0:
        raise Fail(f"the guest's clock went back: {date0} before the "
                   f"snapshot, {date1} after the restore")
    rc = vm2.value("HVC_RC", f"echo {HVC_LINE} >/dev/hvc0; echo $?",
                   "a line written to /dev/hvc0 after the restore")
    if rc != "0":
        raise Fail(f"writing to /dev/hvc0 after the restore: status {rc}")
    deadline = time.monotonic() + bt.COMMAND_S
    while True:
        with open(hvc, errors="replace") as f:
            if HVC_LINE in f.read():
                break
        if time.monotonic() > deadline:
            raise Fail(f"{HVC_LINE} did not reach {hvc} after the restore")
        vm2.pump(0.5)
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
    line = (BULK_LINE + "\n").encode()
    want = (line * (BULK_SIZE // len(line) + 1))[:BULK_SIZE]
    with open(bulk, "rb") as f:
        if f.read() != want:
            raise Fail(f"{bulk}: not what the guest wrote across the "
                       f"snapshot")

    # Two VMs from the one snapshot, side by side, each with its own API
    # socket and copies of the disks: both count on, each into its copy.
    twins = []
    for tag in ("a", "b"):
        copies = {}
        for did, path in (("disk0", disk), ("disk1", bulk)):
            cp = os.path.join(args.log, f"{tag}-{os.path.basename(path)}")
            shutil.copyfile(path, cp)
            copies[did] = cp
        tsock = os.path.join(sockdir, f"twin-{tag}.sock")
        if os.path.exists(tsock):
            os.unlink(tsock)
        tvm = vm_factory(restore_argv(args, tsock, snapdir) +
                         [a for did, cp in copies.items()
                          for a in ("--restore-disk", f"{did}={cp}")])
        twins.append((tag, tvm, tsock, copies))
    for tag, tvm, tsock, _ in twins:
        deadline = time.monotonic() + bt.BOOT_S
        while not os.path.exists(tsock) or \
                bt.ctl(args, tsock, "info", check=False)[0] != 0:
            tvm.pump(0.5)
            if tvm.exited() or time.monotonic() > deadline:
                raise Fail(f"restored twin {tag} did not come up: "
                           f"{tvm.err.strip()[-300:]}")
    for tag, tvm, tsock, _ in twins:
        bt.ctl(args, tsock, "resume")
    before = records(disk)
    time.sleep(RUN_AFTER_S)
    twin_counts = []
    for tag, tvm, tsock, copies in twins:
        n = guest_count(tvm, f"twin {tag}'s count")
        if n <= n_snap:
            raise Fail(f"twin {tag} counts {n}, not past {n_snap}")
        twin_counts.append(n)
        tvm.send("kill %1\n", "stopping the counter")
        time.sleep(1)
        tvm.pump(0.5)
        bt.ctl(args, tsock, "shutdown-vmm")
        if tvm.wait_exit(bt.POWEROFF_S, f"twin {tag} to exit") != 0:
            raise Fail(f"twin {tag} exited with {tvm.status}")
        got = records(copies["disk0"])
        if max(got) <= n_snap:
            raise Fail(f"twin {tag} wrote nothing past record {n_snap} "
                       f"into its copy")
        for cp in copies.values():
            os.unlink(cp)
    if records(disk) != before:
        raise Fail(f"{disk} changed while only its copies were in use")
    bt.wait_no_children("after the twins ended")

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
    os.unlink(bulk)
    big = case_big(args, vm_factory, sock1)
    return (f"marker after {t_marker:.1f} s; paused at count {n_snap}, "
            f"snapshot in {t_snap:.1f} s ({used // MIB} MiB of 512 on "
            f"disk); restored and paused in {t_restore:.1f} s; counted on "
            f"to {n_after}, records 1..{top} whole, clock {date0} -> "
            f"{date1}; a 32 MiB write across the snapshot whole; hvc0 "
            f"answers; two restored side by side on disk copies counted "
            f"to {twin_counts}; refused: " + "; ".join(msgs) + "; " + big)


def case_big(args, vm_factory, sock):
    """2 vCPUs, 4 GiB: the snapshot takes about what the guest touched."""
    snapdir = os.path.join(args.log, "snap-big")
    if os.path.exists(snapdir):
        shutil.rmtree(snapdir)
    os.makedirs(snapdir)
    if os.path.exists(sock):
        os.unlink(sock)
    vm = vm_factory(bt.argv(args, cpus=2, memory="4G") +
                    ["--api-socket", f"path={sock}"])
    bt.boot_to_prompt(vm)
    # The size in bytes: busybox head refuses "64M" (it takes "64m"), and
    # the file would be empty, its hash the same after any restore. Long
    # lines: yes costs a library call per line, slow in a nested guest.
    sha0 = vm.value("SHA0", f"yes snapshot-ram-$(printf %01011d 0) | "
                    f"head -c {BIG_TOUCH * MIB} >/tmp/ram; "
                    f"sha256sum </tmp/ram", "the RAM pattern",
                    bt.IO_S).split()[0]
    line = b"snapshot-ram-" + b"0" * 1011 + b"\n"
    want = hashlib.sha256((line * (BIG_TOUCH * MIB // len(line) + 1))
                          [:BIG_TOUCH * MIB]).hexdigest()
    if sha0 != want:
        raise Fail(f"the RAM pattern's sha256 is {sha0}, not the {want} of "
                   f"{BIG_TOUCH} MiB of it: the guest did not write it")
    for cpu in (0, 1):
        vm.send(f"(n=0; while true; do n=$((n+1)); echo $n >/tmp/c{cpu}; "
                f"sleep 0.2; done) &\n", f"the counter on vCPU {cpu}")
        vm.value(f"PIN{cpu}", f"taskset -p {1 << cpu} $! >/dev/null; "
                 f"echo ok", f"pinning counter {cpu}")
    time.sleep(2)
    vm.pump(0.5)
    c0 = [int(vm.value(f"C{c}", f"cat /tmp/c{c}", "a counter"))
          for c in (0, 1)]
    bt.ctl(args, sock, "pause")
    t = time.monotonic()
    bt.ctl(args, sock, "snapshot", f"file://{snapdir}", limit=600)
    t_snap = time.monotonic() - t
    mem = os.path.join(snapdir, "memory")
    used = os.stat(mem).st_blocks * 512
    if os.path.getsize(mem) != 4096 * MIB:
        raise Fail(f"{mem}: {os.path.getsize(mem)} bytes, not 4 GiB")
    if used > 1024 * MIB:
        raise Fail(f"{mem}: {used // MIB} MiB on disk for a guest that "
                   f"touched little of its 4 GiB")
    vm.kill()
    bt.wait_no_children("after the 4 GiB VMM was killed")
    vm2 = vm_factory(restore_argv(args, sock, snapdir))
    deadline = time.monotonic() + bt.BOOT_S
    while not os.path.exists(sock) or \
            bt.ctl(args, sock, "info", check=False)[0] != 0:
        vm2.pump(0.5)
        if vm2.exited() or time.monotonic() > deadline:
            raise Fail(f"the 4 GiB restore did not come up: "
                       f"{vm2.err.strip()[-300:]}")
    bt.ctl(args, sock, "resume")
    time.sleep(2)
    vm2.pump(0.5)
    sha1 = vm2.value("SHA1", "sha256sum </tmp/ram", "the RAM pattern after",
                     bt.IO_S).split()[0]
    if sha1 != sha0:
        raise Fail(f"the 4 GiB guest's RAM pattern reads {sha1} after the "
                   f"restore, {sha0} before")
    c1 = [int(vm2.value(f"C{c}", f"cat /tmp/c{c}", "a counter"))
          for c in (0, 1)]
    if c1[0] <= c0[0] or c1[1] <= c0[1]:
        raise Fail(f"the counters did not go on: {c0} -> {c1}")
    ncpu = vm2.value("NCPU", "nproc", "the vCPU count")
    if ncpu != "2":
        raise Fail(f"the restored guest has {ncpu} vCPUs, not 2")
    vm2.send("poweroff -f\n", "poweroff")
    deadline = time.monotonic() + bt.POWEROFF_S
    while "guest powered off" not in vm2.err:
        if vm2.exited() or time.monotonic() > deadline:
            raise Fail("the restored 4 GiB guest did not power off")
        vm2.pump(0.5)
    bt.ctl(args, sock, "shutdown-vmm")
    if vm2.wait_exit(bt.POWEROFF_S, "bulkhead to exit") != 0:
        raise Fail(f"the restored 4 GiB VMM exited with {vm2.status}")
    shutil.rmtree(snapdir)
    return (f"2 vCPUs, 4 GiB: snapshot in {t_snap:.1f} s, {used // MIB} "
            f"MiB on disk, {BIG_TOUCH} MiB RAM pattern the same after the "
            f"restore, counters {c0} -> {c1}")


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
