#!/usr/bin/env python3
"""PCI hotplug of virtio disks and a virtio-pmem device through the API,
against a real guest, run where /dev/kvm works (tests/kvm/kvm-host provides
one).

usage: hotplug_test.py hotplug --bulkhead B --bulkhead-ctl C --kernel K
                       --initramfs I --crash-kernel X --log DIR

One guest with --api-socket and no disk at boot (plus its reboot):
- add-disk of an image holding a known pattern (read-only): the guest's
  ACPI hotplug driver finds it without a rescan, /dev/vda appears and its
  sha256 matches the image's;
- a second disk, written from the guest (the data checked in the image on
  the host);
- remove-device of the first while the guest reads it in a loop: the
  reader ends (an I/O error or the end of the device), never hangs, and
  /dev/vda goes;
- once both are removed, the controller's and the runner's fd counts are
  back where they were before the first add, and the worker is gone;
- the next add-disk takes the first disk's PCI slot again;
- a reboot (through the API) keeps the added disk: the guest finds it at
  boot, with the same data;
- add-pmem of a 64 MiB file holding a known pattern (no size=: the file's):
  /dev/pmemN appears, its first MiB has the sha256 the host computed, and a
  marker the guest writes at an offset and flushes (dd conv=fsync, sync) is
  in the file once the VM has exited;
- disks added up to 16 devices; the 17th is refused with the limit named.
Every wait is bounded.
"""

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time

import boot_test as bt
from boot_test import Fail

CASES = ("hotplug",)
MIB = 1024 * 1024
PATTERN_SIZE = 8 * MIB
PMEM_SIZE = 64 * MIB
PMEM_MARK = "bulkhead-hotplug-pmem-marker-0123456789"
PMEM_MARK_AT = 40 * MIB + 4321   # past the first MiB, within one 4 KiB page
WRITE_SIZE = 4 * MIB
WRITE_LINE = "bulkhead-hotplug-write-0123456789abcdef"
MAX_DEVICES = 16
DEVICE_WAIT_S = 30   # for the guest to see a disk come or go
REMOVE_S = 40        # remove-device: the VMM's 10 s and the guest's eject
READER_S = 60        # for the guest's reader of a removed disk to end
FDS_WAIT_S = 10      # for the fd counts to settle after a removal


def make_pattern(path, size=PATTERN_SIZE, tag="hotplug"):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // 64):
            block = f"bulkhead {tag} block {i:010d} ".encode()
            block += b"." * (63 - len(block)) + b"\n"
            h.update(block)
            f.write(block)
    return h.hexdigest()


def write_pattern():
    line = (WRITE_LINE + "\n").encode()
    data = line * (WRITE_SIZE // len(line) + 1)
    return data[:WRITE_SIZE]


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def one_pid(name):
    pids = bt.pids_named(name)
    if len(pids) != 1:
        raise Fail(f"{len(pids)} {name} processes, not 1")
    return pids[0]


def wait_disk(vm, dev, present, step):
    """Has the guest wait (bounded) until /sys/block/DEV exists or not;
    returns its size in sectors (present) or ''. The device node is made
    if the guest's /dev lacks it."""
    # Loop while the device is not yet as wanted.
    test = "! -e" if present else "-e"
    tries = DEVICE_WAIT_S * 10
    got = vm.value(
        f"WAIT_{dev.upper()}",
        f"i=0; while [ {test} /sys/block/{dev} ] && [ $i -lt {tries} ]; "
        f"do sleep 0.1; i=$((i+1)); done; "
        f"[ -e /sys/block/{dev} ] && cat /sys/block/{dev}/size",
        step, DEVICE_WAIT_S + bt.COMMAND_S)
    if present and not got.isdigit():
        raise Fail(f"{step}: no /sys/block/{dev} after {DEVICE_WAIT_S} s")
    if not present and got:
        raise Fail(f"{step}: /sys/block/{dev} still there after "
                   f"{DEVICE_WAIT_S} s")
    if present:
        vm.value(f"NODE_{dev.upper()}",
                 f"[ -b /dev/{dev} ] || mknod /dev/{dev} b "
                 f"$(tr : ' ' </sys/block/{dev}/dev); echo ok",
                 f"the node of /dev/{dev}")
    return got


def wait_pmem(vm, step):
    """Has the guest wait (bounded) for a /sys/block/pmemN; returns its
    name."""
    tries = DEVICE_WAIT_S * 10
    got = vm.value(
        "WAIT_PMEM",
        f"i=0; while ! ls /sys/block | grep -q '^pmem' && "
        f"[ $i -lt {tries} ]; do sleep 0.1; i=$((i+1)); done; "
        f"ls /sys/block | grep '^pmem' | head -n 1",
        step, DEVICE_WAIT_S + bt.COMMAND_S)
    if not re.fullmatch(r"pmem[0-9]+", got):
        raise Fail(f"{step}: no /sys/block/pmemN after {DEVICE_WAIT_S} s "
                   f"(got {got!r})")
    return got


def guest_sha(vm, dev, size, step):
    got = vm.value(f"SHA_{dev.upper()}",
                   f"dd if=/dev/{dev} bs=1M count={size // MIB} 2>/dev/null"
                   f" | sha256sum", step, bt.IO_S)
    return got.split()[0] if got else ""


def add_disk(args, sock, spec, step):
    st, out = bt.ctl(args, sock, "add-disk", spec, check=False,
                     limit=bt.CTL_S)
    if st != 0:
        raise Fail(f"{step}: add-disk {spec}: status {st}: {out}")
    return out


def add_pmem(vm, args, sock, path):
    """add-pmem of PATH (its pattern made beforehand) without size=: the
    guest finds it, reads the pattern, writes and flushes PMEM_MARK at
    PMEM_MARK_AT. Returns the guest's device name."""
    st, out = bt.ctl(args, sock, "add-pmem", f"file={path},id=pm",
                     check=False, limit=bt.CTL_S)
    if st != 0:
        raise Fail(f"add-pmem {path}: status {st}: {out}")
    if out.get("id") != "pm" or out.get("type") != "virtio-pmem" or \
            not re.fullmatch(r"0000:00:[0-9a-f]{2}\.0",
                             out.get("pci_address", "")):
        raise Fail(f"add-pmem answered {out}, not id pm, virtio-pmem and a "
                   f"PCI address")
    dev = wait_pmem(vm, "the hot-added /dev/pmemN")
    size = wait_disk(vm, dev, True, f"the hot-added /dev/{dev}")
    if int(size) != PMEM_SIZE // 512:
        raise Fail(f"/dev/{dev} is {size} sectors, not {PMEM_SIZE // 512} "
                   f"(the file's size)")
    want = bt.sha256_file(path, MIB)
    got = guest_sha(vm, dev, MIB, f"reading the first MiB of /dev/{dev}")
    if got != want:
        raise Fail(f"the first MiB of the hot-added /dev/{dev} reads as "
                   f"sha256 {got or '(none)'}, not {want} as on the host")
    rc = vm.value("PMEM_MARK_RC",
                  f"printf %s {PMEM_MARK} | dd of=/dev/{dev} bs=1 "
                  f"seek={PMEM_MARK_AT} conv=notrunc,fsync 2>/dev/null; "
                  f"r=$?; sync; echo $r",
                  f"the marker written to /dev/{dev}", bt.IO_S)
    if rc != "0":
        raise Fail(f"the marker written to /dev/{dev}: dd exited with "
                   f"status {rc!r}")
    back = vm.value("PMEM_MARK_BACK",
                    f"dd if=/dev/{dev} bs=1 skip={PMEM_MARK_AT} "
                    f"count={len(PMEM_MARK)} 2>/dev/null",
                    f"the marker read back from /dev/{dev}")
    if back != PMEM_MARK:
        raise Fail(f"/dev/{dev} reads back {back!r} where the guest wrote "
                   f"{PMEM_MARK!r}")
    return dev


def check_pmem_file(path, first_sha):
    """Once the VM has exited: the marker is in the file, the pattern
    before it as it was."""
    with open(path, "rb") as f:
        f.seek(PMEM_MARK_AT)
        got = f.read(len(PMEM_MARK))
    if got != PMEM_MARK.encode():
        raise Fail(f"{path} holds {got!r} at {PMEM_MARK_AT}, not the "
                   f"marker the guest wrote and flushed")
    if bt.sha256_file(path, MIB) != first_sha:
        raise Fail(f"the first MiB of {path} changed")
    if os.path.getsize(path) != PMEM_SIZE:
        raise Fail(f"{path} is {os.path.getsize(path)} bytes, not "
                   f"{PMEM_SIZE}")


def case_hotplug(args, vm_factory):
    sock = os.path.join(bt.socket_dir(args.log), "api.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    pat = os.path.join(args.log, "pattern.img")
    wr = os.path.join(args.log, "write.img")
    # Not in the log directory: the emulated host shares it over 9p, whose
    # files cannot be mapped shared (the VMM refuses such a pmem file).
    pm = os.path.join(tempfile.mkdtemp(prefix="bh-hotplug-"), "pmem.img")
    for p in (pat, wr, pm):
        if "," in p:
            raise Fail(f"{p}: a comma in the path cannot go into add-disk "
                       f"or add-pmem")
    pat_sha = make_pattern(pat)
    make_pattern(pm, PMEM_SIZE, "pmem")
    pm_first_sha = bt.sha256_file(pm, MIB)
    with open(wr, "wb") as f:
        f.truncate(PATTERN_SIZE)
    vm = vm_factory(bt.argv(args) + ["--api-socket", f"path={sock}"])
    t_marker = bt.boot_to_prompt(vm)
    runner = one_pid("bulkhead-vcpu")
    fds0 = (nfds(vm.proc.pid), nfds(runner))

    # A disk with a known pattern: the guest finds it by itself.
    t = time.monotonic()
    first = add_disk(args, sock, f"path={pat},id=pat,readonly=on",
                     "the pattern disk")
    addr = first.get("pci_address", "")
    if first.get("id") != "pat" or not re.fullmatch(
            r"0000:00:[0-9a-f]{2}\.0", addr):
        raise Fail(f"add-disk answered {first}, not id pat and a PCI "
                   f"address")
    size = wait_disk(vm, "vda", True, "the hot-added /dev/vda")
    t_seen = time.monotonic() - t
    if int(size) != PATTERN_SIZE // 512:
        raise Fail(f"/dev/vda is {size} sectors, not {PATTERN_SIZE // 512}")
    got = guest_sha(vm, "vda", PATTERN_SIZE, "reading the hot-added disk")
    if got != pat_sha:
        raise Fail(f"the hot-added disk reads as sha256 {got or '(none)'}, "
                   f"not {pat_sha}")
    info = bt.ctl(args, sock, "info")[1]
    if "pat" not in {d.get("id") for d in info.get("devices", [])}:
        raise Fail(f"info does not list the added disk: {info}")

    # A second one, written from the guest.
    add_disk(args, sock, f"path={wr},id=wr", "the disk to write")
    wait_disk(vm, "vdb", True, "the hot-added /dev/vdb")
    rc = vm.value("WRITE_RC",
                  f"yes {WRITE_LINE} | head -c {WRITE_SIZE} | "
                  "dd of=/dev/vdb bs=1M conv=fsync 2>/dev/null; echo $?",
                  "the write to /dev/vdb", bt.IO_S)
    if rc != "0":
        raise Fail(f"the write to /dev/vdb: dd exited with status {rc!r}")
    want = hashlib.sha256(write_pattern()).hexdigest()
    got = bt.sha256_file(wr, WRITE_SIZE)
    if got != want:
        raise Fail(f"write.img on the host: sha256 {got}, not {want} as "
                   f"the guest wrote")

    # The first goes while the guest reads it. The reader runs in the
    # background, so its last line follows a prompt: no ^ in the pattern.
    start = len(vm.out)
    vm.send("(n=0; while dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; "
            "do n=$((n+1)); done; echo READER_DONE=$n) &\n",
            "a reader of /dev/vda")
    done_re = re.compile(r"READER_DONE=(\d+)\n")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        vm.pump(max(0, deadline - time.monotonic()))
    if done_re.search(vm.out, start):
        raise Fail("the guest's reader of /dev/vda ended before the "
                   "removal: dd could not read the disk")
    t = time.monotonic()
    st, out = bt.ctl(args, sock, "remove-device", "pat", check=False,
                     limit=REMOVE_S)
    if st != 0:
        raise Fail(f"remove-device pat while the guest reads it: status "
                   f"{st}: {out}")
    t_removed = time.monotonic() - t
    m = vm.expect(done_re, start, READER_S,
                  "the guest's reader of the removed disk to end")
    reads = int(m.group(1))
    wait_disk(vm, "vda", False, "/dev/vda to go")
    if vm.value("ALIVE", "echo yes", "the guest after the removal") != "yes":
        raise Fail("the guest does not answer after the removal")

    # With both gone, nothing is left of them in the controller or the
    # runner.
    st, out = bt.ctl(args, sock, "remove-device", "wr", check=False,
                     limit=REMOVE_S)
    if st != 0:
        raise Fail(f"remove-device wr: status {st}: {out}")
    wait_disk(vm, "vdb", False, "/dev/vdb to go")
    deadline = time.monotonic() + FDS_WAIT_S
    while True:
        fds = (nfds(vm.proc.pid), nfds(runner))
        if fds == fds0 or time.monotonic() > deadline:
            break
        vm.pump(0.5)
    if fds != fds0:
        raise Fail(f"fds of the controller and the runner: {fds} after "
                   f"both removals, not {fds0} as before the first add")
    if bt.pids_named("bulkhead-dev-blk"):
        raise Fail("a bulkhead-dev-blk is still there after both removals")
    info = bt.ctl(args, sock, "info")[1]
    if info.get("devices"):
        raise Fail(f"info lists devices after both removals: "
                   f"{info.get('devices')}")

    # The slot is free again; a reboot keeps the disk.
    again = add_disk(args, sock, f"path={pat},id=pat2,readonly=on",
                     "the pattern disk again")
    if again.get("pci_address") != addr:
        raise Fail(f"the next add-disk took {again.get('pci_address')}, "
                   f"not the free {addr}")
    wait_disk(vm, "vda", True, "/dev/vda again")
    start = len(vm.out)
    bt.ctl(args, sock, "reboot", limit=bt.BOOT_S)
    # The old shell's prompt has no line end: the marker follows it.
    m = vm.expect(re.compile(bt.MARKER + r"$", re.M), start, bt.BOOT_S,
                  "the init marker after the reboot")
    vm.expect(bt.PROMPT_RE, m.end(), bt.PROMPT_S,
              "the shell prompt after the reboot")
    wait_disk(vm, "vda", True, "/dev/vda after the reboot")
    got = guest_sha(vm, "vda", PATTERN_SIZE, "the added disk after reboot")
    if got != pat_sha:
        raise Fail(f"after the reboot the added disk reads as sha256 "
                   f"{got or '(none)'}, not {pat_sha}")

    # A pmem device, in the same boot: the guest reads it and writes to it.
    t = time.monotonic()
    pm_dev = add_pmem(vm, args, sock, pm)
    t_pmem = time.monotonic() - t

    # Up to the limit, and one more.
    n = len(bt.ctl(args, sock, "info")[1].get("devices", []))
    for i in range(n, MAX_DEVICES):
        add_disk(args, sock, f"path={pat},id=fill{i},readonly=on",
                 f"device {i + 1} of {MAX_DEVICES}")
    st, out = bt.ctl(args, sock, "add-disk", f"path={pat},readonly=on",
                     check=False)
    msg = (out or {}).get("error", {}).get("message", "")
    if st != 1 or f"{MAX_DEVICES} devices at most" not in msg:
        raise Fail(f"device {MAX_DEVICES + 1}: status {st}, {out}; not "
                   f"refused with the limit named")
    seen = vm.value("NDISKS", "ls /sys/block | grep -c '^vd'",
                    "the guest's disks at the limit", DEVICE_WAIT_S)
    # With an API socket the VMM outlives its guest: shutdown-vmm ends it.
    vm.send("poweroff -f\n", "poweroff")
    deadline = time.monotonic() + bt.POWEROFF_S
    while "guest powered off" not in vm.err:
        if vm.exited() or time.monotonic() > deadline:
            raise Fail("the guest did not power off")
        vm.pump(0.5)
    bt.ctl(args, sock, "shutdown-vmm")
    st = vm.wait_exit(bt.POWEROFF_S, "bulkhead to exit after shutdown-vmm")
    if st != 0:
        raise Fail(f"bulkhead exited with status {st}, not 0")
    check_pmem_file(pm, pm_first_sha)
    for p in (pat, wr, pm):
        os.unlink(p)
    os.rmdir(os.path.dirname(pm))
    return (f"marker after {t_marker:.1f} s; the first disk seen by the "
            f"guest {t_seen:.1f} s after add-disk, sha256 matched; a second "
            f"written; the first removed during reads in {t_removed:.1f} s, "
            f"the reader ended after {reads} whole reads; fds back to {fds0}; slot {addr} reused; the "
            f"disk kept over a reboot; a pmem device added as /dev/{pm_dev} "
            f"({t_pmem:.1f} s with its reads and write), its marker in the "
            f"file after exit; {MAX_DEVICES} devices (the guest "
            f"shows {seen} disks), the next refused")


def main():
    ap = argparse.ArgumentParser(description="bulkhead PCI hotplug tests")
    ap.add_argument("case", choices=CASES)
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--bulkhead-ctl", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initramfs", required=True)
    ap.add_argument("--crash-kernel", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    bt.case_hotplug = case_hotplug
    return bt.run_case(args, f"hotplug_test {args.case}")


if __name__ == "__main__":
    sys.exit(main())
