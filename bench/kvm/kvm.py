#!/usr/bin/python3
"""The KVM benchmark section: Bulkhead side by side with QEMU (-M microvm and
-M pc) and, when LKVM names it, kvmtool, all booting the same kernel and the
same initramfs in one run: boot time, VM exits, memory of the VMM's
processes, guest disk I/O, and Bulkhead's start-up cost; and with --only net,
TCP throughput and round trips through Bulkhead's virtio-net beside QEMU's
(vhost off and on); and with --only snapshot, the time and size of a 1 GiB
guest's snapshot and the time of its restore, Bulkhead's beside QEMU's
(-M pc, migration to a file); and with --only migration, the live migration
of a 1 GiB guest that keeps dirtying its memory to a second VMM process on
the same host, Bulkhead's (RAM copied, and local=on) beside QEMU's (-M pc).

Run by bench/run. Without a /dev/kvm that runs a stock guest at hardware
speed (bulkhead --check-host=kvm decides) it runs itself again inside
tests/kvm/kvm-host (an emulated KVM host: QEMU TCG with nested SVM) and reads
the results back. Prints the section's tables and writes its JSON.
docs/BENCHMARKS.md says what each figure means.
"""
import argparse
import gzip
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "kvm"))
import boot_test  # noqa: E402  (the Vmm class: a VMM's console on a pipe)
import net_test  # noqa: E402  (own_netns: a network namespace of our own)

# The test guest's modules, and virtio-mmio for QEMU's microvm.
GUEST_MODULES = ("virtio_pci virtio_mmio virtio_blk virtio_console "
                 "virtio-rng button evdev")
BASE_CMDLINE = "console=ttyS0 quiet"
NOAPERTURE = "iommu=noaperture"
MEMORY_MB = 512
DISK_MB = 64
DISK_ROUNDS = 2
BOOT_S = 120
POWEROFF_S = 60
IO_S = 300
# 4 KiB random reads in the guest: bench/kvm/randread.c, built statically at
# run time and added to the disk boots' initramfs as /usr/bin/bh-randread.
RANDREAD_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "randread.c")
RANDREAD_GUEST = "/usr/bin/bh-randread"
RANDREAD_DEPTH = 32
RANDREAD_S = 10
# Its result line, then its exit status, which the typed command prints;
# or the result line alone when reads never completed (the tool then waits
# in its exit for them, and the status never comes).
RANDREAD_RE = re.compile(
    r"^RANDREAD reads=(\d+) errors=(\d+) seconds=([0-9.]+) iops=(\d+) "
    r"depth=(\d+) bs=(\d+) size=(\d+) stuck=(\d+)$", re.M)
RANDREAD_STATUS_RE = re.compile(
    r"^(?:RRS=(\d+)|RANDREAD .* stuck=([1-9]\d*))$", re.M)
RANDREAD_NOTE = (
    "4 KiB random reads: bh-randread (bench/kvm/randread.c, the benchmark's "
    "own tool, not fio), %d reads in flight at random 4 KiB-aligned offsets "
    "over the whole disk, Linux native AIO (io_submit) with O_DIRECT in the "
    "guest, %d s per round; IOPS by the guest's clock, and reads over the "
    "host's time from typing the command to its exit status beside it"
    % (RANDREAD_DEPTH, RANDREAD_S))
# The network part: one guest per VMM with a virtio-net device on a TAP in
# the emulated host (in a network namespace of the benchmark's own), the
# guest at NET_GUEST_IP, the TAP at NET_HOST_IP. The guest image has
# virtio_net and bh-guest-tool (tests/kvm/guest-tool.c) besides the rest.
NET_MODULES = GUEST_MODULES + " virtio_net"
GUEST_TOOL_SRC = os.path.join(TOP, "tests", "kvm", "guest-tool.c")
NET_HOST_IP = "192.168.249.1"
NET_GUEST_IP = "192.168.249.2"
NET_MASK = "255.255.255.0"
NET_MAC = "52:54:00:12:34:56"
NET_TAP_QEMU = "bhq0"
NET_TAP_BULKHEAD = "bhn0"
# MiB per bulk transfer, and round trips per request/response run.
NET_MB = 256
NET_MB_QUICK = 32
NET_RR = 2000
NET_RR_QUICK = 200
NET_ROUNDS = 3
NET_PORTS = {"g2h": 5201, "h2g": 5202, "rr": 5203}
GIB = 1 << 30
# Guest to host: the pattern from bh-guest-tool through busybox nc; host to
# guest: busybox nc into /dev/null. Its stdin stays the console, on which
# nothing is typed while it runs: from /dev/null it would shut its sending
# half at once, and the host, which takes the guest's end of stream for the
# end of the transfer, would stop the clock early.
NET_G2H_CMD = "bh-guest-tool tcp-send %s %d %d 1; echo NETTX=$?"
NET_H2G_CMD = "nc %s %d >/dev/null; echo NETRX=$?"
NET_RR_CMD = "bh-guest-tool tcp-rr %s %d %d; echo NETRR=$?"
NET_RR_RE = re.compile(r"^rr (\d+) (\d+)$", re.M)
# The snapshot part: a 1 GiB guest that has written SNAP_FILL_MB MiB into
# its tmpfs, paused and written to a file by Bulkhead (bulkhead-ctl
# snapshot) and by QEMU -M pc (migrate to exec:cat), killed, restored from
# it and timed until its shell answers again; each round from a fresh boot.
SNAP_VMMS = ("bulkhead", "pc")
SNAP_MEMORY_MB = 1024
SNAP_FILL_MB = 256
# Lines of 1,023 zeros (the character): `yes x` writes the same with a
# library call per two bytes, 30 times slower in a TCG guest. The size in
# bytes: busybox head takes "m" for MiB but refuses "M", and then writes
# nothing. The status and the file's size come back.
SNAP_FILL_CMD = ("yes $(printf %%01023d 0) | head -c %d >/tmp/fill; "
                 "echo FILLED=$?:$(wc -c </tmp/fill)")
# Whole lines only (\n, not $): the console may have half a line so far.
SNAP_FILL_RE = re.compile(r"^FILLED=(\d+):\s*(\d+)\n", re.M)
# What sha256sum says of it: the fill as written, before any snapshot.
SNAP_FILL_SHA256 = ("52d8353427d2e07a2cdedb79111441a6"
                    "62b626e72f724deebddbc8bb61f108eb")
# The first command after the restore: the shell's own arithmetic (no
# fork), and an answer that the echo of the typed line cannot match.
SNAP_ANSWER_CMD = "echo SNAPUP=$((6*7))"
SNAP_ANSWER_RE = re.compile(r"^SNAPUP=42\n", re.M)
SNAP_IO_S = 180   # the fill or a sha256sum of it in the guest
SNAP_S = 180      # one snapshot or migration to its end
SNAP_POLL_S = 0.05
# QEMU's migration is rate-limited (128 MiB/s by default in QEMU 7.2);
# a save to a file lifts the limit, as libvirt's `virsh save` does.
QEMU_MAX_BANDWIDTH = 1 << 40
# (key, label, decimals): the snapshot table's rows, each a figure of every
# round, derived by snapshot_merge.
SNAP_FIGURES = [
    ("pause_s", "pause (QEMU: stop), s", 3),
    ("snapshot_s", "snapshot (QEMU: migrate), s", 2),
    ("size_mib", "snapshot on disk, MiB", 1),
    ("apparent_mib", "  apparent size, MiB", 1),
    ("restore_paused_s", "start to restored, paused, s", 2),
    ("resume_s", "resume (QEMU: cont), s", 3),
    ("restore_s", "start to shell answer, s", 2),
    ("fill_s", "guest fill of its tmpfs, s", 2),
]

# The migration part: a 1 GiB guest that has written SNAP_FILL_MB MiB into
# its tmpfs (the snapshot part's fill) and rewrites MIG_DIRTY_MB MiB of its
# memory without a break (bh-guest-tool dirty) while it moves to a second
# VMM process on the same host over a unix socket: Bulkhead's send-migration
# (RAM copied), then on to a third with local=on (its memfd passed), and
# QEMU -M pc's migrate to a QEMU started with -incoming. Meanwhile a ticker
# in the guest prints a numbered line every MIG_TICK_S on the serial
# console; the host times the lines' arrival on the source's console, then
# on the destination's: the longest gap is the pause as the guest's output
# saw it. Each round from a fresh boot.
MIG_VMMS = ("bulkhead", "pc")
MIG_DIRTY_MB = 64
MIG_DOWNTIME_MS = 300  # Bulkhead's default, given to both VMMs
MIG_S = 300            # one migration, from the command to its end
MIG_TICK_S = 0.05
MIG_SETTLE_S = 2.0     # ticks read from the destination before the gap
MIG_SETTLE_TICKS = 5   #   is taken: at least this long, and this many
MIG_STOP = "/tmp/stop"
# The dirtier's output goes to a file: its verdict is read back after the
# stop file, without the ticker's lines between.
MIG_DIRTY_CMD = ("rm -f %s; bh-guest-tool dirty %d %s >/tmp/dirty.out 2>&1 &"
                 % (MIG_STOP, MIG_DIRTY_MB, MIG_STOP))
# Bounded in the guest too (600 x 0.1 s): the value's line always comes.
MIG_DIRTY_WAIT = ("n=0; until grep -qE '%s' /tmp/dirty.out || "
                  "[ $n -ge 600 ]; do sleep 0.1; n=$((n+1)); done; "
                  "tail -n1 /tmp/dirty.out")
MIG_DIRTY_UP = MIG_DIRTY_WAIT % "DIRTY_"
MIG_DIRTY_VERDICT = MIG_DIRTY_WAIT % "DIRTY_(OK|BAD)"
# A count in the shell's own arithmetic (no fork but the sleep's); it ends
# with the dirtier, at the stop file, and says so.
MIG_TICK_CMD = ("(i=0; while [ ! -e %s ]; do i=$((i+1)); echo TICK$i; "
                "sleep %g; done; echo TICKEND) &" % (MIG_STOP, MIG_TICK_S))
MIG_TICK_RE = re.compile(r"^TICK(\d+)\n", re.M)
# Not at a line's start: the shell's prompt may come first.
MIG_TICKEND_RE = re.compile(r"TICKEND\n")
# The table's columns: (VMM, which migration of its rounds, title).
MIG_COLUMNS = [("bulkhead", "copy", "Bulkhead"),
               ("bulkhead", "local", "Bulkhead local=on"),
               ("pc", "copy", "QEMU -M pc")]
# (key, label, decimals): the migration table's rows, each a figure of
# every round, derived by mig_derived; local=on copies no RAM and has no
# passes, so its column leaves the last two out.
MIG_FIGURES = [
    ("total_s", "total time, s", 2),
    ("host_s", "  by the host's clock, s", 2),
    ("downtime_ms", "downtime (VMM's figure), ms", 0),
    ("gap_ms", "guest-observed gap, ms", 0),
    ("tick_ms", "  ticker's usual interval, ms", 0),
    ("sent_mib", "bytes sent, MiB", 1),
    ("passes", "passes (QEMU: dirty syncs)", 0),
]
MIG_LOCAL_SKIP = ("sent_mib", "passes")


def net_xfer_s(mb):
    """The longest one transfer may take: 2 s per MiB (0.5 MiB/s, far
    below what the emulated host manages) and a minute."""
    return 60 + 2 * mb


# Boot-progress line of bulkhead's runner (vcpu-runner/platform.c).
PROGRESS_RE = re.compile(
    r"guest boot progress 0x7b after ([0-9.]+) ms, monotonic (\d+)\.(\d+)")
FIRST_RUN_RE = re.compile(
    r"first KVM_RUN ([0-9.]+) ms after the runner started, runner CPU "
    r"([0-9.]+) ms, monotonic (\d+)\.(\d+)")
# dd in the guest, timed on the host's clock (from typing the command to
# its result line) and, for reference, by the guest's /proc/uptime (the
# guest's clock runs slow against the host's in the emulated host).
# "ddt w" writes the whole disk, "ddt r" reads it.
DDT_FN = ("ddt() { if [ $1 = w ]; then set -- if=/dev/zero of=/dev/vda "
          "oflag=direct; else set -- if=/dev/vda of=/dev/null iflag=direct; "
          "fi; s=$(cut -d' ' -f1 /proc/uptime); "
          "o=$(dd bs=1M count=%d \"$@\" 2>&1); "
          "r=$?; e=$(cut -d' ' -f1 /proc/uptime); "
          "echo \"DDT=$r:$s:$e:$(echo \"$o\" | grep 'records out')\"; }")
# A timed dd in the guest: its status, the guest's uptime before and after,
# and its "N+M records out" line (Debian's busybox dd prints no byte count
# or seconds).
DD_RE = re.compile(r"^DDT=(\d+):([0-9.]+):([0-9.]+):(\d+)\+(\d+) records out",
                   re.M)
# SVM exit codes (arch/x86/include/uapi/asm/svm.h) and KVM_EXIT_* reasons.
SVM_EXITS = {0x0: "CR0_READ", 0x10: "CR0_WRITE", 0x13: "CR3_WRITE",
             0x14: "CR4_WRITE", 0x60: "INTR", 0x61: "NMI", 0x64: "VINTR",
             0x72: "CPUID", 0x78: "HLT", 0x79: "INVLPG", 0x7b: "IOIO",
             0x7c: "MSR", 0x7f: "SHUTDOWN", 0x81: "VMMCALL", 0x400: "NPF",
             0x402: "AVIC_NOACCEL", 0x55: "CR5_WRITE", 0x8d: "XSETBV",
             0x403: "VMGEXIT", 0x41: "EXCP_DB", 0x4e: "EXCP_PF",
             0x7e: "TASK_SWITCH", 0x77: "PAUSE", 0x8e: "RDPRU",
             0x62: "SMI", 0x63: "INIT", 0x65: "CR0_SEL_WRITE", 0x6e: "RDTSC",
             0x75: "IRET", 0x87: "RDTSCP", 0x88: "ICEBP", 0x8b: "MWAIT"}
USER_EXITS = {2: "IO", 6: "MMIO", 8: "SHUTDOWN", 10: "INTR", 17: "INTERNAL_ERROR",
              24: "SYSTEM_EVENT", 5: "HLT", 7: "IRQ_WINDOW_OPEN"}
MMIO_TYPES = {0: "read-unsatisfied", 1: "read", 2: "write"}


def die(msg):
    sys.stderr.write("kvm bench: " + msg + "\n")
    raise SystemExit(1)


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {"values": values, "median": med, "min": lo, "max": hi,
            "spread_pct": 100.0 * (hi - lo) / med if med else 0.0}


# ---- the VMMs -----------------------------------------------------------------

class Vmm:
    """How one VMM is started with a kernel, an initramfs, a command line and
    optionally a disk image."""

    def __init__(self, name, title, argv_fn, marker):
        self.name, self.title, self.argv_fn = name, title, argv_fn
        self.marker = marker  # how boot done is seen


def bulkhead_argv(a, cmdline, disk, mb=MEMORY_MB):
    argv = [a.bulkhead, "--kernel", a.kernel, "--initramfs", a.initramfs,
            "--cmdline", cmdline, "--cpus", "boot=1",
            "--memory", f"size={mb}M", "--serial", "tty",
            "--exit-stats", "--log-level", "debug"]
    if disk:
        argv += ["--disk", f"path={disk}"]
    return argv


def qemu_common(a, cmdline, mb=MEMORY_MB):
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host",
            "-m", f"{mb}M", "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", a.kernel, "-initrd", a.initramfs,
            "-append", cmdline]


def qemu_drive(disk, cache):
    return ["-drive", f"file={disk},if=none,id=d0,format=raw,cache={cache}"]


def microvm_argv(a, cmdline, disk):
    argv = qemu_common(a, cmdline) + [
        "-M", "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,"
        "rtc=on"]
    if disk:
        argv += qemu_drive(disk, a.qemu_cache) + [
            "-device", "virtio-blk-device,drive=d0"]
    return argv


def pc_argv(a, cmdline, disk, mb=MEMORY_MB):
    argv = qemu_common(a, cmdline, mb) + ["-M", "pc"]
    if disk:
        argv += qemu_drive(disk, a.qemu_cache) + [
            "-device", "virtio-blk-pci,drive=d0"]
    return argv


def bulkhead_net_argv(a, cmdline, disk):
    # One queue pair (num_queues counts virtqueues): as QEMU's default.
    return bulkhead_argv(a, cmdline, disk) + [
        "--net", f"tap={NET_TAP_BULKHEAD},mac={NET_MAC},ip={NET_HOST_IP},"
        f"mask={NET_MASK},num_queues=2"]


def qemu_net_argv(vhost):
    def argv(a, cmdline, disk):
        return pc_argv(a, cmdline, disk) + [
            "-netdev", f"tap,id=n0,ifname={NET_TAP_QEMU},script=no,"
            f"downscript=no,vhost={'on' if vhost else 'off'}",
            "-device", f"virtio-net-pci,netdev=n0,mac={NET_MAC}"]
    return argv


def lkvm_argv(a, cmdline, disk):
    argv = [a.lkvm, "run", "-k", a.kernel, "-i", a.initramfs,
            "-p", cmdline, "-m", str(MEMORY_MB), "-c", "1",
            "--console", "serial"]
    if disk:
        argv += ["-d", disk]
    return argv


# ---- kernel tracepoints (tracefs hist triggers) ---------------------------------

class Trace:
    """Counts kvm:kvm_exit by exit reason, kvm:kvm_userspace_exit by reason,
    kvm:kvm_pio by port and kvm:kvm_mmio by address, in the kernel (hist
    triggers: no trace buffer to overflow). Each run is the difference of
    two snapshots; only the benchmark's own guests run on this kernel."""

    SPECS = {
        "exit": ("kvm_exit", "exit_reason"),
        "userspace": ("kvm_userspace_exit", "reason"),
        "pio": ("kvm_pio", "port,rw"),
        "mmio": ("kvm_mmio", "gpa,type"),
        # The addresses written to the PCI conf1 address port 0xcf8: which
        # buses, devices and registers the guest probes.
        "conf1": ("kvm_pio", "val", "size=32768 if port == 3320 && rw == 1"),
    }

    def __init__(self):
        self.root = None
        for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
            if os.path.isdir(os.path.join(d, "events", "kvm")):
                self.root = d
                break
        if self.root is None:
            d = "/sys/kernel/tracing"
            r = subprocess.run(["mount", "-t", "tracefs", "tracefs", d],
                               capture_output=True, text=True)
            if r.returncode != 0 or not os.path.isdir(
                    os.path.join(d, "events", "kvm")):
                die(f"no kvm trace events: cannot mount tracefs on {d} "
                    f"({r.stderr.strip()}) or the kvm module is not loaded")
            self.root = d
        for key, (event, keys, *more) in self.SPECS.items():
            path = self._event(event, "trigger")
            with open(path) as f:
                if f"hist:keys={keys}:" in f.read():
                    continue
            extra = more[0] if more else "size=4096"
            # Appended: opening a trigger file with O_TRUNC ("w") removes
            # every trigger the event has, such as the other kvm_pio one.
            try:
                with open(path, "a") as f:
                    f.write(f"hist:keys={keys}:vals=hitcount:{extra}\n")
            except OSError as e:
                die(f"cannot set a hist trigger on kvm:{event} ({path}: "
                    f"{e.strerror}); the kernel needs CONFIG_HIST_TRIGGERS")

    def _event(self, event, f):
        return os.path.join(self.root, "events", "kvm", event, f)

    def snapshot(self):
        snap = {}
        for key, (event, keys, *more) in self.SPECS.items():
            counts = {}
            with open(self._event(event, "hist")) as f:
                text = f.read()
            # One file holds every hist trigger of the event: a line
            # belongs to the trigger whose keys it names.
            names = keys.split(",")
            for line in text.splitlines():
                if not line.startswith("{"):
                    continue
                inner, _, rest = line.partition("}")
                m = re.search(r"hitcount:\s*(\d+)", rest)
                pairs = re.findall(r"(\w+):\s*(\d+)", inner)
                if not m or [k for k, _ in pairs] != names:
                    continue
                fields = tuple(int(v) for _, v in pairs)
                counts[fields] = counts.get(fields, 0) + int(m.group(1))
            snap[key] = counts
        return snap

    @staticmethod
    def diff(before, after):
        out = {}
        for key in after:
            d = {k: v - before.get(key, {}).get(k, 0)
                 for k, v in after[key].items()}
            out[key] = {k: v for k, v in d.items() if v > 0}
        return out


def describe_exits(d):
    """The counts of one run, named, for the JSON and the tables."""
    def top(counts, name, n=40):
        items = sorted(counts.items(), key=lambda kv: -kv[1])
        return [{"what": name(k), "count": v} for k, v in items[:n]]

    pio = {}
    for (port, rw), v in d["pio"].items():
        pio[(port, rw)] = v
    # conf1 addresses: bus 0 (where the devices are) against the other
    # 255 buses (empty: a scan of the whole bus range), by register.
    conf1 = {"bus0": 0, "other_buses": 0, "buses": 0,
             "bus0_by_register": {}, "other_by_register": {}}
    buses = set()
    for (val,), v in d.get("conf1", {}).items():
        bus, reg = (val >> 16) & 0xff, val & 0xfc
        buses.add(bus)
        k = "bus0" if bus == 0 else "other"
        conf1["bus0" if bus == 0 else "other_buses"] += v
        regs = conf1[k + "_by_register"]
        regs["0x%02x" % reg] = regs.get("0x%02x" % reg, 0) + v
    conf1["buses"] = len(buses)
    return {
        "conf1_address_writes": conf1,
        "total": sum(d["exit"].values()),
        "to_userspace": sum(d["userspace"].values()),
        "by_reason": top(d["exit"], lambda k: SVM_EXITS.get(
            k[0], "0x%x" % k[0])),
        "userspace_by_reason": top(d["userspace"], lambda k: USER_EXITS.get(
            k[0], str(k[0]))),
        "pio_total": sum(d["pio"].values()),
        "pio_by_port": top(pio, lambda k: "%s 0x%x" % (
            "out" if k[1] else "in", k[0])),
        "mmio_total": sum(d["mmio"].values()),
        "mmio_by_address": top(d["mmio"], lambda k: "%s 0x%x" % (
            MMIO_TYPES.get(k[1], str(k[1])), k[0])),
    }


# ---- processes and memory --------------------------------------------------------

def process_tree(pid):
    """pid and every descendant."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_ms(pids):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * 1000.0 / tick
    return total


def pss(pid, guest_bytes):
    """PSS of a process in KiB: all of it (smaps_rollup), and without the
    guest RAM mapping: every mapping at least as large as guest RAM (a memfd
    in Bulkhead's processes, anonymous memory in QEMU and kvmtool)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
    total = int(m.group(1)) if m else 0
    guest = 0
    size = 0
    names = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = line.split()[0].split("-")
                size = int(hi, 16) - int(lo, 16)
                parts = line.split(None, 5)
                if size >= guest_bytes:
                    names.append(parts[5].strip() if len(parts) > 5
                                 else "[anonymous]")
            elif line.startswith("Pss:") and size >= guest_bytes:
                guest += int(line.split()[1])
    name = ", ".join(names)
    return {"pid": pid, "comm": comm(pid), "pss_kib": total,
            "guest_ram_pss_kib": guest, "vmm_pss_kib": total - guest,
            "guest_ram_mapping": name}


def memory(pid):
    procs = [pss(p, MEMORY_MB * 1024 * 1024) for p in process_tree(pid)]
    return {"processes": procs,
            "vmm_pss_kib": sum(p["vmm_pss_kib"] for p in procs),
            "total_pss_kib": sum(p["pss_kib"] for p in procs)}


# ---- one boot ------------------------------------------------------------------

def start(vmm, a, cmdline, disk, logdir):
    os.makedirs(logdir, exist_ok=True)
    return boot_test.Vmm(vmm.argv_fn(a, cmdline, disk), logdir)


def stop(vm):
    try:
        vm.kill()
    except Exception:
        pass
    vm.close()


def boot_run(vmm, a, trace, cmdline, logdir):
    """Boots with bulkhead.run=poweroff: the guest's /init writes the
    progress byte, prints the marker and powers off at once."""
    before = trace.snapshot()
    vm = start(vmm, a, cmdline + " bulkhead.run=poweroff", None, logdir)
    t0 = vm.t0
    res = {}
    try:
        vm.expect(boot_test.MARKER_RE, 0, BOOT_S, "the init marker")
        res["marker_s"] = vm.elapsed()
        vm.wait_exit(POWEROFF_S, "the VMM to exit after poweroff")
        res["exit_s"] = vm.exit_time
        res["status"] = vm.status
    finally:
        stop(vm)
    res["exits"] = describe_exits(Trace.diff(before, trace.snapshot()))
    m = PROGRESS_RE.search(vm.err)
    if m:
        res["progress_s"] = int(m.group(2)) + int(m.group(3)) / 1e9 - t0
        res["progress_runner_ms"] = float(m.group(1))
    m = FIRST_RUN_RE.search(vm.err)
    if m:
        res["first_run_s"] = int(m.group(3)) + int(m.group(4)) / 1e9 - t0
        res["first_run_runner_ms"] = float(m.group(1))
        res["first_run_runner_cpu_ms"] = float(m.group(2))
    if vmm.name == "bulkhead":
        res["exit_stats"] = parse_exit_stats(vm.err)
    return res


def parse_exit_stats(err):
    m = re.search(r"VM exits to userspace, boot \d+: (\d+)\n((?:\s*\d+  .*\n)*)",
                  err)
    if not m:
        return None
    rows = re.findall(r"^\s*(\d+)  (.*)$", m.group(2), re.M)
    return {"total": int(m.group(1)),
            "top": [{"what": w, "count": int(c)} for c, w in rows[:12]]}


def startup_run(a, logdir):
    """Bulkhead once more, watched closely until its first KVM_RUN: wall
    time from its start, and the CPU time of all its processes then."""
    os.makedirs(logdir, exist_ok=True)
    vm = boot_test.Vmm(bulkhead_argv(a, BASE_CMDLINE +
                                     " bulkhead.run=poweroff", None), logdir)
    res = {}
    try:
        deadline = time.monotonic() + 60
        while not FIRST_RUN_RE.search(vm.err):
            if vm.exited() or time.monotonic() > deadline:
                raise boot_test.Fail("no first-KVM_RUN line from bulkhead")
            vm.pump(0.005)
        res["cpu_ms_tree"] = cpu_ms(process_tree(vm.proc.pid))
        m = FIRST_RUN_RE.search(vm.err)
        res["wall_ms"] = 1000.0 * (int(m.group(3)) + int(m.group(4)) / 1e9
                                   - vm.t0)
        res["runner_wall_ms"] = float(m.group(1))
        res["runner_cpu_ms"] = float(m.group(2))
        vm.wait_exit(BOOT_S, "bulkhead to exit")
    finally:
        stop(vm)
    return res


def make_disk(path):
    chunk = bytes(range(1, 256)) * 4113  # non-zero: no shared zero page
    chunk = chunk[:1 << 20]
    with open(path, "wb") as f:
        for _ in range(DISK_MB):
            f.write(chunk)


def disk_run(vmm, a, disk, logdir, rounds, out, part):
    """Boots to the shell with the image as the guest's vda, takes the VMM's
    memory, then times 1 MiB sequential writes and reads with dd
    (O_DIRECT in the guest), `rounds` times each, then `rounds` runs of
    4 KiB random reads at queue depth 32 (bh-randread). Every figure goes
    into part["disk"][vmm] and the part's JSON as soon as it is taken."""
    vm = start(vmm, a, BASE_CMDLINE, disk, logdir)
    res = {"write_mib_s": [], "read_mib_s": [], "randread_iops": [],
           "randread_iops_host": [], "disk_mb": DISK_MB,
           "qemu_cache": a.qemu_cache}
    part["disk"][vmm.name] = res
    try:
        boot_test.boot_to_prompt(vm)
        time.sleep(1)
        res["memory"] = memory(vm.proc.pid)
        write_json(out, part)
        size = vm.value("SIZE", "cat /sys/block/vda/size 2>/dev/null",
                        "the disk's size")
        if size != str(DISK_MB * 2048):
            raise boot_test.Fail(f"the guest's vda has {size!r} sectors, "
                                 f"not {DISK_MB * 2048}")
        # A shell function keeps the typed command short: what the guest
        # echoes of it is on the host's clock too.
        vm.command(DDT_FN % DISK_MB + "; echo DDT_DEFINED",
                   re.compile(r"^DDT_DEFINED", re.M), "the dd function")
        for _ in range(rounds):
            for kind, cmd in (("write", "ddt w"), ("read", "ddt r")):
                t0 = time.monotonic()
                m = vm.command(cmd, DD_RE, f"dd {kind}", IO_S)
                wall = time.monotonic() - t0
                guest = float(m.group(3)) - float(m.group(2))
                if m.group(1) != "0" or int(m.group(4)) != DISK_MB:
                    raise boot_test.Fail(
                        f"dd {kind} ended with status {m.group(1)} after "
                        f"{m.group(4)}+{m.group(5)} records")
                res[f"{kind}_mib_s"].append(DISK_MB / wall)
                res.setdefault(f"{kind}_s", []).append(round(wall, 3))
                res.setdefault(f"{kind}_guest_s", []).append(round(guest, 2))
                write_json(out, part)
        for _ in range(rounds):
            start_at = len(vm.out)
            t0 = time.monotonic()
            st = vm.command(f"{RANDREAD_GUEST} -q {RANDREAD_DEPTH} "
                            f"-t {RANDREAD_S} /dev/vda; echo RRS=$?",
                            RANDREAD_STATUS_RE, "bh-randread",
                            RANDREAD_S + IO_S)
            wall = time.monotonic() - t0
            if st.group(2):
                raise boot_test.Fail(
                    f"bh-randread: {st.group(2)} of its reads never "
                    f"completed (30 s after its {RANDREAD_S} s): "
                    f"{st.group(0)!r}")
            m = RANDREAD_RE.search(vm.out, start_at, st.start())
            if st.group(1) != "0" or not m:
                tail = vm.out[start_at:st.end()].strip()[-400:]
                raise boot_test.Fail(
                    f"bh-randread ended with status {st.group(1)}: {tail!r}")
            reads, secs = int(m.group(1)), float(m.group(3))
            if int(m.group(7)) != DISK_MB << 20:
                raise boot_test.Fail(f"bh-randread read over {m.group(7)} "
                                     f"bytes, not {DISK_MB << 20}")
            res["randread_iops"].append(reads / secs)
            res["randread_iops_host"].append(reads / wall)
            res.setdefault("randread_reads", []).append(reads)
            res.setdefault("randread_guest_s", []).append(secs)
            res.setdefault("randread_s", []).append(round(wall, 3))
            write_json(out, part)
        vm.send("poweroff -f\n", "poweroff")
        vm.wait_exit(POWEROFF_S, "the VMM to exit after poweroff")
    finally:
        stop(vm)
    return res


# ---- the network part ------------------------------------------------------------

def sh(argv, step):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise boot_test.Fail(f"{step}: {shlex.join(argv)}: status "
                             f"{r.returncode}: {r.stderr.strip()}")
    return r.stdout


class NetPeer(threading.Thread):
    """The emulated host's end of one transfer: accepts one connection on
    NET_HOST_IP:port and, by kind, reads nbytes ("sink"), sends nbytes and
    then waits for the guest to close ("source"), or sends back every byte
    it reads until the guest closes ("echo"). t_start is the host's clock
    at the accept, t_end at the last byte (sink) or the guest's close."""

    CHUNK = (bytes(range(1, 256)) * 4113)[:1 << 20]  # non-zero data

    def __init__(self, kind, port, nbytes=0):
        super().__init__(daemon=True)
        self.kind, self.nbytes = kind, nbytes
        self.bytes = 0
        self.t_start = self.t_end = self.t_last = None
        self.error = None
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((NET_HOST_IP, port))
        self.srv.listen(1)
        self.srv.settimeout(120)

    def serve(self, c):
        if self.kind == "sink":
            buf = memoryview(bytearray(1 << 20))
            while self.bytes < self.nbytes:
                n = c.recv_into(buf)
                if n == 0:
                    break
                self.bytes += n
                self.t_last = time.monotonic()
            self.t_end = time.monotonic()
        elif self.kind == "source":
            chunk = memoryview(self.CHUNK)
            while self.bytes < self.nbytes:
                n = min(self.nbytes - self.bytes, len(chunk))
                c.sendall(chunk[:n])
                self.bytes += n
                self.t_last = time.monotonic()
            c.shutdown(socket.SHUT_WR)
            while c.recv(65536):
                pass
            self.t_end = time.monotonic()
        else:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                b = c.recv(1)
                if not b:
                    break
                c.sendall(b)
                self.bytes += 1
            self.t_end = time.monotonic()

    def run(self):
        try:
            c, _ = self.srv.accept()
            self.t_start = time.monotonic()
            with c:
                c.settimeout(net_xfer_s(self.nbytes >> 20))
                self.serve(c)
        except OSError as e:
            self.error = str(e) or type(e).__name__
        finally:
            self.srv.close()


def cpu_split_ms(pids):
    """CPU time of the processes (user and system, every thread), and the
    part of it that was the guest's (guest_time: a vCPU thread's time in
    guest mode, which its user time includes)."""
    total = guest = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * 1000.0 / tick
        guest += int(fields[40]) * 1000.0 / tick
    return total, guest


def vmm_pids(vm):
    """The VMM's processes: the tree under it (Bulkhead: controller,
    runner, device workers) and QEMU's vhost kernel threads, vhost-<pid>
    (threads of QEMU's own from Linux 6.4 on, so in its figures then)."""
    pids = process_tree(vm.proc.pid)
    names = {f"vhost-{p}" for p in pids}
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) not in pids and comm(d) in names:
            pids.append(int(d))
    return pids


def net_measure(vm, trace, fn):
    """Runs fn() and returns what it returned with the VM exits (kernel
    tracepoints, the same for every VMM) and the CPU time of the VMM's
    processes over it."""
    pids = vmm_pids(vm)
    before = trace.snapshot()
    cpu0, guest0 = cpu_split_ms(pids)
    res = fn()
    cpu1, guest1 = cpu_split_ms(pids)
    diff = Trace.diff(before, trace.snapshot())
    d = describe_exits(diff)
    # The serial console's (the typed command, its echo and its result
    # line): every VMM handles the UART in userspace.
    serial = sum(v for (port, _), v in diff["pio"].items()
                 if 0x3f8 <= port <= 0x3ff)
    res.update({"exits_total": d["total"],
                "exits_to_userspace": d["to_userspace"],
                "exits_to_userspace_serial": serial,
                "exits_to_userspace_not_serial": max(
                    d["to_userspace"] - serial, 0),
                "userspace_by_reason": d["userspace_by_reason"][:6],
                "pio_by_port": d["pio_by_port"][:6],
                "mmio_by_address": d["mmio_by_address"][:6],
                "cpu_ms": round(cpu1 - cpu0, 1),
                "cpu_ms_outside_guest": round(
                    (cpu1 - cpu0) - (guest1 - guest0), 1),
                "processes": len(pids)})
    return res


def net_bulk(vm, kind, nbytes, step):
    """One bulk transfer: "g2h" guest to host, "h2g" host to guest; timed
    on the host's clock from the accept to the last byte."""
    port = NET_PORTS[kind]
    peer = NetPeer("sink" if kind == "g2h" else "source", port, nbytes)
    peer.start()
    mb = nbytes >> 20
    if kind == "g2h":
        cmd = NET_G2H_CMD % (NET_HOST_IP, port, nbytes)
        done = re.compile(r"^NETTX=(\d+)$", re.M)
    else:
        cmd = NET_H2G_CMD % (NET_HOST_IP, port)
        done = re.compile(r"^NETRX=(\d+)$", re.M)
    try:
        m = vm.command(cmd, done, step, net_xfer_s(mb))
    except boot_test.Fail as e:
        # How far it got: a stall, or a slow transfer?
        now = time.monotonic()
        raise boot_test.Fail(
            f"{e}; the host's end had moved {peer.bytes} of {nbytes} bytes"
            + (f", the last {now - peer.t_last:.0f} s ago, "
               f"{peer.t_last - peer.t_start:.0f} s after the accept"
               if peer.t_last else ""))
    peer.join(60)
    if peer.error or peer.t_end is None or peer.bytes != nbytes:
        raise boot_test.Fail(f"{step}: the host's end moved {peer.bytes} "
                             f"of {nbytes} bytes ({peer.error or 'no end'})")
    if m.group(1) != "0":
        raise boot_test.Fail(f"{step}: nc in the guest ended with status "
                             f"{m.group(1)}")
    secs = peer.t_end - peer.t_start
    return {"bytes": nbytes, "seconds": round(secs, 4),
            "mib_s": nbytes / (1 << 20) / secs,
            "gbit_s": nbytes * 8 / 1e9 / secs}


def net_rr(vm, n, step):
    """n one-byte round trips over TCP, the guest asking (bh-guest-tool
    tcp-rr), the host answering; the rate by the host's clock (accept to
    the guest's close) and by the guest's."""
    peer = NetPeer("echo", NET_PORTS["rr"])
    peer.start()
    start = len(vm.out)
    m = vm.command(NET_RR_CMD % (NET_HOST_IP, NET_PORTS["rr"], n),
                   re.compile(r"^NETRR=(\d+)$", re.M), step,
                   net_xfer_s(n // 100))
    peer.join(60)
    r = NET_RR_RE.search(vm.out, start, m.start())
    if m.group(1) != "0" or not r or int(r.group(1)) != n:
        raise boot_test.Fail(f"{step}: bh-guest-tool tcp-rr ended with "
                             f"status {m.group(1)}: "
                             f"{vm.out[start:m.end()].strip()[-300:]!r}")
    if peer.error or peer.t_end is None or peer.bytes != n:
        raise boot_test.Fail(f"{step}: the host echoed {peer.bytes} of {n} "
                             f"bytes ({peer.error or 'no end'})")
    secs = peer.t_end - peer.t_start
    guest_ns = int(r.group(2))
    return {"round_trips": n, "seconds": round(secs, 4),
            "rr_per_s": n / secs, "guest_ns": guest_ns,
            "rr_per_s_guest": n * 1e9 / guest_ns if guest_ns else None}


def net_host_side(vmm):
    """Sets up the emulated host for one VMM's guest: QEMU's TAP, made
    here, and vhost-net for qemu-vhost; Bulkhead makes and configures its
    own from --net. Returns what describes it."""
    if vmm.name == "qemu-vhost" and not os.path.exists("/dev/vhost-net"):
        r = subprocess.run(["modprobe", "vhost_net"], capture_output=True,
                           text=True)
        if not os.path.exists("/dev/vhost-net"):
            raise boot_test.Fail(
                f"no /dev/vhost-net, and modprobe vhost_net failed "
                f"({r.stderr.strip() or r.returncode}): add vhost_net to "
                f"tests/kvm/kvm-host's OUTER_MODULES")
    if vmm.name == "bulkhead":
        return {"tap": NET_TAP_BULKHEAD, "made_by": "bulkhead --net ip="}
    # One queue pair, as QEMU's netdev opens it: a TAP made with
    # multi_queue would refuse QEMU's single-queue open (flags mismatch).
    sh(["ip", "tuntap", "add", "dev", NET_TAP_QEMU, "mode", "tap",
        "vnet_hdr"], "QEMU's TAP")
    sh(["ip", "addr", "add", f"{NET_HOST_IP}/24", "dev", NET_TAP_QEMU],
       "QEMU's TAP address")
    sh(["ip", "link", "set", NET_TAP_QEMU, "up"], "QEMU's TAP up")
    return {"tap": NET_TAP_QEMU,
            "made_by": "ip tuntap add dev bhq0 mode tap vnet_hdr"}


def net_run(vmm, a, trace, logdir, out, part):
    """Boots one guest with a virtio-net device, brings its eth0 up, then
    per round: NET_MB MiB guest to host, the same host to guest, and NET_RR
    one-byte round trips; each with its exits and the VMM's CPU time.
    Every figure goes into part["net"][vmm] as soon as it is taken."""
    mb = NET_MB_QUICK if a.quick else NET_MB
    n_rr = NET_RR_QUICK if a.quick else NET_RR
    res = {"mb": mb, "round_trips": n_rr, "g2h": [], "h2g": [], "rr": []}
    part["net"][vmm.name] = res
    res["host"] = net_host_side(vmm)
    vm = start(vmm, a, BASE_CMDLINE, None, logdir)
    try:
        boot_test.boot_to_prompt(vm)
        got = vm.value("NETUP", f"ip link set eth0 up && ip addr add "
                       f"{NET_GUEST_IP}/24 dev eth0 && cat /sys/class/net/"
                       f"eth0/address && echo ok", "the guest's eth0 up")
        if NET_MAC not in got or "ok" not in got:
            raise boot_test.Fail(f"the guest's eth0: {got!r} (wanted MAC "
                                 f"{NET_MAC})")
        # The first pings may wait for the link and ARP.
        got = vm.value("WARM", f"ping -c 3 -W 5 {NET_HOST_IP} >/dev/null "
                       f"2>&1; echo $?", "a first ping", 60)
        if got != "0":
            raise boot_test.Fail("the guest cannot ping the host")
        res["processes"] = [{"pid": p, "comm": comm(p)}
                            for p in vmm_pids(vm)]
        write_json(out, part)
        rounds = min(a.repeat, NET_ROUNDS)
        for i in range(1, rounds + 1):
            for kind, what in (("g2h", "guest to host"),
                               ("h2g", "host to guest")):
                r = net_measure(vm, trace, lambda: net_bulk(
                    vm, kind, mb << 20, f"TCP {what}, round {i}"))
                res[kind].append(r)
                write_json(out, part)
            r = net_measure(vm, trace, lambda: net_rr(
                vm, n_rr, f"TCP round trips, round {i}"))
            res["rr"].append(r)
            write_json(out, part)
        vm.send("poweroff -f\n", "poweroff")
        vm.wait_exit(POWEROFF_S, "the VMM to exit after poweroff")
    finally:
        stop(vm)
        if vmm.name == "bulkhead":
            # Printed at its end, whatever ended it.
            res["exit_stats_whole_run"] = parse_exit_stats(vm.err)
        else:
            subprocess.run(["ip", "link", "del", NET_TAP_QEMU],
                           capture_output=True)
    return res


# ---- the snapshot part -----------------------------------------------------------

def snapshot_size(path):
    """(bytes allocated, apparent bytes) of a file, or of the files of a
    directory: st_blocks, as du counts them, and st_size."""
    names = [path]
    if os.path.isdir(path):
        names = [os.path.join(path, n) for n in sorted(os.listdir(path))]
    used = size = 0
    for n in names:
        st = os.stat(n)
        used += st.st_blocks * 512
        size += st.st_size
    return used, size


def fs_type(path):
    """The file system type of the mount that holds path."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            mnt = fields[1].replace("\\040", " ")
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


class Qmp:
    """A QMP connection to a QEMU started with -qmp unix:PATH,server=on,
    wait=off: one command at a time; events are kept aside, not
    answers."""

    def __init__(self, path, vm, limit):
        deadline = time.monotonic() + limit
        self.sock = self.f = None
        self.events = []
        while True:
            if os.path.exists(path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(path)
                    self.sock = s
                    break
                except OSError:
                    s.close()
            if vm.exited():
                raise boot_test.Fail(
                    f"QEMU exited with status {vm.status} before its QMP "
                    f"socket answered: {vm.err.strip()[-400:]}")
            if time.monotonic() > deadline:
                raise boot_test.Fail(f"no QMP socket answering at {path} "
                                     f"within {limit} s")
            vm.pump(SNAP_POLL_S)
        self.f = self.sock.makefile("rb")
        self.sock.settimeout(max(deadline - time.monotonic(), 1))
        if "QMP" not in self._read("the QMP greeting"):
            raise boot_test.Fail("QMP: the first message is no greeting")
        self.cmd("qmp_capabilities")

    def _read(self, step):
        while True:
            try:
                line = self.f.readline()
            except OSError as e:
                raise boot_test.Fail(f"QMP {step}: {e or 'timed out'}")
            if not line:
                raise boot_test.Fail(f"QMP {step}: QEMU closed the "
                                     f"connection")
            try:
                msg = json.loads(line)
            except ValueError:
                raise boot_test.Fail(f"QMP {step}: not JSON: "
                                     f"{line[:200]!r}")
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, name, args=None, limit=boot_test.CTL_S):
        """Runs one command; returns its "return" value. An error answer
        fails, with QEMU's class and description."""
        req = {"execute": name}
        if args:
            req["arguments"] = args
        try:
            self.sock.settimeout(limit)
            self.sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as e:
            raise boot_test.Fail(f"QMP {name}: cannot send: {e}")
        msg = self._read(name)
        if "error" in msg:
            e = msg["error"]
            raise boot_test.Fail(f"QMP {name}: {e.get('class', '?')}: "
                                 f"{e.get('desc', '')}")
        if "return" not in msg:
            raise boot_test.Fail(f"QMP {name}: an answer without a "
                                 f"return: {msg}")
        return msg["return"]

    def close(self):
        for x in (self.f, self.sock):
            if x is not None:
                try:
                    x.close()
                except OSError:
                    pass


def qemu_wait_migrated(q, vm, limit, step, pump=None):
    """Polls query-migrate on the sending QEMU until the migration has
    completed; returns its last answer. A failed or cancelled migration
    fails with QEMU's reason. Between polls it waits with
    pump(SNAP_POLL_S), the VM's console pump unless another is given."""
    pump = pump or vm.pump
    deadline = time.monotonic() + limit
    while True:
        info = q.cmd("query-migrate")
        st = info.get("status")
        if st == "completed":
            return info
        if st in ("failed", "cancelled"):
            raise boot_test.Fail(f"{step}: the migration {st}: "
                                 f"{info.get('error-desc', 'no reason')}")
        if vm.exited():
            raise boot_test.Fail(f"{step}: QEMU exited with status "
                                 f"{vm.status}: {vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise boot_test.Fail(f"{step}: the migration is still {st} "
                                 f"after {limit} s")
        pump(SNAP_POLL_S)


def qemu_wait_incoming(q, vm, limit):
    """Polls a QEMU started with -incoming until the migration is in: its
    run state no longer inmigrate, and query-migrate completed (or, from a
    QEMU that reports nothing on the receiving side, no status). Returns
    (run state, query-migrate's answer)."""
    deadline = time.monotonic() + limit
    while True:
        run = q.cmd("query-status", limit=limit).get("status")
        st = None
        if run != "inmigrate":
            info = q.cmd("query-migrate")
            st = info.get("status")
            if st in ("failed", "cancelled"):
                raise boot_test.Fail(
                    f"the incoming migration {st}: "
                    f"{info.get('error-desc', 'no reason')}")
            if st in (None, "completed"):
                return run, info
        if vm.exited():
            raise boot_test.Fail(f"QEMU -incoming exited with status "
                                 f"{vm.status}: {vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise boot_test.Fail(f"the incoming migration not in after "
                                 f"{limit} s (run state {run}, migration "
                                 f"{st})")
        vm.pump(SNAP_POLL_S)


def wait_no_descendants(vm, limit, step):
    """Waits until the VMM has no child process left: QEMU's exec:
    migration's shell and cat, which have the file whole once they end."""
    deadline = time.monotonic() + limit
    while len(process_tree(vm.proc.pid)) > 1:
        if time.monotonic() > deadline:
            left = [f"{p} {comm(p)}" for p in process_tree(vm.proc.pid)[1:]]
            raise boot_test.Fail(f"{step}: still running after {limit} s: "
                                 f"{', '.join(left)}")
        vm.pump(SNAP_POLL_S)


def snap_sha(vm, step):
    got = vm.value("FILLSHA", "sha256sum </tmp/fill", step, SNAP_IO_S)
    h = got.split()[0] if got else ""
    if not re.fullmatch(r"[0-9a-f]{64}", h):
        raise boot_test.Fail(f"{step}: sha256sum printed {got!r}")
    return h


def snap_fill(vm, res):
    """Writes SNAP_FILL_MB MiB into the guest's /tmp (its RAM) and takes
    the file's sha256."""
    t = time.monotonic()
    m = vm.command(SNAP_FILL_CMD % (SNAP_FILL_MB << 20), SNAP_FILL_RE,
                   "the guest's fill of its tmpfs", SNAP_IO_S)
    res["fill_s"] = round(time.monotonic() - t, 3)
    if m.group(1) != "0" or int(m.group(2)) != SNAP_FILL_MB << 20:
        raise boot_test.Fail(f"writing {SNAP_FILL_MB} MiB to the guest's "
                             f"/tmp/fill ended with status {m.group(1)} "
                             f"and {m.group(2)} bytes in the file")
    res["sha256"] = snap_sha(vm, "the fill's sha256 before the snapshot")
    if res["sha256"] != SNAP_FILL_SHA256:
        raise boot_test.Fail(f"the guest's /tmp/fill reads {res['sha256']}, "
                             f"not the {SNAP_FILL_SHA256} of what it was "
                             f"to write")


def snap_restored(vm, res, step):
    """After the resume: the time to the restored shell's answer, from the
    restoring VMM's start; then the fill read back whole."""
    vm.command(SNAP_ANSWER_CMD, SNAP_ANSWER_RE, step)
    res["restore_s"] = round(time.monotonic() - vm.t0, 4)
    res["sha256_after"] = snap_sha(vm, "the fill's sha256 after the "
                                   "restore")
    res["same"] = res["sha256_after"] == res["sha256"]
    if not res["same"]:
        raise boot_test.Fail(f"the restored guest's /tmp/fill reads "
                             f"{res['sha256_after']}, {res['sha256']} "
                             f"before the snapshot")


def snap_check_size(res, what):
    res["size_bytes"], res["apparent_bytes"] = snapshot_size(what)
    if res["size_bytes"] < SNAP_FILL_MB << 20:
        raise boot_test.Fail(f"{what}: {res['size_bytes'] >> 20} MiB on "
                             f"disk, less than the {SNAP_FILL_MB} MiB the "
                             f"guest wrote")


def bulkhead_wait_paused(ctl, sock, vm, limit):
    """Asks a restoring bulkhead's API (bulkhead-ctl info) until its VM is
    paused, ready to resume."""
    deadline = time.monotonic() + limit
    state = "no API socket yet"
    while True:
        if os.path.exists(sock):
            st, out = boot_test.ctl(ctl, sock, "info", check=False)
            if st == 0 and out:
                state = out.get("state")
                if state == "PAUSED":
                    return
            else:
                state = f"bulkhead-ctl info: status {st}"
        if vm.exited():
            raise boot_test.Fail(f"bulkhead --restore exited with status "
                                 f"{vm.status}: {vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise boot_test.Fail(f"the restored VM is not paused {limit} s "
                                 f"after bulkhead --restore started "
                                 f"({state})")
        vm.pump(SNAP_POLL_S)


def start_in(argv, logdir):
    os.makedirs(logdir, exist_ok=True)
    return boot_test.Vmm(argv, logdir)


def snap_bulkhead(a, res, work, logdir):
    """pause, snapshot into a fresh directory, kill -9; bulkhead --restore
    with an API socket of its own, resume."""
    ctl = argparse.Namespace(bulkhead_ctl=a.bulkhead_ctl, log=logdir)
    sock = os.path.join(work, "api.sock")
    sock2 = os.path.join(work, "api2.sock")
    snapdir = os.path.join(work, "snap")
    os.makedirs(snapdir)
    vm = start_in(bulkhead_argv(a, BASE_CMDLINE, None, SNAP_MEMORY_MB) +
                  ["--api-socket", f"path={sock}"],
                  os.path.join(logdir, "source"))
    try:
        boot_test.boot_to_prompt(vm)
        snap_fill(vm, res)
        t = time.monotonic()
        boot_test.ctl(ctl, sock, "pause")
        res["pause_s"] = round(time.monotonic() - t, 4)
        state = boot_test.api_state(ctl, sock)
        if state != "PAUSED":
            raise boot_test.Fail(f"info after pause: {state}, not PAUSED")
        t = time.monotonic()
        boot_test.ctl(ctl, sock, "snapshot", f"file://{snapdir}",
                      limit=SNAP_S)
        res["snapshot_s"] = round(time.monotonic() - t, 4)
    finally:
        stop(vm)
    boot_test.wait_no_children("after the snapshotted bulkhead was killed")
    names = sorted(os.listdir(snapdir))
    if names != ["config", "memory", "memory.map", "state"]:
        raise boot_test.Fail(f"the snapshot directory holds {names}")
    mem = os.path.getsize(os.path.join(snapdir, "memory"))
    if mem != SNAP_MEMORY_MB << 20:
        raise boot_test.Fail(f"the snapshot's memory file has {mem} bytes, "
                             f"not {SNAP_MEMORY_MB} MiB")
    snap_check_size(res, snapdir)
    vm = start_in([a.bulkhead, "--log-level", "debug", "--api-socket",
                   f"path={sock2}", "--restore",
                   f"source_url=file://{snapdir}"],
                  os.path.join(logdir, "restored"))
    try:
        bulkhead_wait_paused(ctl, sock2, vm, BOOT_S)
        res["restore_paused_s"] = round(time.monotonic() - vm.t0, 4)
        t = time.monotonic()
        boot_test.ctl(ctl, sock2, "resume")
        res["resume_s"] = round(time.monotonic() - t, 4)
        snap_restored(vm, res, "the restored guest's shell")
    finally:
        stop(vm)
    boot_test.wait_no_children("after the restored bulkhead was killed")


def snap_qemu(a, res, work, logdir):
    """stop, migrate to exec:cat > FILE (unlimited bandwidth), kill; the
    same QEMU command line with -incoming exec:cat FILE, cont."""
    qmp = os.path.join(work, "qmp.sock")
    image = os.path.join(work, "migration")
    argv = pc_argv(a, BASE_CMDLINE, None, SNAP_MEMORY_MB) + [
        "-qmp", f"unix:{qmp},server=on,wait=off"]
    vm = start_in(argv, os.path.join(logdir, "source"))
    q = None
    try:
        boot_test.boot_to_prompt(vm)
        snap_fill(vm, res)
        q = Qmp(qmp, vm, boot_test.CTL_S)
        t = time.monotonic()
        q.cmd("stop")
        res["pause_s"] = round(time.monotonic() - t, 4)
        state = q.cmd("query-status").get("status")
        if state != "paused":
            raise boot_test.Fail(f"query-status after stop: {state}, not "
                                 f"paused")
        q.cmd("migrate-set-parameters",
              {"max-bandwidth": QEMU_MAX_BANDWIDTH})
        t = time.monotonic()
        q.cmd("migrate", {"uri": "exec:cat > " + shlex.quote(image)})
        info = qemu_wait_migrated(q, vm, SNAP_S, "the migration to a file")
        res["migrate_s"] = round(time.monotonic() - t, 4)
        wait_no_descendants(vm, max(t + SNAP_S - time.monotonic(), 1),
                            "the migration's cat")
        res["snapshot_s"] = round(time.monotonic() - t, 4)
        ram = info.get("ram", {})
        res["qemu_migration"] = {
            "total_time_ms": info.get("total-time"),
            "downtime_ms": info.get("downtime"),
            "ram_transferred": ram.get("transferred"),
            "ram_normal_pages": ram.get("normal"),
            "ram_zero_pages": ram.get("duplicate"),
            "max_bandwidth": QEMU_MAX_BANDWIDTH}
    finally:
        if q:
            q.close()
        stop(vm)
    snap_check_size(res, image)
    if os.path.exists(qmp):
        os.unlink(qmp)
    vm = start_in(argv + ["-incoming", "exec:cat " + shlex.quote(image)],
                  os.path.join(logdir, "restored"))
    q = None
    try:
        q = Qmp(qmp, vm, BOOT_S)
        run, _ = qemu_wait_incoming(q, vm, BOOT_S)
        res["restore_paused_s"] = round(time.monotonic() - vm.t0, 4)
        res["restored_run_state"] = run
        t = time.monotonic()
        q.cmd("cont")
        res["resume_s"] = round(time.monotonic() - t, 4)
        snap_restored(vm, res, "the restored guest's shell")
    finally:
        if q:
            q.close()
        stop(vm)


def snapshot_run(vmm, a, logdir, res):
    """One round for one VMM, from a fresh boot, its files in a fresh
    directory under a.dir that goes at its end. Every figure goes into res
    as it is taken."""
    os.makedirs(logdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bh-snap-", dir=a.dir)
    try:
        if "," in work:
            raise boot_test.Fail(f"a comma in {work} cannot go into "
                                 f"--restore source_url=")
        (snap_bulkhead if vmm.name == "bulkhead" else snap_qemu)(
            a, res, work, logdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- the migration part ----------------------------------------------------------

class Ticks:
    """The guest ticker's lines (MIG_TICK_RE) as they reach the host, on
    the consoles of the VMMs the guest passes through, each read from where
    it stood at the start: the host's time of each new tick number (a line
    seen twice counts once), and the gaps between them. While it is
    entered, a thread of its own reads every console, so that a blocking
    call of the caller's (bulkhead-ctl, QMP) delays no tick; the caller
    waits with wait() then and reads no console itself."""

    def __init__(self, vms):
        self.vms = [[vm, len(vm.out), 0] for vm in vms]
        self.seen = set()
        self.times = []  # host times of new ticks, in arrival order
        self.stopping = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def scan(self, now=None):
        """Notes the new ticks in what the consoles have read so far."""
        now = time.monotonic() if now is None else now
        for v in self.vms:
            vm, off = v[0], v[1]
            for m in MIG_TICK_RE.finditer(vm.out, off):
                n = int(m.group(1))
                v[2] += 1
                if n not in self.seen:
                    self.seen.add(n)
                    self.times.append(now)
            # From the start of a line not yet whole, if any.
            v[1] = max(off, vm.out.rfind("\n") + 1)

    def pump(self, wait):
        """Waits up to `wait` seconds for output from any of the consoles,
        reads what all of them have, and notes the ticks: one wait over
        every console, so that none waits on another's."""
        fds = [fd for v in self.vms for fd in v[0].fds]
        if fds:
            select.select(fds, [], [], wait)
        else:
            time.sleep(wait)
        for v in self.vms:
            v[0].pump(0)
        self.scan()

    def _run(self):
        try:
            while not self.stopping:
                self.pump(SNAP_POLL_S)
        except Exception as e:
            self.error = e

    def __enter__(self):
        # What the consoles hold already came before: its ticks are
        # known, not timed.
        for _ in range(3):
            self.pump(0)
        self.times = []
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(5)

    def wait(self, s):
        if self.error:
            raise boot_test.Fail(f"reading the consoles: {self.error}")
        time.sleep(s)

    def count(self, vm):
        return next((v[2] for v in self.vms if v[0] is vm), 0)

    def settle(self, vm, step):
        """Waits MIG_SETTLE_S after the migration's end, and on until
        MIG_SETTLE_TICKS ticks came from vm (the destination), for at most
        COMMAND_S."""
        t = time.monotonic()
        n0 = self.count(vm)
        while (time.monotonic() - t < MIG_SETTLE_S or
               self.count(vm) - n0 < MIG_SETTLE_TICKS):
            if time.monotonic() - t > boot_test.COMMAND_S:
                raise boot_test.Fail(
                    f"{step}: {self.count(vm) - n0} ticker line(s) on the "
                    f"destination's console in {boot_test.COMMAND_S} s "
                    f"after the migration")
            if vm.exited():
                raise boot_test.Fail(f"{step}: the destination exited with "
                                     f"status {vm.status}: "
                                     f"{vm.err.strip()[-400:]}")
            self.wait(SNAP_POLL_S)

    def figures(self):
        """The longest gap between ticks and the median one, in ms."""
        d = [b - a for a, b in zip(self.times, self.times[1:])]
        if not d:
            return {"ticks": len(self.times)}
        return {"gap_ms": round(1000 * max(d), 1),
                "tick_ms": round(1000 * statistics.median(d), 1),
                "ticks": len(self.times)}


class CtlCall:
    """bulkhead-ctl --json in the background; its output and its errors
    each in a file of the log directory."""

    def __init__(self, ctl, sock, *cmd, limit):
        self.what = "bulkhead-ctl " + " ".join(cmd)
        base = os.path.join(ctl.log, f"ctl-{cmd[0]}-{time.monotonic_ns()}")
        self.out, self.err = base + ".json", base + ".err"
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            try:
                self.proc = subprocess.Popen(
                    [ctl.bulkhead_ctl, "--api-socket", sock, "--json",
                     "--timeout", str(limit)] + list(cmd),
                    stdout=o, stderr=e, env=boot_test.run_env())
            except OSError as x:
                raise boot_test.Fail(f"cannot run {ctl.bulkhead_ctl}: "
                                     f"{x.strerror}")

    def done(self):
        return self.proc.poll() is not None

    def result(self, limit):
        """Waits up to `limit` seconds for its end: (status, its JSON
        answer or None, its errors)."""
        try:
            st = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.kill()
            raise boot_test.Fail(f"{self.what}: no answer in {limit} s; "
                                 f"killed")
        with open(self.out, errors="replace") as f:
            text = f.read()
        with open(self.err, errors="replace") as f:
            err = f.read().strip()
        out = None
        if text.strip():
            try:
                out = json.loads(text)
            except ValueError:
                raise boot_test.Fail(f"{self.what}: not JSON: "
                                     f"{text[:200]!r}")
        return st, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


def bulkhead_mig_status(out):
    """The figures of send-migration's answer, a MigrationStatus
    (bulkhead-ctl --json prints it alone; within {"status": ...} too; its
    64-bit numbers as strings too, fields at zero left out too).
    pass counts from 0, the first copy of RAM; the last pass is the
    stop-and-copy one."""
    s = (out or {}).get("status", out or {})
    if not isinstance(s, dict) or s.get("phase") != "done":
        raise boot_test.Fail(f"send-migration answered {out!r}, not a "
                             f"MigrationStatus of phase done")

    def num(k):
        try:
            return int(s.get(k, 0))
        except (TypeError, ValueError):
            raise boot_test.Fail(f"send-migration's {k} is {s.get(k)!r}")
    r = {k: num(k) for k in ("pass", "pages_sent", "bytes_sent",
                             "downtime_ms", "elapsed_ms",
                             "downtime_limit_ms", "pages_dirty")}
    r["passes"] = r["pass"] + 1
    r["local"] = bool(s.get("local"))
    return r


def bulkhead_wait_api(ctl, sock, vm, limit, step):
    """Waits until a bulkhead answers ping on its API socket."""
    deadline = time.monotonic() + limit
    while not os.path.exists(sock) or \
            boot_test.ctl(ctl, sock, "ping", check=False)[0] != 0:
        if vm.exited():
            raise boot_test.Fail(f"{step}: bulkhead exited with status "
                                 f"{vm.status}: {vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise boot_test.Fail(f"{step}: no answer on {sock} after "
                                 f"{limit} s")
        vm.pump(SNAP_POLL_S)


def wait_socket(path, vm, limit, step):
    """Waits until the listening socket of an incoming migration exists."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if vm.exited():
            raise boot_test.Fail(f"{step}: the destination exited with "
                                 f"status {vm.status}: "
                                 f"{vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise boot_test.Fail(f"{step}: no {path} after {limit} s")
        vm.pump(SNAP_POLL_S)


def mig_prepare(vm, res):
    """In the booted guest: the fill and its sha256, the dirtier started
    and running, then the ticker and its first line."""
    snap_fill(vm, res)
    vm.send(MIG_DIRTY_CMD + "\n", "the dirtier")
    got = vm.value("DIRTYUP", MIG_DIRTY_UP, "the dirtier's start",
                   SNAP_IO_S)
    if not got.startswith("DIRTY_RUNNING"):
        raise boot_test.Fail(f"bh-guest-tool dirty {MIG_DIRTY_MB} "
                             f"{MIG_STOP} did not start: {got!r}")
    start = len(vm.out)
    vm.send(MIG_TICK_CMD + "\n", "the ticker")
    vm.expect(MIG_TICK_RE, start, boot_test.COMMAND_S,
              "the ticker's first line")


def mig_check(vm, res):
    """On the last destination: the stop file ends the ticker and the
    dirtier, whose every page must hold its last generation; the fill's
    sha256 must be what it was."""
    start = len(vm.out)
    vm.send(f"touch {MIG_STOP}\n", "the stop file")
    vm.expect(MIG_TICKEND_RE, start, boot_test.COMMAND_S,
              "the ticker's end")
    got = vm.value("DIRTY", MIG_DIRTY_VERDICT, "the dirtier's verdict",
                   SNAP_IO_S)
    res["dirty"] = got
    res["dirty_ok"] = got.startswith("DIRTY_OK")
    if not res["dirty_ok"]:
        raise boot_test.Fail(f"after the migration the dirtier found: "
                             f"{got!r}")
    res["sha256_after"] = snap_sha(vm, "the fill's sha256 after the "
                                   "migration")
    res["same"] = res["sha256_after"] == res["sha256"]
    if not res["same"]:
        raise boot_test.Fail(f"after the migration the guest's /tmp/fill "
                             f"reads {res['sha256_after']}, "
                             f"{res['sha256']} before")


def mig_bulkhead_one(a, ctl, src, sock, work, logdir, key, opts, vms, r):
    """One migration of the running guest from src (API at sock) to a new
    bulkhead, its figures into r as they are taken; returns (the
    destination, its API socket)."""
    dsock = os.path.join(work, f"api-{key}.sock")
    path = os.path.join(work, f"mig-{key}.sock")
    url = f"unix:{path}"
    dst = start_in([a.bulkhead, "--log-level", "debug", "--api-socket",
                    f"path={dsock}"], os.path.join(logdir, f"dest-{key}"))
    vms.append(dst)
    bulkhead_wait_api(ctl, dsock, dst, BOOT_S, f"{key}: the destination")
    calls = [CtlCall(ctl, dsock, "receive-migration", url, limit=MIG_S)]
    try:
        wait_socket(path, dst, boot_test.CTL_S, f"{key}: receive-migration")
        with Ticks([src, dst]) as ticks:
            t = time.monotonic()
            send = CtlCall(ctl, sock, "send-migration", url + opts,
                           limit=MIG_S)
            calls.append(send)
            while not send.done():
                if time.monotonic() - t > MIG_S + 10:
                    raise boot_test.Fail(f"{key}: send-migration "
                                         f"{url}{opts}: no answer in "
                                         f"{MIG_S + 10} s")
                ticks.wait(SNAP_POLL_S)
            r["total_s"] = r["host_s"] = round(time.monotonic() - t, 4)
            st, out, err = send.result(5)
            if st != 0:
                raise boot_test.Fail(f"{key}: send-migration {url}{opts}: "
                                     f"status {st}: {err[-400:]}")
            r.update(bulkhead_mig_status(out))
            st, _, err = calls[0].result(60)
            if st != 0:
                raise boot_test.Fail(f"{key}: receive-migration: status "
                                     f"{st}: {err[-400:]}")
            deadline = time.monotonic() + POWEROFF_S
            while not src.exited():
                if time.monotonic() > deadline:
                    raise boot_test.Fail(f"{key}: the source still runs "
                                         f"{POWEROFF_S} s after its "
                                         f"migration")
                ticks.wait(SNAP_POLL_S)
            if src.status != 0:
                raise boot_test.Fail(f"{key}: the source exited with "
                                     f"status {src.status}, not 0")
            state = boot_test.api_state(ctl, dsock)
            if state != "RUNNING":
                raise boot_test.Fail(f"{key}: the destination is {state}, "
                                     f"not RUNNING")
            ticks.settle(dst, key)
        r.update(ticks.figures())
    finally:
        for c in calls:
            c.kill()
    return dst, dsock


def mig_bulkhead(a, res, work, logdir):
    """send-migration over a unix socket with RAM copied, downtime=300,
    to a second bulkhead; then from it with local=on to a third; the
    checks on the third."""
    ctl = argparse.Namespace(bulkhead_ctl=a.bulkhead_ctl, log=logdir)
    sock = os.path.join(work, "api.sock")
    vm = start_in(bulkhead_argv(a, BASE_CMDLINE, None, SNAP_MEMORY_MB) +
                  ["--api-socket", f"path={sock}"],
                  os.path.join(logdir, "source"))
    vms = [vm]
    try:
        boot_test.boot_to_prompt(vm)
        mig_prepare(vm, res)
        for key, opts in (("copy", f",downtime={MIG_DOWNTIME_MS}"),
                          ("local", ",local=on")):
            res[key] = {}
            vm, sock = mig_bulkhead_one(a, ctl, vm, sock, work, logdir, key,
                                        opts, vms, res[key])
        mig_check(vm, res)
    finally:
        for v in vms:
            stop(v)
    boot_test.wait_no_children("after the migrated bulkheads were killed")


def qemu_wait_running(q, vm, limit, pump):
    """Polls query-status on the receiving QEMU until its run state is no
    longer inmigrate; returns the run state."""
    deadline = time.monotonic() + limit
    while True:
        run = q.cmd("query-status").get("status")
        if run != "inmigrate":
            return run
        if vm.exited():
            raise boot_test.Fail(f"QEMU -incoming exited with status "
                                 f"{vm.status}: {vm.err.strip()[-400:]}")
        if time.monotonic() > deadline:
            raise boot_test.Fail(f"QEMU -incoming still inmigrate {limit} s "
                                 f"after the source completed")
        pump(SNAP_POLL_S)


def mig_qemu(a, res, work, logdir):
    """downtime-limit 300 and max-bandwidth 2^40, then migrate to a QEMU
    with the same command line and -incoming unix:PATH, polled until
    completed; the destination found running; the checks on it."""
    qmp = os.path.join(work, "qmp.sock")
    qmp2 = os.path.join(work, "qmp-dest.sock")
    path = os.path.join(work, "qmig.sock")
    url = f"unix:{path}"
    argv = pc_argv(a, BASE_CMDLINE, None, SNAP_MEMORY_MB)
    vm = start_in(argv + ["-qmp", f"unix:{qmp},server=on,wait=off"],
                  os.path.join(logdir, "source"))
    vms, qs = [vm], []
    r = res["copy"] = {}
    try:
        boot_test.boot_to_prompt(vm)
        mig_prepare(vm, res)
        q = Qmp(qmp, vm, boot_test.CTL_S)
        qs.append(q)
        q.cmd("migrate-set-parameters",
              {"downtime-limit": MIG_DOWNTIME_MS,
               "max-bandwidth": QEMU_MAX_BANDWIDTH})
        dst = start_in(argv + ["-qmp", f"unix:{qmp2},server=on,wait=off",
                               "-incoming", url],
                       os.path.join(logdir, "dest"))
        vms.append(dst)
        q2 = Qmp(qmp2, dst, BOOT_S)
        qs.append(q2)
        wait_socket(path, dst, BOOT_S, "QEMU -incoming")
        with Ticks([vm, dst]) as ticks:
            t = time.monotonic()
            q.cmd("migrate", {"uri": url})
            info = qemu_wait_migrated(q, vm, MIG_S, "the live migration",
                                      ticks.wait)
            r["host_s"] = round(time.monotonic() - t, 4)
            run = qemu_wait_running(q2, dst, BOOT_S, ticks.wait)
            # Started without -S, the destination runs the guest itself
            # when the source's ran; a cont otherwise, and the round says
            # so.
            r["dest_run_state"] = run
            if run != "running":
                q2.cmd("cont")
            ticks.settle(dst, "QEMU's destination")
        r.update(ticks.figures())
        ram = info.get("ram", {})
        r["total_ms"] = info.get("total-time")
        r["total_s"] = (info["total-time"] / 1000.0
                        if info.get("total-time") is not None else None)
        r["downtime_ms"] = info.get("downtime")
        r["setup_ms"] = info.get("setup-time")
        r["bytes_sent"] = ram.get("transferred")
        r["passes"] = ram.get("dirty-sync-count")
        r["ram_normal_pages"] = ram.get("normal")
        r["ram_zero_pages"] = ram.get("duplicate")
        r["max_bandwidth"] = QEMU_MAX_BANDWIDTH
        r["downtime_limit_ms"] = MIG_DOWNTIME_MS
        # The source, paused after its migration, is done with.
        qs.remove(q)
        q.close()
        vms.remove(vm)
        stop(vm)
        mig_check(dst, res)
    finally:
        for x in qs:
            x.close()
        for v in vms:
            stop(v)


def migration_run(vmm, a, logdir, res):
    """One round for one VMM, from a fresh boot, its sockets in a fresh
    directory under a.dir that goes at its end. Every figure goes into res
    as it is taken."""
    os.makedirs(logdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bh-mig-", dir=a.dir)
    try:
        if "," in work:
            raise boot_test.Fail(f"a comma in {work} cannot go into a "
                                 f"migration URL")
        (mig_bulkhead if vmm.name == "bulkhead" else mig_qemu)(
            a, res, work, logdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- inside the KVM host: the measurements -----------------------------------------

ALL_VMMS = [Vmm("bulkhead", "Bulkhead", bulkhead_argv, "progress port"),
            Vmm("microvm", "QEMU -M microvm", microvm_argv, "serial"),
            Vmm("pc", "QEMU -M pc", pc_argv, "serial"),
            Vmm("kvmtool", "kvmtool", lkvm_argv, "serial")]
# The network part's VMMs: QEMU -M pc with a virtio-net-pci on a TAP, its
# packets through QEMU's own process (vhost=off) or the host kernel's
# vhost-net (vhost=on).
NET_VMMS = [Vmm("bulkhead", "Bulkhead", bulkhead_net_argv, "progress port"),
            Vmm("qemu-tap", "QEMU pc vhost=off", qemu_net_argv(False),
                "serial"),
            Vmm("qemu-vhost", "QEMU pc vhost=on", qemu_net_argv(True),
                "serial")]
PARTS = ("boot", "startup", "disk", "net", "snapshot", "migration")
VARIANTS = [("default", BASE_CMDLINE),
            ("noaperture", BASE_CMDLINE + " " + NOAPERTURE),
            ("shmemthp", BASE_CMDLINE)]
# Variants that change the emulated host for the boot, not the guest:
# shmemthp lets shmem (a memfd, Bulkhead's guest RAM) have transparent huge
# pages where the mapping asks for them; QEMU's anonymous RAM has them
# already (enabled=always in the emulated host).
HOST_SETTINGS = {"shmemthp": ("/sys/kernel/mm/transparent_hugepage/"
                              "shmem_enabled", "advise")}


def host_setting(var, restore=None):
    """Applies a variant's host setting; returns what to restore."""
    if var not in HOST_SETTINGS:
        return None
    path, value = HOST_SETTINGS[var]
    if restore is None:
        with open(path) as f:
            m = re.search(r"\[(\w+)\]", f.read())
        restore = m.group(1) if m else "never"
        with open(path, "w") as f:
            f.write(value)
        return restore
    with open(path, "w") as f:
        f.write(restore)
    return None


def write_json(path, obj):
    """Writes obj to path atomically (a temporary file, then rename), so a
    reader, or an emulated host that wedges, never leaves half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def inner(a):
    """One part of the run inside one emulated host: the boots of some VMMs
    in one round, or the start-up runs, or one VMM's disk and memory boot,
    network guest, snapshot rounds or migration rounds.
    The part's JSON is rewritten after every boot, so a host that wedges
    loses at most the boot under way."""
    vmms = [v for v in (NET_VMMS if a.only == "net" else ALL_VMMS)
            if v.name in a.vmms.split(",")]
    variants = [v for v in VARIANTS if v[0] in a.variants.split(",")]
    trace = Trace() if a.only in ("boot", "net") else None
    logs = os.path.join(a.results, "logs")
    out = os.path.join(a.results, "part.json")
    res = {"part": a.part, "boots": [], "startup": [], "disk": {},
           "net": {}, "snapshot": {}, "migration": {}, "notes": [],
           "done": False}
    write_json(out, res)

    def note(msg):
        print(f"kvm bench: {a.part}: {msg}", file=sys.stderr, flush=True)

    if a.only == "boot":
        for v in vmms:
            for var, cl in variants:
                d = os.path.join(logs, f"boot-{v.name}-{var}-{a.round}")
                try:
                    old = host_setting(var)
                    try:
                        r = boot_run(v, a, trace, cl, d)
                    finally:
                        if old is not None:
                            host_setting(var, old)
                    if var in HOST_SETTINGS:
                        r["host_setting"] = "%s=%s" % HOST_SETTINGS[var]
                except Exception as e:
                    r = {"error": str(e)}
                    note(f"{v.name} {var} run {a.round}: {e}")
                res["boots"].append({"vmm": v.name, "variant": var,
                                     "round": a.round, "result": r})
                write_json(out, res)
                note(f"boot {v.name} {var} {a.round}: " + ", ".join(
                    f"{k} {r[k]:.2f}" for k in ("marker_s", "exit_s",
                                                "progress_s") if k in r) +
                     (f", exits {r['exits']['total']} / to userspace "
                      f"{r['exits']['to_userspace']}" if "exits" in r
                      else ""))
    elif a.only == "startup":
        for i in range(a.repeat):
            try:
                r = startup_run(a, os.path.join(logs, f"startup-{i + 1}"))
            except Exception as e:
                r = {"error": str(e)}
                note(f"start-up run {i + 1}: {e}")
            res["startup"].append(r)
            write_json(out, res)
    elif a.only == "disk":
        disk = os.path.join(a.dir, "bh-kvm-bench.img")
        make_disk(disk)
        try:
            fd = os.open(disk, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
            os.close(fd)
            a.qemu_cache = "none"
        except OSError:
            a.qemu_cache = "writeback"
        res["qemu_cache"] = a.qemu_cache
        for v in vmms:
            try:
                r = disk_run(v, a, disk, os.path.join(logs, f"disk-{v.name}"),
                             min(a.repeat, DISK_ROUNDS), out, res)
            except Exception as e:
                r = dict(res["disk"].get(v.name, {}), error=str(e))
                note(f"disk {v.name}: {e}")
            res["disk"][v.name] = r
            write_json(out, res)
            note(f"disk and memory {v.name} done")
        os.unlink(disk)
    elif a.only == "net":
        # The TAPs, their addresses and the host's sockets in a network
        # namespace of this process's own: nothing reaches another host.
        net_test.own_netns()
        for v in vmms:
            try:
                r = net_run(v, a, trace, os.path.join(logs, f"net-{v.name}"),
                            out, res)
            except Exception as e:
                r = dict(res["net"].get(v.name, {}), error=str(e))
                note(f"net {v.name}: {e}")
            res["net"][v.name] = r
            write_json(out, res)
            note(f"net {v.name} done")
    elif a.only in ("snapshot", "migration"):
        a.bulkhead_ctl = os.path.join(os.path.dirname(a.bulkhead),
                                      "bulkhead-ctl")
        if not os.access(a.bulkhead_ctl, os.X_OK):
            die(f"no {a.bulkhead_ctl} beside {a.bulkhead}")
    if a.only == "snapshot":
        for v in vmms:
            if v.name not in SNAP_VMMS:
                continue
            k = {"memory_mb": SNAP_MEMORY_MB, "fill_mb": SNAP_FILL_MB,
                 "dir": a.dir, "dir_fs": fs_type(a.dir), "rounds": []}
            res["snapshot"][v.name] = k
            for i in range(1, a.repeat + 1):
                r = {"round": i}
                try:
                    snapshot_run(v, a, os.path.join(
                        logs, f"snapshot-{v.name}-{i}"), r)
                except Exception as e:
                    r["error"] = str(e)
                    note(f"snapshot {v.name} round {i}: {e}")
                k["rounds"].append(r)
                write_json(out, res)
                note(f"snapshot {v.name} round {i}: " + ", ".join(
                    f"{key} {r[key]:.2f}" for key in (
                        "snapshot_s", "restore_paused_s", "restore_s")
                    if key in r) + (f", {r['size_bytes'] >> 20} MiB"
                                    if "size_bytes" in r else ""))
    elif a.only == "migration":
        for v in vmms:
            if v.name not in MIG_VMMS:
                continue
            k = {"memory_mb": SNAP_MEMORY_MB, "fill_mb": SNAP_FILL_MB,
                 "dirty_mb": MIG_DIRTY_MB,
                 "downtime_limit_ms": MIG_DOWNTIME_MS,
                 "tick_s": MIG_TICK_S, "dir": a.dir, "rounds": []}
            res["migration"][v.name] = k
            for i in range(1, a.repeat + 1):
                r = {"round": i}
                try:
                    migration_run(v, a, os.path.join(
                        logs, f"migration-{v.name}-{i}"), r)
                except Exception as e:
                    r["error"] = str(e)
                    note(f"migration {v.name} round {i}: {e}")
                k["rounds"].append(r)
                write_json(out, res)
                note(f"migration {v.name} round {i}: " + "; ".join(
                    f"{m}: " + ", ".join(
                        f"{key} {r[m][key]}" for key in (
                            "total_s", "downtime_ms", "gap_ms")
                        if r[m].get(key) is not None)
                    for m in ("copy", "local") if m in r))
    res["done"] = True
    write_json(out, res)


# ---- outside: build the image, run inside kvm-host, print ------------------------

def fmt(s, unit="", scale=1.0, digits=2):
    if not s:
        return "-"
    return ("%.*f%s [%.*f-%.*f]" % (digits, s["median"] * scale, unit,
                                    digits, s["min"] * scale, digits,
                                    s["max"] * scale))


def fmt_n(s):
    if not s:
        return "-"
    return "%d [%d-%d]" % (s["median"], s["min"], s["max"])


def print_tables(sec):
    v = sec["vmms"]
    booted = any(d.get("boot") for d in v.values()) or \
        sec.get("startup", {}).get("runs")
    if booted:
        print(f"KVM: {sec['repeat']} boots per VMM and command line, "
              f"{sec['memory_mb']} MiB, 1 vCPU, guest command line "
              f"'{sec['cmdline']} bulkhead.run=poweroff', variants "
              f"{', '.join(sec.get('variants', ['default', 'noaperture']))} "
              f"(docs/BENCHMARKS.md); median [min-max]")
    elif any("disk" in d or "net" in d for d in v.values()):
        print(f"KVM: {sec['memory_mb']} MiB, 1 vCPU, guest command line "
              f"'{sec['cmdline']}' (docs/BENCHMARKS.md)")
    else:
        print(f"KVM: 1 vCPU, guest command line '{sec['cmdline']}' "
              f"(docs/BENCHMARKS.md)")
    for n in sec.get("notes", []):
        print("  note: " + n)
    for m in sec.get("missing", []):
        print(f"  MISSING: {m['what']}: {m['why']}")
    if not booted:
        print()
        print_rest(sec)
        return
    hdr = "%-16s %-11s %-22s %-22s %-22s %-22s %-20s %-14s" % (
        "VMM", "cmdline", "to /init, s", "boot-done port, s",
        "to exit, s", "exits (kvm_exit)", "to userspace", "--exit-stats")
    print(hdr)
    print("-" * len(hdr))
    for name, d in v.items():
        for var, b in d.get("boot", {}).items():
            print("%-16s %-11s %-22s %-22s %-22s %-22s %-20s %-14s" % (
                d["title"], var, fmt(b["marker_s"]), fmt(b["progress_s"]),
                fmt(b["exit_s"]), fmt_n(b["exits_total"]),
                fmt_n(b["exits_userspace"]), fmt_n(b["exit_stats_total"])))
            if b["errors"]:
                print("    %d run(s) failed: %s" % (b["errors"], [
                    r["error"] for r in b["runs"] if "error" in r][0]))
    print()
    print("Exits of the last default boot, by reason (kvm_exit), to "
          "userspace, and port I/O by port (kvm_pio, in the kernel or not):")
    for name, d in v.items():
        runs = [r for r in d.get("boot", {}).get("default", {}).get(
            "runs", []) if "exits" in r]
        if not runs:
            continue
        e = runs[-1]["exits"]
        print("  %s: %s" % (d["title"], ", ".join(
            "%s %d" % (x["what"], x["count"]) for x in e["by_reason"][:6])))
        print("    to userspace: %s; ports: %s" % (", ".join(
            "%s %d" % (x["what"], x["count"])
            for x in e["userspace_by_reason"][:4]), ", ".join(
            "%s %d" % (x["what"], x["count"]) for x in e["pio_by_port"][:6])))
        print("    MMIO: %d; %s" % (e["mmio_total"], ", ".join(
            "%s %d" % (x["what"], x["count"])
            for x in e["mmio_by_address"][:6])))
    print()
    su = sec.get("startup", {})
    print("Bulkhead start to first KVM_RUN: wall %s ms, CPU of all its "
          "processes %s ms (runner alone %s ms); Firecracker publishes "
          "8 CPU ms to its API socket" % (
              fmt(su.get("wall_ms"), digits=1),
              fmt(su.get("cpu_ms_tree"), digits=1),
              fmt(su.get("runner_cpu_ms"), digits=1)))
    print()
    print_rest(sec)


def print_rest(sec):
    v = sec["vmms"]
    print_net(sec)
    print()
    print_snapshot(sec)
    print()
    print_migration(sec)
    print()
    if not any("disk" in d for d in v.values()):
        print("Memory and guest disk: not measured in this run")
        return
    hdr = "%-16s %-12s %-12s %-20s %-20s %-24s %-24s" % (
        "VMM", "PSS KiB", "w/o guest", "seq 1M write MiB/s",
        "seq 1M read MiB/s", "4K rand qd32 IOPS", "(host clock)")
    print(f"Memory after boot (PSS of every process, guest RAM mapping "
          f"subtracted) and guest disk ({sec['disk_mb']} MiB image in tmpfs, "
          f"{sec.get('disk_rounds', '?')} rounds, "
          f"QEMU cache={sec.get('qemu_cache')}; random reads with "
          f"bh-randread, not fio: qd{RANDREAD_DEPTH}, native AIO, O_DIRECT "
          f"in the guest):")
    print(hdr)
    print("-" * len(hdr))
    for name, d in v.items():
        k = d.get("disk", {})
        if "error" in k:
            print("%-16s failed: %s" % (d["title"], k["error"]))
            if "memory" not in k:
                continue
            # What was measured before the failure.
        m = k.get("memory", {})
        print("%-16s %-12s %-12s %-20s %-20s %-24s %-24s" % (
            d["title"], m.get("total_pss_kib", "-"),
            m.get("vmm_pss_kib", "-"), fmt(k.get("write_mib_s"), digits=0),
            fmt(k.get("read_mib_s"), digits=0),
            fmt(k.get("randread_iops"), digits=0),
            fmt(k.get("randread_iops_host"), digits=0)))
        for p in m.get("processes", []):
            print("    %-20s %8d KiB (guest RAM %d KiB)" % (
                p["comm"], p["vmm_pss_kib"], p["guest_ram_pss_kib"]))


# The network table's rows: (transfer, figure, label, decimals). Each run's
# raw figures are in the JSON; these are derived from them by net_merge.
NET_FIGURES = [
    ("g2h", "mib_s", "TCP guest->host, MiB/s", 1),
    ("g2h", "gbit_s", "  Gbit/s", 3),
    ("g2h", "exits_to_userspace", "  exits to userspace", 0),
    ("g2h", "exits_to_userspace_not_serial", "    not the serial port", 0),
    ("g2h", "exits_total", "  exits (all, kvm_exit)", 0),
    ("g2h", "cpu_ms_per_gib", "  VMM CPU ms per GiB", 0),
    ("g2h", "cpu_ms_outside_guest_per_gib", "    of it outside the guest", 0),
    ("h2g", "mib_s", "TCP host->guest, MiB/s", 1),
    ("h2g", "gbit_s", "  Gbit/s", 3),
    ("h2g", "exits_to_userspace", "  exits to userspace", 0),
    ("h2g", "exits_to_userspace_not_serial", "    not the serial port", 0),
    ("h2g", "exits_total", "  exits (all, kvm_exit)", 0),
    ("h2g", "cpu_ms_per_gib", "  VMM CPU ms per GiB", 0),
    ("h2g", "cpu_ms_outside_guest_per_gib", "    of it outside the guest", 0),
    ("rr", "rr_per_s", "TCP 1-byte round trips/s", 0),
    ("rr", "rr_per_s_guest", "  by the guest's clock", 0),
    ("rr", "exits_to_userspace_per_rr", "  exits to userspace per trip", 2),
    ("rr", "exits_not_serial_per_rr", "    not the serial port", 2),
    ("rr", "exits_total_per_rr", "  exits (all) per trip", 2),
    ("rr", "cpu_us_per_rr", "  VMM CPU us per trip", 0),
    ("rr", "cpu_us_outside_guest_per_rr", "    of it outside the guest", 0),
]


def net_derived(kind, r):
    """A run's figures per GiB or per round trip."""
    d = dict(r)
    if kind == "rr":
        n = r["round_trips"]
        d["exits_to_userspace_per_rr"] = r["exits_to_userspace"] / n
        d["exits_total_per_rr"] = r["exits_total"] / n
        d["exits_not_serial_per_rr"] = (
            r.get("exits_to_userspace_not_serial", 0) / n)
        d["cpu_us_per_rr"] = r["cpu_ms"] * 1000.0 / n
        d["cpu_us_outside_guest_per_rr"] = (r["cpu_ms_outside_guest"] *
                                            1000.0 / n)
    else:
        gib = r["bytes"] / GIB
        d["cpu_ms_per_gib"] = r["cpu_ms"] / gib
        d["cpu_ms_outside_guest_per_gib"] = r["cpu_ms_outside_guest"] / gib
    return d


def net_merge(res, a):
    """Each VMM's network figures (median [min-max] over the rounds) and
    Bulkhead's ratio to each QEMU variant, figure by figure."""
    have = {n: d["net"] for n, d in res["vmms"].items() if "net" in d}
    if not have:
        return
    for name, k in have.items():
        figs = {}
        for kind, key, _, _ in NET_FIGURES:
            runs = [net_derived(kind, r) for r in k.get(kind, [])]
            figs[f"{kind}.{key}"] = stats([r.get(key) for r in runs])
        k["figures"] = figs
    ratios = {}
    bh = have.get("bulkhead", {}).get("figures", {})
    for q in ("qemu-tap", "qemu-vhost"):
        qf = have.get(q, {}).get("figures", {})
        r = {}
        for f, st in bh.items():
            if st and qf.get(f) and qf[f]["median"]:
                r[f] = st["median"] / qf[f]["median"]
        if r:
            ratios[q] = r
    any_k = next(iter(have.values()))
    res["net"] = {
        "mb": any_k.get("mb"), "round_trips": any_k.get("round_trips"),
        "rounds": min(a.repeat, NET_ROUNDS), "guest_ip": NET_GUEST_IP,
        "host_ip": NET_HOST_IP,
        "ratios_bulkhead_to": ratios,
        "how": "one guest per VMM, 1 vCPU, virtio-net with one queue pair "
        "on a TAP in the emulated host; guest->host: bh-guest-tool gen | "
        "busybox nc into a Python receiver; host->guest: a Python sender "
        "into busybox nc >/dev/null; round trips: bh-guest-tool tcp-rr "
        "against a Python echo server (TCP_NODELAY both ends); times on "
        "the host's clock; exits from the kvm tracepoints (every VMM "
        "alike); CPU time of every process of the VMM (Bulkhead: "
        "controller, runner, workers; QEMU: its process and its vhost "
        "kernel threads), guest mode included, and without it",
    }


def print_net(sec):
    net = sec.get("net")
    v = sec["vmms"]
    names = [n for n in ("bulkhead", "qemu-tap", "qemu-vhost")
             if "net" in v.get(n, {})]
    if not net or not names:
        print("Network: not measured in this run")
        return
    print(f"Network ({net['mb']} MiB per transfer, {net['round_trips']} "
          f"round trips, {net['rounds']} round(s); virtio-net, one queue "
          f"pair, TAP in the emulated host; median [min-max]; ratio = "
          f"Bulkhead / QEMU):")
    ratios = net.get("ratios_bulkhead_to", {})
    rq = [q for q in ("qemu-tap", "qemu-vhost") if q in ratios]
    hdr = "%-32s" % "" + "".join("%-26s" % v[n]["title"] for n in names) + \
        "".join("%-10s" % ("BH/" + q[5:]) for q in rq)
    print(hdr)
    print("-" * len(hdr))
    for kind, key, label, digits in NET_FIGURES:
        f = f"{kind}.{key}"
        row = "%-32s" % label
        for n in names:
            row += "%-26s" % fmt(v[n]["net"].get("figures", {}).get(f),
                                 digits=digits)
        for q in rq:
            r = ratios[q].get(f)
            row += "%-10s" % ("%.2f" % r if r is not None else "-")
        print(row)
    for n in names:
        k = v[n]["net"]
        if "error" in k:
            print(f"  {v[n]['title']} failed: {k['error']}")
        es = k.get("exit_stats_whole_run")
        if es:
            print(f"  {v[n]['title']}: --exit-stats over the whole guest "
                  f"(boot and every transfer): {es['total']} exits to "
                  f"userspace")


def snap_derived(r):
    d = dict(r)
    if "size_bytes" in r:
        d["size_mib"] = r["size_bytes"] / (1 << 20)
        d["apparent_mib"] = r["apparent_bytes"] / (1 << 20)
    return d


def snapshot_merge(res, a):
    """Each VMM's snapshot figures (median [min-max] over the rounds that
    finished) and Bulkhead's ratio to QEMU's, figure by figure."""
    have = {n: d["snapshot"] for n, d in res["vmms"].items()
            if "snapshot" in d}
    if not have:
        return
    for name, k in have.items():
        rounds = k.get("rounds", [])
        ok = [snap_derived(r) for r in rounds if "error" not in r]
        k["figures"] = {key: stats([r.get(key) for r in ok])
                        for key, _, _ in SNAP_FIGURES}
        k["errors"] = len(rounds) - len(ok)
        k["sha256_same"] = sum(1 for r in ok if r.get("same"))
    bh = have.get("bulkhead", {}).get("figures", {})
    qf = have.get("pc", {}).get("figures", {})
    ratios = {f: st["median"] / qf[f]["median"] for f, st in bh.items()
              if st and qf.get(f) and qf[f]["median"]}
    any_k = next(iter(have.values()))
    res["snapshot"] = {
        "memory_mb": any_k.get("memory_mb"), "fill_mb": any_k.get("fill_mb"),
        "rounds": a.repeat, "dir": any_k.get("dir"),
        "dir_fs": any_k.get("dir_fs"), "ratios_bulkhead_to_pc": ratios,
        "how": "per round, a fresh boot of a guest with %d MiB, 1 vCPU, "
        "that writes %d MiB into its tmpfs (yes | head -c) and takes "
        "its sha256; Bulkhead: bulkhead-ctl pause, bulkhead-ctl snapshot "
        "into an empty directory, kill -9, bulkhead --restore with an API "
        "socket of its own, polled with bulkhead-ctl info until Paused, "
        "bulkhead-ctl resume; QEMU -M pc over QMP: stop, "
        "migrate-set-parameters max-bandwidth %d, migrate exec:cat > FILE "
        "until query-migrate says completed and the cat has ended, kill, "
        "the same command line with -incoming exec:cat FILE, polled with "
        "query-status and query-migrate until the migration is in, cont; "
        "the restore timed from the restoring VMM's start to the guest "
        "shell's answer to a command typed after the resume, then the "
        "sha256 again; sizes from st_blocks (du) and st_size"
        % (SNAP_MEMORY_MB, SNAP_FILL_MB, QEMU_MAX_BANDWIDTH),
    }


def print_snapshot(sec):
    snap = sec.get("snapshot")
    v = sec["vmms"]
    names = [n for n in SNAP_VMMS if "snapshot" in v.get(n, {})]
    if not snap or not names:
        print("Snapshot and restore: not measured in this run")
        return
    print("Snapshot and restore, %g GiB guest (%d MiB written into its "
          "tmpfs first; %d round(s), each from a fresh boot; files in %s "
          "(%s); median [min-max]; ratio = Bulkhead / QEMU):" % (
              snap["memory_mb"] / 1024, snap["fill_mb"], snap["rounds"],
              snap.get("dir"), snap.get("dir_fs")))
    ratios = snap.get("ratios_bulkhead_to_pc", {})
    rq = "pc" in names and "bulkhead" in names
    hdr = "%-32s" % "" + "".join("%-26s" % v[n]["title"] for n in names) + \
        ("%-10s" % "BH/QEMU" if rq else "")
    print(hdr)
    print("-" * len(hdr))
    for key, label, digits in SNAP_FIGURES:
        row = "%-32s" % label
        for n in names:
            row += "%-26s" % fmt(v[n]["snapshot"].get("figures", {}).get(
                key), digits=digits)
        if rq:
            r = ratios.get(key)
            row += "%-10s" % ("%.2f" % r if r is not None else "-")
        print(row)
    for n in names:
        k = v[n]["snapshot"]
        rounds = k.get("rounds", [])
        ok = len(rounds) - k.get("errors", 0)
        print(f"  {v[n]['title']}: the restored guest's /tmp/fill had its "
              f"sha256 of before in {k.get('sha256_same', 0)} of {ok} "
              f"round(s) that finished")
        for r in rounds:
            if "error" in r:
                print(f"  {v[n]['title']} round {r['round']} failed: "
                      f"{r['error']}")


def mig_derived(r, which):
    """One migration's figures in the table's units; local=on's without
    the two it has no use for."""
    d = dict(r)
    if r.get("bytes_sent") is not None:
        d["sent_mib"] = r["bytes_sent"] / (1 << 20)
    if which == "local":
        for k in MIG_LOCAL_SKIP:
            d.pop(k, None)
    return d


def migration_merge(res, a):
    """Each column's migration figures (median [min-max] over the rounds
    that finished, their checks passed) and Bulkhead's ratio to QEMU's,
    figure by figure."""
    have = {n: d["migration"] for n, d in res["vmms"].items()
            if "migration" in d}
    if not have:
        return
    for name, k in have.items():
        rounds = k.get("rounds", [])
        ok = [r for r in rounds if "error" not in r]
        k["figures"] = {}
        for n, which, _ in MIG_COLUMNS:
            if n != name:
                continue
            runs = [mig_derived(r[which], which) for r in ok if which in r]
            k["figures"][which] = {key: stats([x.get(key) for x in runs])
                                   for key, _, _ in MIG_FIGURES}
        k["errors"] = len(rounds) - len(ok)
        k["checked"] = sum(1 for r in ok if r.get("dirty_ok") and
                           r.get("same"))
    bh = have.get("bulkhead", {}).get("figures", {}).get("copy", {})
    qf = have.get("pc", {}).get("figures", {}).get("copy", {})
    ratios = {f: st["median"] / qf[f]["median"] for f, st in bh.items()
              if st and qf.get(f) and qf[f]["median"]}
    any_k = next(iter(have.values()))
    res["migration"] = {
        "memory_mb": any_k.get("memory_mb"), "fill_mb": any_k.get("fill_mb"),
        "dirty_mb": any_k.get("dirty_mb"),
        "downtime_limit_ms": any_k.get("downtime_limit_ms"),
        "tick_s": any_k.get("tick_s"), "rounds": a.repeat,
        "ratios_bulkhead_to_pc": ratios,
        "how": "per round, a fresh boot of a guest with %d MiB, 1 vCPU, "
        "that writes %d MiB into its tmpfs (yes | head -c) and takes its "
        "sha256, starts bh-guest-tool dirty %d %s (rewrites %d MiB of its "
        "memory until the file exists) and a ticker printing a numbered "
        "line every %g s on its serial console; Bulkhead: a second bulkhead "
        "with an API socket and no VM, bulkhead-ctl receive-migration "
        "unix:PATH there, bulkhead-ctl send-migration "
        "unix:PATH,downtime=%d on the source, timed from the call to its "
        "answer (total_s), its MigrationStatus's downtime_ms, bytes_sent "
        "and pass (passes = pass + 1); the source must exit 0 and the "
        "destination say RUNNING; then the same from there to a third "
        "with local=on; QEMU -M pc over QMP: migrate-set-parameters "
        "downtime-limit %d and max-bandwidth %d, a second QEMU with the "
        "same command line and -incoming unix:PATH, migrate unix:PATH, "
        "query-migrate every 50 ms until completed (host_s), QEMU's "
        "total-time, downtime, ram.transferred and ram.dirty-sync-count "
        "(passes); the destination polled until its run state is no "
        "longer inmigrate (running: it resumed itself; else cont, and "
        "dest_run_state says so); the guest-observed gap: the longest "
        "time between two new ticker lines as the host read them from the "
        "source's console and then the destination's, until %g s and %d "
        "lines after the end; then the stop file: the dirtier must say "
        "DIRTY_OK and the fill's sha256 be the same, else the round fails"
        % (SNAP_MEMORY_MB, SNAP_FILL_MB, MIG_DIRTY_MB, MIG_STOP,
           MIG_DIRTY_MB, MIG_TICK_S, MIG_DOWNTIME_MS, MIG_DOWNTIME_MS,
           QEMU_MAX_BANDWIDTH, MIG_SETTLE_S, MIG_SETTLE_TICKS),
    }


def print_migration(sec):
    mig = sec.get("migration")
    v = sec["vmms"]
    cols = [(n, w, t) for n, w, t in MIG_COLUMNS
            if w in v.get(n, {}).get("migration", {}).get("figures", {})]
    if not mig or not cols:
        print("Live migration: not measured in this run")
        return
    print("Live migration, %g GiB guest dirtying %d MiB (%d MiB written "
          "into its tmpfs first; unix socket on the same host; downtime "
          "limit %d ms; %d round(s), each from a fresh boot; median "
          "[min-max]; ratio = Bulkhead / QEMU):" % (
              mig["memory_mb"] / 1024, mig["dirty_mb"], mig["fill_mb"],
              mig["downtime_limit_ms"], mig["rounds"]))
    ratios = mig.get("ratios_bulkhead_to_pc", {})
    names = {n for n, _, _ in cols}
    rq = "pc" in names and "bulkhead" in names
    hdr = "%-32s" % "" + "".join("%-26s" % t for _, _, t in cols) + \
        ("%-10s" % "BH/QEMU" if rq else "")
    print(hdr)
    print("-" * len(hdr))
    for key, label, digits in MIG_FIGURES:
        row = "%-32s" % label
        for n, w, _ in cols:
            row += "%-26s" % fmt(v[n]["migration"]["figures"][w].get(key),
                                 digits=digits)
        if rq:
            r = ratios.get(key)
            row += "%-10s" % ("%.2f" % r if r is not None else "-")
        print(row)
    for n in sorted(names, key=lambda x: MIG_VMMS.index(x)):
        k = v[n]["migration"]
        rounds = k.get("rounds", [])
        ok = len(rounds) - k.get("errors", 0)
        print(f"  {v[n]['title']}: after the migration the dirtier's pages "
              f"held their last generation and the fill its sha256 in "
              f"{k.get('checked', 0)} of {ok} round(s) that finished")
        for r in rounds:
            st = r.get("copy", {}).get("dest_run_state")
            if st and st != "running":
                print(f"  {v[n]['title']} round {r['round']}: the "
                      f"destination was {st} after the migration; cont "
                      f"was sent")
            if "error" in r:
                print(f"  {v[n]['title']} round {r['round']} failed: "
                      f"{r['error']}")


def merge(a, vmms, parts):
    """The section's JSON from the parts' JSON: every boot, start-up run and
    disk boot that was measured, and what is missing and why."""
    notes = []
    if not a.lkvm:
        notes.append("kvmtool left out: LKVM=/path/to/lkvm not given "
                     "(it is not packaged in Debian 12)")
    res = {"vmms": {v.name: {"title": v.title, "boot_done_by": v.marker}
                    for v in vmms},
           "notes": notes, "memory_mb": MEMORY_MB, "disk_mb": DISK_MB,
           "disk_rounds": min(a.repeat, DISK_ROUNDS),
           "cmdline": BASE_CMDLINE, "kernel": a.kernel, "repeat": a.repeat,
           "variants": a.variants.split(","), "parts": [], "missing": []}
    runs = {}
    startup = []
    qemu_cache = None
    for pt in parts:
        d = pt.get("data") or {}
        res["parts"].append({k: pt[k] for k in ("name", "status", "why",
                                                 "seconds") if k in pt})
        for b in d.get("boots", []):
            runs.setdefault((b["vmm"], b["variant"]), []).append(
                dict(b["result"], round=b["round"]))
        startup += d.get("startup", [])
        for name, k in d.get("disk", {}).items():
            res["vmms"][name]["disk"] = k
        for name, k in d.get("net", {}).items():
            res["vmms"][name]["net"] = k
        for name, k in d.get("snapshot", {}).items():
            res["vmms"][name]["snapshot"] = dict(k)
        for name, k in d.get("migration", {}).items():
            res["vmms"][name]["migration"] = dict(k)
        qemu_cache = d.get("qemu_cache", qemu_cache)
        # What the part was to measure and did not: the boot under way when
        # its emulated host stopped, and everything after it.
        got = {(b["vmm"], b["variant"]) for b in d.get("boots", [])}
        for want in pt["wants"]:
            kind = want[0]
            if kind == "boot" and (want[1], want[2]) not in got:
                res["missing"].append({
                    "what": f"boot {want[1]} {want[2]} round {want[3]}",
                    "why": pt.get("why") or "not measured"})
            elif kind == "startup" and len(d.get("startup", [])) < want[1]:
                res["missing"].append({
                    "what": "start-up runs %d-%d" % (
                        len(d.get("startup", [])) + 1, want[1]),
                    "why": pt.get("why") or "not measured"})
            elif kind == "net":
                k = d.get("net", {}).get(want[1])
                if k is None or "error" in k or not d.get("done"):
                    res["missing"].append({
                        "what": f"network {want[1]}",
                        "why": (k or {}).get("error") or pt.get("why") or
                        "not measured"})
            elif kind == "disk":
                k = d.get("disk", {}).get(want[1])
                if k is None or "error" in k or not d.get("done"):
                    res["missing"].append({
                        "what": f"disk and memory {want[1]}",
                        "why": (k or {}).get("error") or pt.get("why") or
                        "not measured"})
            elif kind in ("snapshot", "migration"):
                rs = d.get(kind, {}).get(want[1], {}).get("rounds", [])
                for r in rs:
                    if "error" in r:
                        res["missing"].append({
                            "what": f"{kind} {want[1]} round {r['round']}",
                            "why": r["error"]})
                if len(rs) < want[2]:
                    res["missing"].append({
                        "what": f"{kind} {want[1]} " + (
                            f"round {want[2]}" if len(rs) + 1 == want[2]
                            else f"rounds {len(rs) + 1}-{want[2]}"),
                        "why": pt.get("why") or "not measured"})
    # Failed boots (the VMM or guest, not the emulated host) are in the runs
    # with their error; they count as missing too.
    for (vname, var), rs in runs.items():
        for r in rs:
            if "error" in r:
                res["missing"].append({
                    "what": f"boot {vname} {var} round {r['round']}",
                    "why": r["error"]})
    res["qemu_cache"] = qemu_cache
    if qemu_cache == "writeback":
        notes.append("the emulated host's /tmp has no O_DIRECT (tmpfs "
                     "before Linux 6.6): QEMU's drive uses cache=writeback, "
                     "as Bulkhead's worker uses the page cache")
    if "disk" in a.only.split(","):
        notes.append("fio is not installed: the sequential figures are "
                     "busybox dd, 1 MiB with O_DIRECT in the guest, queue "
                     "depth 1")
        notes.append(RANDREAD_NOTE)
        res["randread"] = {"tool": "bh-randread (bench/kvm/randread.c)",
                           "depth": RANDREAD_DEPTH, "block_size": 4096,
                           "seconds": RANDREAD_S, "engine": "Linux native "
                           "AIO (io_submit), O_DIRECT in the guest",
                           "offsets": "random, 4 KiB-aligned, over the "
                           "whole disk"}
    for v in vmms:
        if v not in ALL_VMMS:
            continue
        boots = {}
        for var in res["variants"]:
            rs = sorted(runs.get((v.name, var), []),
                        key=lambda r: r["round"])
            if not rs and "boot" not in a.only.split(","):
                continue
            ok = [r for r in rs if "error" not in r]
            boots[var] = {
                "runs": rs,
                "errors": len(rs) - len(ok),
                "marker_s": stats([r.get("marker_s") for r in ok]),
                "exit_s": stats([r.get("exit_s") for r in ok]),
                "progress_s": stats([r.get("progress_s") for r in ok]),
                "exits_total": stats([r["exits"]["total"] for r in ok]),
                "exits_userspace": stats([r["exits"]["to_userspace"]
                                          for r in ok]),
                "exit_stats_total": stats([
                    (r.get("exit_stats") or {}).get("total") for r in ok]),
            }
        if boots:
            res["vmms"][v.name]["boot"] = boots
        k = res["vmms"][v.name].get("disk")
        if k:
            for kind in ("read_mib_s", "write_mib_s", "randread_iops",
                         "randread_iops_host"):
                if isinstance(k.get(kind), list):
                    k[kind] = stats(k[kind])
    net_merge(res, a)
    snapshot_merge(res, a)
    migration_merge(res, a)
    su = [r for r in startup if "error" not in r]
    res["startup"] = {"runs": startup,
                      "wall_ms": stats([r["wall_ms"] for r in su]),
                      "cpu_ms_tree": stats([r["cpu_ms_tree"] for r in su]),
                      "runner_cpu_ms": stats([r["runner_cpu_ms"]
                                              for r in su])}
    return res


def plan(a, vmms):
    """The parts of the run, each in an emulated host of its own with its
    own time limit: the boots of one VMM in one round (both command lines),
    the start-up runs, one disk and memory boot per VMM, one network guest
    per VMM, and the snapshot rounds and the migration rounds of each VMM.
    A host that wedges costs its part, not the run."""
    only = a.only.split(",")
    variants = a.variants.split(",")
    net_vmms = [v.name for v in vmms]
    vmms = [v for v in vmms if v in ALL_VMMS]
    parts = []
    up = 90  # the emulated host's own start, with margin for a loaded machine
    if "boot" in only:
        for i in range(1, a.repeat + 1):
            for v in vmms:
                parts.append({
                    "name": f"boot-{v.name}-{i}",
                    "args": ["--only", "boot", "--vmms", v.name,
                             "--variants", a.variants, "--round", str(i)],
                    "timeout": up + len(variants) * (BOOT_S + 30),
                    "wants": [("boot", v.name, var, i) for var in variants]})
    if "startup" in only and any(v.name == "bulkhead" for v in vmms):
        parts.append({"name": "startup",
                      "args": ["--only", "startup", "--vmms", "bulkhead"],
                      "timeout": up + a.repeat * 90,
                      "wants": [("startup", a.repeat)]})
    if "disk" in only:
        rounds = min(a.repeat, DISK_ROUNDS)
        for v in vmms:
            parts.append({"name": f"disk-{v.name}",
                          "args": ["--only", "disk", "--vmms", v.name],
                          "timeout": up + BOOT_S + 60 + rounds * (
                              2 * IO_S + 4 * RANDREAD_S + 60),
                          "wants": [("disk", v.name)]})
    if "net" in only:
        mb = NET_MB_QUICK if a.quick else NET_MB
        rounds = min(a.repeat, NET_ROUNDS)
        for v in NET_VMMS:
            if v.name not in net_vmms:
                continue
            parts.append({"name": f"net-{v.name}",
                          "args": ["--only", "net", "--vmms", v.name],
                          "timeout": up + BOOT_S + 120 + rounds * (
                              2 * net_xfer_s(mb) + net_xfer_s(
                                  NET_RR // 100)),
                          "wants": [("net", v.name)]})
    if "snapshot" in only:
        for v in vmms:
            if v.name not in SNAP_VMMS:
                continue
            parts.append({"name": f"snapshot-{v.name}",
                          "args": ["--only", "snapshot", "--vmms", v.name],
                          "timeout": up + a.repeat * (
                              2 * BOOT_S + 3 * SNAP_IO_S + SNAP_S + 60),
                          "wants": [("snapshot", v.name, a.repeat)]})
    if "migration" in only:
        for v in vmms:
            if v.name not in MIG_VMMS:
                continue
            # A boot, the fill and its hash, the dirtier's start; two
            # migrations (Bulkhead), each with a destination's start; the
            # checks.
            parts.append({"name": f"migration-{v.name}",
                          "args": ["--only", "migration", "--vmms", v.name],
                          "timeout": up + a.repeat * (
                              3 * BOOT_S + 5 * SNAP_IO_S + 2 * MIG_S + 120),
                          "wants": [("migration", v.name, a.repeat)]})
    return parts


def run_part(a, pt, results, base_argv):
    """Runs one part in an emulated host of its own; its JSON, whatever the
    host's fate, is read back into pt["data"]."""
    pdir = os.path.join(results, pt["name"])
    subprocess.run(["rm", "-rf", pdir], check=True)
    os.makedirs(pdir)
    argv = [os.path.join(TOP, "tests", "kvm", "kvm-host"), "--timeout",
            str(pt["timeout"]), "--results", pdir, "--retries", "0",
            "--bulkhead", os.path.join(a.build_dir, "bin", "bulkhead"),
            "--"] + base_argv + ["--part", pt["name"]] + pt["args"]
    print(f"kvm bench: part {pt['name']}: " + shlex.join(argv),
          file=sys.stderr, flush=True)
    t0 = time.monotonic()
    # The emulated host as the recorded results had it (two CPUs), unless
    # the caller says otherwise; tests/kvm/kvm-host's default is one.
    env = dict(os.environ)
    env.setdefault("BH_KVM_HOST_SMP", "2")
    r = subprocess.run(argv, env=env)
    pt["seconds"] = round(time.monotonic() - t0, 1)
    pt["status"] = r.returncode
    reasons = []
    if r.returncode == 124:
        reasons.append(f"the emulated host did not finish within its "
                       f"{pt['timeout']} s (wedged or too slow) and was "
                       f"killed")
    elif r.returncode != 0:
        reasons.append(f"kvm-host ended with status {r.returncode}")
    try:
        with open(os.path.join(pdir, "part.json")) as f:
            pt["data"] = json.load(f)
        if not pt["data"].get("done"):
            reasons.append("the part stopped before its end")
    except (OSError, ValueError) as e:
        pt["data"] = None
        reasons.append(f"no results from the emulated host ({e})")
    if reasons:
        pt["why"] = "; ".join(reasons) + f" (logs in {pdir})"
    if "why" in pt:
        print(f"kvm bench: part {pt['name']}: {pt['why']}", file=sys.stderr,
              flush=True)


def cpio_newc(entries):
    """A newc archive of (path, mode, data) entries: owner 0, mtime 0,
    inode numbers in order, so that the same input gives the same bytes."""
    out = bytearray()

    def add(name, mode, data, ino):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr.encode() + nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for i, (path, mode, data) in enumerate(entries):
        add(path, mode, data, i + 1)
    add("TRAILER!!!", 0, b"", 0)
    return bytes(out)


def randread_initramfs(bdir, initramfs):
    """Builds bh-randread statically and returns a copy of the guest
    initramfs with a second archive appended that holds it (the kernel
    unpacks concatenated archives, each gzip'd or not, one after the
    other); only the disk boots use it."""
    exe = os.path.join(bdir, "bh-randread")
    cc = os.environ.get("CC", "cc")
    argv = [cc, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-s",
            RANDREAD_SRC, "-o", exe]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"cannot build bh-randread statically ({shlex.join(argv)}): "
            f"{r.stderr.strip()}\n(a static build needs the C library's "
            f"libc.a: libc6-dev on Debian)")
    with open(exe, "rb") as f:
        prog = f.read()
    extra = gzip.compress(cpio_newc([
        ("usr", 0o040755, b""), ("usr/bin", 0o040755, b""),
        (RANDREAD_GUEST.lstrip("/"), 0o100755, prog)]), compresslevel=6,
        mtime=0)
    with open(initramfs, "rb") as f:
        base = f.read()
    out = os.path.join(bdir, "guest-initramfs-randread.cpio.gz")
    # Zeros between archives are skipped; they keep the next one aligned.
    write_bytes(out, base + b"\0" * (-len(base) % 4) + extra)
    return out


def make_tool_initramfs(bdir, kver, modules, name, what):
    """A guest image with the given modules and bh-guest-tool
    (tests/kvm/guest-tool.c) built statically, as tests/kvm/CMakeLists.txt
    builds it, at /bin/bh-guest-tool."""
    exe = os.path.join(bdir, "bh-guest-tool")
    cc = os.environ.get("CC", "cc")
    argv = [cc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
            "-static", "-o", exe, GUEST_TOOL_SRC]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"cannot build bh-guest-tool statically ({shlex.join(argv)}): "
            f"{r.stderr.strip()}\n(a static build needs the C library's "
            f"libc.a: libc6-dev on Debian)")
    out = os.path.join(bdir, name)
    r = subprocess.run([os.path.join(TOP, "tests", "kvm",
                                     "make-guest-initramfs"), out,
                        "--kernel-version", kver, "--modules", modules,
                        "--file", f"{exe}:bin/bh-guest-tool"])
    if r.returncode != 0:
        die(f"cannot build {what} (make-guest-initramfs failed)")
    return out


def make_net_initramfs(bdir, kver):
    """The network guests' image: the test guest's modules and virtio_net,
    and bh-guest-tool."""
    return make_tool_initramfs(bdir, kver, NET_MODULES,
                               "guest-initramfs-net.cpio.gz",
                               "the network guests' initramfs")


def make_mig_initramfs(bdir, kver):
    """The migration guests' image: the test guest's modules and
    bh-guest-tool (its dirty command), for both VMMs."""
    return make_tool_initramfs(bdir, kver, GUEST_MODULES,
                               "guest-initramfs-tool.cpio.gz",
                               "the migration guests' initramfs")


def write_bytes(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def outer(a):
    bdir = os.path.join(a.build_dir, "bench", "kvm")
    os.makedirs(bdir, exist_ok=True)
    bulkhead = os.path.join(a.build_dir, "bin", "bulkhead")
    if not os.access(bulkhead, os.X_OK):
        die(f"no {bulkhead}: build it (bench/run builds it unless "
            f"--no-build)")
    ctl = os.path.join(a.build_dir, "bin", "bulkhead-ctl")
    for pt in ("snapshot", "migration"):
        if pt in a.only.split(",") and not os.access(ctl, os.X_OK):
            die(f"no {ctl}, which the {pt} part needs: build it (bench/run "
                f"builds it unless --no-build)")
    kernels = sorted((k for k in os.listdir("/boot")
                      if k.startswith("vmlinuz-")), reverse=True)
    if not kernels:
        die("no /boot/vmlinuz-* to boot (install linux-image-amd64)")
    kernel = "/boot/" + kernels[0]
    kver = kernels[0][len("vmlinuz-"):]
    initramfs = os.path.join(bdir, "guest-initramfs.cpio.gz")
    r = subprocess.run([os.path.join(TOP, "tests", "kvm",
                                     "make-guest-initramfs"), initramfs,
                        "--kernel-version", kver, "--modules", GUEST_MODULES])
    if r.returncode != 0:
        die("cannot build the guest initramfs (make-guest-initramfs failed)")
    disk_initramfs = initramfs
    if "disk" in a.only.split(","):
        disk_initramfs = randread_initramfs(bdir, initramfs)
    if "net" in a.only.split(","):
        net_initramfs = make_net_initramfs(bdir, kver)
    if "migration" in a.only.split(","):
        mig_initramfs = make_mig_initramfs(bdir, kver)
    # Each part replaces its own directory only: the parts of an earlier
    # run that this one does not repeat stay.
    results = os.path.join(bdir, "results")
    os.makedirs(results, exist_ok=True)
    a.kernel = kernel
    vmms = [v for v in ALL_VMMS if v.name in a.vmms.split(",") and
            (v.name != "kvmtool" or a.lkvm)]
    # The network part's own VMMs; one entry per name in the results.
    if "net" in a.only.split(","):
        names = {v.name for v in vmms}
        vmms += [v for v in NET_VMMS if v.name in a.vmms.split(",") and
                 v.name not in names]
    # The image goes to /tmp, a tmpfs in the emulated host (its /dev/shm may
    # be missing).
    base = [sys.executable, os.path.abspath(__file__), "--inner",
            "--bulkhead", bulkhead, "--kernel", kernel,
            "--initramfs", initramfs, "--repeat", str(a.repeat),
            "--dir", "/tmp"]
    if a.lkvm:
        base += ["--lkvm", a.lkvm]
    if a.quick:
        base += ["--quick"]
    # kvm-host makes the same check: a /dev/kvm that opens but emulates
    # guest code does not count.
    emulated = subprocess.run(
        [os.path.join(a.build_dir, "bin", "bulkhead"), "--check-host=kvm"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0
    print("kvm bench: " + ("inside an emulated KVM host (this host's "
                           "/dev/kvm cannot run a stock guest: bulkhead "
                           "--check-host=kvm)" if emulated else
                           "on this host's /dev/kvm"),
          file=sys.stderr, flush=True)
    parts = plan(a, vmms)
    for pt in parts:
        if pt["name"].startswith("disk-"):
            pt["args"] = pt["args"] + ["--initramfs", disk_initramfs]
        if pt["name"].startswith("net-"):
            pt["args"] = pt["args"] + ["--initramfs", net_initramfs]
        if pt["name"].startswith("migration-"):
            pt["args"] = pt["args"] + ["--initramfs", mig_initramfs]
        run_part(a, pt, results, base)
        # The merged results so far, after every part.
        sec = merge(a, vmms, parts[:parts.index(pt) + 1])
        sec["emulated_host"] = emulated
        sec["results_dir"] = results
        write_json(a.out, sec)
    print_tables(sec)
    measured = any(pt.get("data") and (pt["data"].get("boots") or
                                       pt["data"].get("startup") or
                                       pt["data"].get("disk") or
                                       pt["data"].get("net") or
                                       pt["data"].get("snapshot") or
                                       pt["data"].get("migration"))
                   for pt in parts)
    if not measured:
        die(f"nothing was measured; logs in {results}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build-dir")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dir", default="/dev/shm")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--inner", action="store_true")
    p.add_argument("--only", default="boot,startup,disk",
                   help="the parts to measure (comma-separated: boot, "
                   "startup, disk, net, snapshot, migration)")
    p.add_argument("--vmms",
                   default="bulkhead,microvm,pc,kvmtool,qemu-tap,qemu-vhost",
                   help="the VMMs (comma-separated: bulkhead, microvm, pc, "
                   "kvmtool; kvmtool only with LKVM; the network part's "
                   "QEMU: qemu-tap, qemu-vhost; the snapshot and "
                   "migration parts': bulkhead, pc)")
    p.add_argument("--variants", default="default,noaperture,shmemthp",
                   help="the guest command lines and host settings "
                   "(default, noaperture, shmemthp)")
    p.add_argument("--part", default="", help=argparse.SUPPRESS)
    p.add_argument("--round", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--bulkhead")
    p.add_argument("--kernel")
    p.add_argument("--initramfs")
    p.add_argument("--lkvm", default=os.environ.get("LKVM", ""))
    p.add_argument("--print", metavar="JSON",
                   help="print the tables of a results file and stop")
    a = p.parse_args()
    if a.print:
        with open(a.print) as f:
            sec = json.load(f)
        print_tables(sec.get("sections", {}).get("kvm", sec))
        return
    if a.lkvm and not os.access(a.lkvm, os.X_OK):
        die(f"LKVM={a.lkvm} is not an executable")
    for v in a.variants.split(","):
        if v not in dict(VARIANTS):
            die(f"unknown variant {v!r} (default, noaperture, shmemthp)")
    for v in a.vmms.split(","):
        if v not in [x.name for x in ALL_VMMS + NET_VMMS]:
            die(f"unknown VMM {v!r} (bulkhead, microvm, pc, kvmtool, "
                f"qemu-tap, qemu-vhost)")
    for o in a.only.split(","):
        if o not in PARTS:
            die(f"unknown part {o!r} ({', '.join(PARTS)})")
    if a.inner:
        a.results = os.environ.get("BH_KVM_RESULTS") or die(
            "--inner needs BH_KVM_RESULTS (it runs under kvm-host)")
        signal.signal(signal.SIGTERM, boot_test.on_signal)
        inner(a)
    else:
        if not a.build_dir or not a.out:
            die("--build-dir and --out are needed")
        outer(a)


if __name__ == "__main__":
    main()
