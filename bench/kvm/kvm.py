#!/usr/bin/python3
"""The KVM benchmark section: Bulkhead side by side with QEMU (-M microvm and
-M pc) and, when LKVM names it, kvmtool, all booting the same kernel and the
same initramfs in one run: boot time, VM exits, memory of the VMM's
processes, guest disk I/O, and Bulkhead's start-up cost.

Run by bench/run. Without a usable /dev/kvm it runs itself again inside
tests/kvm/kvm-host (an emulated KVM host: QEMU TCG with nested SVM) and reads
the results back. Prints the section's tables and writes its JSON.
docs/BENCHMARKS.md says what each figure means.
"""
import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "kvm"))
import boot_test  # noqa: E402  (the Vmm class: a VMM's console on a pipe)

# The test guest's modules, and virtio-mmio for QEMU's microvm.
GUEST_MODULES = ("virtio_pci virtio_mmio virtio_blk virtio_console "
                 "virtio-rng button evdev")
BASE_CMDLINE = "console=ttyS0 quiet"
NOAPERTURE = "iommu=noaperture"
MEMORY_MB = 512
DISK_MB = 128
BOOT_S = 150
POWEROFF_S = 60
IO_S = 300
# Boot-progress line of bulkhead's runner (vcpu-runner/platform.c).
PROGRESS_RE = re.compile(
    r"guest boot progress 0x7b after ([0-9.]+) ms, monotonic (\d+)\.(\d+)")
FIRST_RUN_RE = re.compile(
    r"first KVM_RUN ([0-9.]+) ms after the runner started, runner CPU "
    r"([0-9.]+) ms, monotonic (\d+)\.(\d+)")
DD_RE = re.compile(r"(\d+) bytes \([^)]*\) copied, ([0-9.]+) seconds")
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


def bulkhead_argv(a, cmdline, disk):
    argv = [a.bulkhead, "--kernel", a.kernel, "--initramfs", a.initramfs,
            "--cmdline", cmdline, "--cpus", "boot=1",
            "--memory", f"size={MEMORY_MB}M", "--serial", "tty",
            "--exit-stats", "--log-level", "debug"]
    if disk:
        argv += ["--disk", f"path={disk}"]
    return argv


def qemu_common(a, cmdline):
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host",
            "-m", f"{MEMORY_MB}M", "-smp", "1", "-nodefaults",
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


def pc_argv(a, cmdline, disk):
    argv = qemu_common(a, cmdline) + ["-M", "pc"]
    if disk:
        argv += qemu_drive(disk, a.qemu_cache) + [
            "-device", "virtio-blk-pci,drive=d0"]
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
        for key, (event, keys) in self.SPECS.items():
            path = self._event(event, "trigger")
            with open(path) as f:
                if "hist:" in f.read():
                    continue
            try:
                with open(path, "w") as f:
                    f.write(f"hist:keys={keys}:vals=hitcount:size=4096\n")
            except OSError as e:
                die(f"cannot set a hist trigger on kvm:{event} ({path}: "
                    f"{e.strerror}); the kernel needs CONFIG_HIST_TRIGGERS")

    def _event(self, event, f):
        return os.path.join(self.root, "events", "kvm", event, f)

    def snapshot(self):
        snap = {}
        for key, (event, keys) in self.SPECS.items():
            counts = {}
            with open(self._event(event, "hist")) as f:
                for line in f:
                    if not line.startswith("{"):
                        continue
                    inner, _, rest = line.partition("}")
                    m = re.search(r"hitcount:\s*(\d+)", rest)
                    if not m:
                        continue
                    fields = tuple(int(v) for v in re.findall(
                        r":\s*(\d+)", inner))
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
    def top(counts, name, n=12):
        items = sorted(counts.items(), key=lambda kv: -kv[1])
        return [{"what": name(k), "count": v} for k, v in items[:n]]

    pio = {}
    for (port, rw), v in d["pio"].items():
        pio[(port, rw)] = v
    return {
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
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = line.split()[0].split("-")
                size = int(hi, 16) - int(lo, 16)
                parts = line.split(None, 5)
                name = parts[5].strip() if len(parts) > 5 else ""
            elif line.startswith("Pss:") and size >= guest_bytes:
                guest += int(line.split()[1])
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


def disk_run(vmm, a, disk, logdir, rounds):
    """Boots to the shell with the image as the guest's vda, takes the VMM's
    memory, then times 1 MiB sequential writes and reads with dd
    (O_DIRECT in the guest), `rounds` times each."""
    vm = start(vmm, a, BASE_CMDLINE, disk, logdir)
    res = {"write_mib_s": [], "read_mib_s": []}
    try:
        boot_test.boot_to_prompt(vm)
        time.sleep(1)
        res["memory"] = memory(vm.proc.pid)
        size = vm.value("SIZE", "cat /sys/block/vda/size 2>/dev/null",
                        "the disk's size")
        if size != str(DISK_MB * 2048):
            raise boot_test.Fail(f"the guest's vda has {size!r} sectors, "
                                 f"not {DISK_MB * 2048}")
        for _ in range(rounds):
            for kind, cmd in (
                    ("write", f"dd if=/dev/zero of=/dev/vda bs=1M "
                              f"count={DISK_MB} oflag=direct"),
                    ("read", f"dd if=/dev/vda of=/dev/null bs=1M "
                             f"count={DISK_MB} iflag=direct")):
                m = vm.command(cmd + " 2>&1", DD_RE, f"dd {kind}", IO_S)
                res[f"{kind}_mib_s"].append(
                    int(m.group(1)) / (1 << 20) / float(m.group(2)))
        vm.send("poweroff -f\n", "poweroff")
        vm.wait_exit(POWEROFF_S, "the VMM to exit after poweroff")
    finally:
        stop(vm)
    return res


# ---- inside the KVM host: the measurements -----------------------------------------

def inner(a):
    vmms = [Vmm("bulkhead", "Bulkhead", bulkhead_argv, "progress port"),
            Vmm("microvm", "QEMU -M microvm", microvm_argv, "serial"),
            Vmm("pc", "QEMU -M pc", pc_argv, "serial")]
    notes = []
    if a.lkvm:
        vmms.append(Vmm("kvmtool", "kvmtool", lkvm_argv, "serial"))
    else:
        notes.append("kvmtool left out: LKVM=/path/to/lkvm not given "
                     "(it is not packaged in Debian 12)")
    trace = Trace()
    logs = os.path.join(a.results, "logs")
    variants = [("default", BASE_CMDLINE),
                ("noaperture", BASE_CMDLINE + " " + NOAPERTURE)]
    res = {"vmms": {v.name: {"title": v.title, "boot_done_by": v.marker}
                    for v in vmms},
           "notes": notes, "memory_mb": MEMORY_MB, "disk_mb": DISK_MB,
           "cmdline": BASE_CMDLINE, "kernel": a.kernel,
           "repeat": a.repeat}

    # Boots: runs interleaved (run 1 of every VMM and variant, then run 2...)
    # so that whatever else the machine does falls on all alike.
    runs = {(v.name, var): [] for v in vmms for var, _ in variants}
    for i in range(a.repeat if "boot" in a.only else 0):
        for var, cl in variants:
            for v in vmms:
                d = os.path.join(logs, f"boot-{v.name}-{var}-{i + 1}")
                try:
                    r = boot_run(v, a, trace, cl, d)
                except Exception as e:
                    r = {"error": str(e)}
                    print(f"kvm bench: {v.name} {var} run {i + 1}: {e}",
                          file=sys.stderr, flush=True)
                runs[(v.name, var)].append(r)
                print(f"kvm bench: boot {v.name} {var} {i + 1}/{a.repeat}: "
                      + ", ".join(f"{k} {r[k]:.2f}" for k in
                                  ("marker_s", "exit_s", "progress_s")
                                  if k in r) +
                      (f", exits {r['exits']['total']} / to userspace "
                       f"{r['exits']['to_userspace']}" if "exits" in r
                       else ""), file=sys.stderr, flush=True)
    for v in vmms:
        boots = {}
        for var, _ in variants:
            rs = runs[(v.name, var)]
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
        res["vmms"][v.name]["boot"] = boots

    # Start-up of bulkhead to its first KVM_RUN.
    su = []
    for i in range(a.repeat if "startup" in a.only else 0):
        try:
            su.append(startup_run(a, os.path.join(logs, f"startup-{i + 1}")))
        except Exception as e:
            print(f"kvm bench: start-up run {i + 1}: {e}", file=sys.stderr)
    res["startup"] = {"runs": su,
                      "wall_ms": stats([r["wall_ms"] for r in su]),
                      "cpu_ms_tree": stats([r["cpu_ms_tree"] for r in su]),
                      "runner_cpu_ms": stats([r["runner_cpu_ms"]
                                              for r in su])}

    # Memory and disk: one boot to the shell per VMM, on the same image.
    disk = os.path.join(a.dir, "bh-kvm-bench.img")
    make_disk(disk)
    try:
        fd = os.open(disk, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
        os.close(fd)
        a.qemu_cache = "none"
    except OSError:
        a.qemu_cache = "writeback"
        notes.append(f"{a.dir} has no O_DIRECT (tmpfs before Linux 6.6): "
                     f"QEMU's drive uses cache=writeback, as Bulkhead's "
                     f"worker uses the page cache")
    res["qemu_cache"] = a.qemu_cache
    rounds = min(a.repeat, 3)
    for v in (vmms if "disk" in a.only else []):
        try:
            r = disk_run(v, a, disk, os.path.join(logs, f"disk-{v.name}"),
                         rounds)
            r["read_mib_s"] = stats(r["read_mib_s"])
            r["write_mib_s"] = stats(r["write_mib_s"])
        except Exception as e:
            r = {"error": str(e)}
            print(f"kvm bench: disk {v.name}: {e}", file=sys.stderr)
        res["vmms"][v.name]["disk"] = r
        print(f"kvm bench: disk and memory {v.name} done", file=sys.stderr,
              flush=True)
    os.unlink(disk)
    notes.append("fio is not installed: the disk figures are busybox dd, "
                 "1 MiB sequential with O_DIRECT in the guest, queue depth "
                 "1; no 4 KiB random-read IOPS")
    with open(os.path.join(a.results, "kvm.json"), "w") as f:
        json.dump(res, f, indent=1)


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
    print(f"KVM: {sec['repeat']} boots per VMM and command line, "
          f"{sec['memory_mb']} MiB, 1 vCPU, guest command line "
          f"'{sec['cmdline']} bulkhead.run=poweroff' (+ iommu=noaperture); "
          f"median [min-max]")
    for n in sec.get("notes", []):
        print("  note: " + n)
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
    print()
    su = sec.get("startup", {})
    print("Bulkhead start to first KVM_RUN: wall %s ms, CPU of all its "
          "processes %s ms (runner alone %s ms); Firecracker publishes "
          "8 CPU ms to its API socket" % (
              fmt(su.get("wall_ms"), digits=1),
              fmt(su.get("cpu_ms_tree"), digits=1),
              fmt(su.get("runner_cpu_ms"), digits=1)))
    print()
    hdr = "%-16s %-12s %-12s %-24s %-24s" % (
        "VMM", "PSS KiB", "w/o guest", "seq 1M write MiB/s",
        "seq 1M read MiB/s")
    print(f"Memory after boot (PSS of every process, guest RAM mapping "
          f"subtracted) and guest disk ({sec['disk_mb']} MiB image in tmpfs, "
          f"QEMU cache={sec.get('qemu_cache')}):")
    print(hdr)
    print("-" * len(hdr))
    for name, d in v.items():
        k = d.get("disk", {})
        if "error" in k:
            print("%-16s failed: %s" % (d["title"], k["error"]))
            continue
        m = k.get("memory", {})
        print("%-16s %-12s %-12s %-24s %-24s" % (
            d["title"], m.get("total_pss_kib", "-"),
            m.get("vmm_pss_kib", "-"), fmt(k.get("write_mib_s"), digits=0),
            fmt(k.get("read_mib_s"), digits=0)))
        for p in m.get("processes", []):
            print("    %-20s %8d KiB (guest RAM %d KiB)" % (
                p["comm"], p["vmm_pss_kib"], p["guest_ram_pss_kib"]))


def outer(a):
    bdir = os.path.join(a.build_dir, "bench", "kvm")
    os.makedirs(bdir, exist_ok=True)
    bulkhead = os.path.join(a.build_dir, "bin", "bulkhead")
    if not os.access(bulkhead, os.X_OK):
        die(f"no {bulkhead}: build it (bench/run builds it unless "
            f"--no-build)")
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
    results = os.path.join(bdir, "results")
    subprocess.run(["rm", "-rf", results], check=True)
    os.makedirs(results)
    # The image goes to /tmp, a tmpfs in the emulated host (its /dev/shm may
    # be missing). A boot is 10-20 s inside the emulated host: 6 boots per repeat for
    # three VMMs, a start-up run, and one disk boot per VMM.
    nvmm = 4 if a.lkvm else 3
    budget = 120 + a.repeat * (2 * nvmm * 45 + 40) + nvmm * 200
    argv = [os.path.join(TOP, "tests", "kvm", "kvm-host"), "--timeout",
            str(budget), "--results", results, "--retries", "0", "--",
            sys.executable, os.path.abspath(__file__), "--inner",
            "--bulkhead", bulkhead, "--kernel", kernel,
            "--initramfs", initramfs, "--repeat", str(a.repeat),
            "--dir", "/tmp", "--only", a.only]
    if a.lkvm:
        argv += ["--lkvm", a.lkvm]
    print("kvm bench: " + shlex.join(argv), file=sys.stderr, flush=True)
    r = subprocess.run(argv)
    path = os.path.join(results, "kvm.json")
    if r.returncode != 0 or not os.path.exists(path):
        die(f"the measurements failed (exit {r.returncode}); logs in "
            f"{results}")
    with open(path) as f:
        sec = json.load(f)
    sec["command"] = shlex.join(argv)
    sec["emulated_host"] = not os.access("/dev/kvm", os.R_OK | os.W_OK)
    print_tables(sec)
    with open(a.out, "w") as f:
        json.dump(sec, f, indent=1)


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
                   "startup, disk)")
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
