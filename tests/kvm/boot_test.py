#!/usr/bin/env python3
"""Boot tests of bulkhead: one case per run, on a machine with /dev/kvm
(run it through tests/kvm/kvm-host).

usage: boot_test.py CASE --bulkhead PATH --kernel BZIMAGE --initramfs CPIO
                    --crash-kernel FILE --log DIR

CASE is one of: poweroff reboot smp2 mem4g crash badkernel devices
workerkill api.

The case "api" runs bulkhead with --api-socket DIR/api.sock and a 16 MiB
disk (DIR/api.img) and drives it with bulkhead-ctl (--bulkhead-ctl PATH):
ping, info, pause (no guest output, no disk read, typed input held while
paused) and resume, counters, ten
clients at once, reboot, shutdown and shutdown-vmm. It starts bulkhead as
root with --user nobody:kvm, as a host without systemd would, and checks
that the controller, the runner and the worker run as nobody behind their
seccomp filters; /dev/kvm gets group kvm read-write first where it lacks
it (the emulated host's devtmpfs makes it root's alone).

The case "smp2" ends with SIGTERM, which bulkhead turns into the ACPI power
button; the guest's acpid powers off.

The case "devices" attaches two virtio disks and a virtio rng. Its disk
images are made in DIR (kept there when the case fails): rw.img, 64 MiB of
zeros, to which the guest writes 32 MiB and reads them back; ro.img, 16 MiB
of a known pattern (sha256 in ro.img.sha256), attached read-only.

The case "pmem" attaches two virtio-pmem devices, files made in a fresh
directory under /tmp (the results share, 9p without a page cache, cannot be
mapped shared and writable):
pmem-rw.img, 1 MiB that bulkhead grows to 32 MiB, to which the guest writes
a 4 MiB pattern with direct I/O and a flush; pmem-ro.img, 16 MiB of a known
pattern, with discard_writes=on, to which the guest writes zeros that must
never reach the file.

bulkhead runs with --serial tty; the test reads the guest's console from its
stdout, types on its stdin, and keeps everything under DIR: console.log
(bulkhead's stdout, raw), stderr.log, sent.log (what was typed), argv.txt and
result.txt. Every step has a deadline; when one passes, bulkhead (its whole
process group) gets SIGKILL and the test fails, naming the step.

Exit status 0 on pass, 1 on failure (with a one-line reason on stderr), 2 on
bad usage.

In a sanitizer build (-DBULKHEAD_SANITIZE=address,undefined) every process
reports to bulkhead's stderr: the controller and bulkhead-ctl run with
ASAN_OPTIONS and UBSAN_OPTIONS (SANITIZER_ENV, unless already set), the
children, whose environment is empty, with the defaults compiled into them
(common/sanitizer_child.c). A case fails when a sanitizer's report is in
bulkhead's or bulkhead-ctl's stderr (SANITIZER_RE), whatever else happened.

BH_BOOT_TEST_VMM_EXTRA adds options to bulkhead's command line
(e.g. "--log-level debug"). BH_BOOT_TEST_CMDLINE_EXTRA is appended to the guest's command line
(for example "loglevel=8" to see the whole boot).
"""

import argparse
import codecs
import hashlib
import json
import os
import grp
import pwd
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time

MARKER = "BULKHEAD-INIT-MARKER"
MARKER_RE = re.compile(r"^" + MARKER + r"$", re.M)
PROMPT_RE = re.compile(r"^# ", re.M)

BOOT_S = 120      # spawn (or reboot) to marker
PROMPT_S = 30     # marker to shell prompt
COMMAND_S = 30    # command typed to its answer
POWEROFF_S = 60   # poweroff to bulkhead's exit
CRASH_S = 60      # spawn to exit of a crashing guest
BADKERNEL_S = 15  # spawn to exit with a kernel that is no bzImage
LINGER_S = 3      # exit to the end of its output
IO_S = 150        # one 32 MiB dd in the guest, typed to its answer

CASES = ("poweroff", "reboot", "smp2", "mem4g", "crash", "badkernel",
         "devices", "pmem", "workerkill", "api")
CTL_S = 30        # one bulkhead-ctl call
PAUSE_QUIET_S = 3 # how long a paused guest must stay silent

# The controller and bulkhead-ctl in a sanitizer build: the first report
# ends the process, with a stack trace; leaks are checked at exit. The
# options mean nothing to a build without sanitizers.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=0:exitcode=1:"
                    "detect_leaks=1:print_stacktrace=1",
    "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=0:exitcode=1:"
                     "print_stacktrace=1",
}
# What ASan, LSan and UBSan print when they report.
SANITIZER_RE = re.compile(r"ERROR: (?:Address|Leak)Sanitizer|runtime error:|"
                          r"SUMMARY: (?:Address|Leak|UndefinedBehavior)"
                          r"Sanitizer")
# bulkhead-ctl's stderr, for the sanitizer check.
CTL_STDERR = []


def run_env():
    env = dict(os.environ)
    for k, v in SANITIZER_ENV.items():
        env.setdefault(k, v)
    return env


def sanitizer_reports(vms):
    """The lines of sanitizer reports in the stderr of bulkhead (and so of
    its children) and of bulkhead-ctl."""
    texts = [vm.err for vm in vms] + CTL_STDERR
    return [line.strip() for t in texts for line in t.splitlines()
            if SANITIZER_RE.search(line)]


# A module that guest-init could not load says so on the console.
INSMOD_FAIL_RE = re.compile(r"^guest-init: insmod .* failed$", re.M)

# The guest kernel crashed: no case expects this (the crash case's kernel
# triple-faults without a word). Waiting out the step's deadline after it
# would only hide the report.
GUEST_CRASH_RE = re.compile(r"^.*(?:Kernel panic - not syncing|"
                            r"BUG: unable to handle|general protection fault|"
                            r"PANIC: double fault|Oops: ).*$", re.M)
CRASH_LINES = 80  # the guest's crash report shown at most


class Fail(Exception):
    pass


def on_signal(signum, frame):
    raise Fail(f"interrupted by signal {signum}")


class Vmm:
    """A running bulkhead, with its console read incrementally."""

    def sigsys_note(self):
        """For a bulkhead killed by its seccomp filter: the system call,
        from the kernel's audit record (type=1326)."""
        if self.status != -signal.SIGSYS or self.kmsg < 0:
            return ""
        pat = re.compile(r"type=1326 .*\bpid=%d .*\bsyscall=(\d+)" %
                         self.proc.pid)
        while True:
            try:
                rec = os.read(self.kmsg, 8192).decode(errors="replace")
            except BlockingIOError:
                return " (no audit record of the kill in /dev/kmsg)"
            except BrokenPipeError:
                continue
            m = pat.search(rec)
            if m:
                return (f" (its seccomp filter killed it for system call "
                        f"{m.group(1)})")

    def __init__(self, argv, logdir):
        self.logdir = logdir
        with open(os.path.join(logdir, "argv.txt"), "w") as f:
            f.write(shlex.join(argv) + "\n")
        self.console_log = open(os.path.join(logdir, "console.log"), "wb")
        self.stderr_log = open(os.path.join(logdir, "stderr.log"), "wb")
        self.sent_log = open(os.path.join(logdir, "sent.log"), "wb")
        # The kernel's record of a seccomp kill, for bulkhead's own
        # (sigsys_note); root's alone on most hosts.
        try:
            self.kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.kmsg, 0, os.SEEK_END)
        except OSError:
            self.kmsg = -1
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, bufsize=0, start_new_session=True,
                env=run_env())
        except OSError as e:
            raise Fail(f"cannot run {argv[0]}: {e.strerror}")
        self.fds = {self.proc.stdout.fileno(): "out",
                    self.proc.stderr.fileno(): "err"}
        for fd in self.fds:
            os.set_blocking(fd, False)
        self.dec_out = codecs.getincrementaldecoder("utf-8")("replace")
        self.dec_err = codecs.getincrementaldecoder("utf-8")("replace")
        self.out = ""   # the console, decoded, without carriage returns
        self.err = ""
        self.status = None
        self.exit_time = None

    def elapsed(self):
        return time.monotonic() - self.t0

    def _poll_exit(self):
        if self.status is None:
            st = self.proc.poll()
            if st is not None:
                self.status = st
                self.exit_time = self.elapsed()

    def pump(self, wait):
        """Reads what is there, waiting up to `wait` seconds for something."""
        if self.fds:
            ready, _, _ = select.select(list(self.fds), [], [], wait)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    del self.fds[fd]
                    continue
                if self.fds[fd] == "out":
                    self.console_log.write(data)
                    self.console_log.flush()
                    self.out += self.dec_out.decode(data).replace("\r", "")
                else:
                    self.stderr_log.write(data)
                    self.stderr_log.flush()
                    self.err += self.dec_err.decode(data)
        else:
            time.sleep(min(wait, 0.1))
        self._poll_exit()

    def exited(self):
        """True once bulkhead exited and its output ended (or lingered)."""
        if self.status is None:
            return False
        if not self.fds:
            return True
        # Something it started may still hold the pipes open.
        return self.elapsed() - self.exit_time > LINGER_S

    def expect(self, regex, start, limit, step):
        """Waits up to `limit` seconds for `regex` in the console after
        offset `start`; returns the match (offsets into self.out)."""
        deadline = time.monotonic() + limit
        while True:
            m = regex.search(self.out, start)
            if m:
                return m
            self.check_guest_crash(step)
            if self.exited():
                raise Fail(f"bulkhead exited with status {self.status} "
                           f"while waiting for {step}{self.sigsys_note()}")
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise Fail(f"timed out after {limit} s waiting for {step}; "
                           f"killed bulkhead")
            self.pump(min(left, 0.5))

    def send(self, text, step):
        self.sent_log.write(f"[{self.elapsed():8.3f}] ".encode() +
                            text.encode() + b"\n")
        self.sent_log.flush()
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            self.pump(0)
            raise Fail(f"cannot type {step} on bulkhead's stdin: {e}")

    def command(self, line, regex, step, limit=COMMAND_S):
        """Types `line` at the shell prompt; returns the match of `regex` in
        the console text that follows."""
        start = len(self.out)
        self.send(line + "\n", step)
        m = self.expect(regex, start, limit, step)
        return m

    def value(self, name, expr, step, limit=COMMAND_S):
        """Has the guest's shell print NAME=<output of expr> on a line of
        its own; returns that output (complete lines only: the match needs
        the line's end)."""
        m = self.command(f"echo {name}=$({expr})",
                         re.compile(r"^" + name + r"=(.*)\n", re.M), step,
                         limit)
        return m.group(1).strip()

    def wait_exit(self, limit, step):
        deadline = time.monotonic() + limit
        while not self.exited():
            self.check_guest_crash(step)
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise Fail(f"timed out after {limit} s waiting for {step}; "
                           f"killed bulkhead")
            self.pump(min(left, 0.5))
        return self.status

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._poll_exit()
        for _ in range(20):
            if not self.fds:
                break
            self.pump(0.1)

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        else:
            # bulkhead is gone; make sure nothing it started lingers.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        for f in (self.console_log, self.stderr_log, self.sent_log):
            f.close()

    def guest_crash(self):
        """The first line of the guest kernel's crash report, or None."""
        m = GUEST_CRASH_RE.search(self.out)
        return m

    def check_guest_crash(self, step):
        m = self.guest_crash()
        if m:
            # A second or two for the rest of the report.
            end = time.monotonic() + 2
            while time.monotonic() < end and not self.exited():
                self.pump(0.2)
            self.kill()
            raise Fail(f"the guest kernel crashed while waiting for {step}: "
                       f"{m.group(0).strip()}")

    def tail(self, n=15):
        lines = []
        crash = self.guest_crash()
        if crash:
            # From the crash report's first line (and a few before it),
            # not only its end: the first lines say what went wrong.
            start = self.out.rfind("\n", 0, crash.start())
            before = self.out[:max(start, 0)].split("\n")[-5:]
            report = self.out[crash.start():].rstrip("\n").split("\n")
            lines.append("--- console (the guest kernel's crash report) ---")
            lines += before + report[:CRASH_LINES]
            if len(report) > CRASH_LINES:
                lines.append(f"... ({len(report) - CRASH_LINES} more lines "
                             f"in console.log)")
        elif self.out:
            lines.append("--- console (last lines) ---")
            lines += self.out.rstrip("\n").split("\n")[-n:]
        if self.err:
            lines.append("--- stderr (last lines) ---")
            lines += self.err.rstrip("\n").split("\n")[-n:]
        return "\n".join(lines)


def cmdline(args, poweroff):
    c = "console=ttyS0 quiet"
    if poweroff:
        c += " bulkhead.run=poweroff"
    extra = os.environ.get("BH_BOOT_TEST_CMDLINE_EXTRA", "").strip()
    if extra:
        c += " " + extra
    return c


def argv(args, kernel=None, cpus=1, memory="512M", poweroff=False):
    return [args.bulkhead, "--kernel", kernel or args.kernel,
            "--initramfs", args.initramfs,
            "--cmdline", cmdline(args, poweroff),
            "--cpus", f"boot={cpus}", "--memory", f"size={memory}",
            "--serial", "tty"] + os.environ.get(
                "BH_BOOT_TEST_VMM_EXTRA", "").split()


def check_modules(vm, start, end):
    m = INSMOD_FAIL_RE.search(vm.out, start, end)
    if m:
        raise Fail(f"the guest could not load its modules: {m.group(0)}")


def boot_to_prompt(vm, start=0, what="the init marker"):
    m = vm.expect(MARKER_RE, start, BOOT_S, what)
    t_marker = vm.elapsed()
    check_modules(vm, start, m.start())
    vm.expect(PROMPT_RE, m.end(), PROMPT_S, "the shell prompt after " + what)
    return t_marker


def poweroff(vm):
    vm.send("poweroff -f\n", "poweroff")
    t = time.monotonic()
    st = vm.wait_exit(POWEROFF_S, "bulkhead to exit after poweroff")
    if st != 0:
        raise Fail(f"bulkhead exited with status {st} after the guest "
                   f"powered off, not 0")
    return time.monotonic() - t


def case_poweroff(args, vm_factory):
    vm = vm_factory(argv(args, poweroff=True))
    m = vm.expect(MARKER_RE, 0, BOOT_S, "the init marker")
    t_marker = vm.elapsed()
    check_modules(vm, 0, m.start())
    st = vm.wait_exit(POWEROFF_S, "bulkhead to exit after the guest's poweroff")
    if st != 0:
        raise Fail(f"bulkhead exited with status {st} after the guest "
                   f"powered off, not 0")
    return (f"marker after {t_marker:.1f} s, bulkhead exited after "
            f"{vm.exit_time:.1f} s")


def case_reboot(args, vm_factory):
    vm = vm_factory(argv(args))
    t1 = boot_to_prompt(vm)
    start = len(vm.out)
    t_reboot = vm.elapsed()
    vm.send("reboot -f\n", "reboot")
    t2 = boot_to_prompt(vm, start, "the init marker after the reboot")
    poweroff(vm)
    return (f"first marker after {t1:.1f} s, second {t2 - t_reboot:.1f} s "
            f"after reboot, exit after {vm.exit_time:.1f} s")


def case_smp2(args, vm_factory):
    vm = vm_factory(argv(args, cpus=2))
    t1 = boot_to_prompt(vm)
    m = vm.command("echo CPUS=$(nproc)", re.compile(r"^CPUS=(\d+)$", re.M),
                   "the answer to nproc")
    nproc = int(m.group(1))
    m = vm.command("echo CPUINFO=$(grep -c ^processor /proc/cpuinfo)",
                   re.compile(r"^CPUINFO=(\d+)$", re.M),
                   "the processor count of /proc/cpuinfo")
    cpuinfo = int(m.group(1))
    if nproc != 2 or cpuinfo != 2:
        raise Fail(f"the guest sees {nproc} online CPUs and {cpuinfo} in "
                   f"/proc/cpuinfo, not 2")
    # SIGTERM, as systemd stops a service: the power button, which the
    # guest's acpid answers with poweroff, and status 0.
    t = time.monotonic()
    vm.proc.send_signal(signal.SIGTERM)
    st = vm.wait_exit(POWEROFF_S, "bulkhead to exit after SIGTERM")
    t_term = time.monotonic() - t
    if st != 0:
        raise Fail(f"bulkhead exited with status {st} after SIGTERM, not 0 "
                   f"(the guest should have powered off)")
    if "pressed the power button" not in vm.err or \
            "guest-init: power button" not in vm.out:
        raise Fail("SIGTERM did not go through the guest's power button")
    return (f"2 CPUs online, marker after {t1:.1f} s; SIGTERM: power "
            f"button, guest poweroff, exit 0 after {t_term:.1f} s")


CHILDREN = ("bulkhead-vcpu", "bulkhead-dev-blk", "bulkhead-dev-rng",
            "bulkhead-dev-console", "bulkhead-dev-net", "bulkhead-dev-vsock",
            "bulkhead-dev-pmem")


def wait_no_children(step, limit=10):
    """Waits until no child process of Bulkhead is left."""
    deadline = time.monotonic() + limit
    while True:
        left = {n: pids_named(n) for n in CHILDREN}
        left = {n: p for n, p in left.items() if p}
        if not left:
            return
        if time.monotonic() > deadline:
            raise Fail(f"{step}: still running after {limit} s: {left}")
        time.sleep(0.2)


def case_mem4g(args, vm_factory):
    vm = vm_factory(argv(args, memory="4G") + ["--rng", "src=/dev/urandom"])
    t1 = boot_to_prompt(vm)
    m = vm.command("echo MEMKB=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)",
                   re.compile(r"^MEMKB=(\d*)$", re.M), "MemTotal")
    if not m.group(1):
        raise Fail("no MemTotal in the guest's /proc/meminfo")
    memkb = int(m.group(1))
    start = len(vm.out)
    vm.command("grep 'System RAM' /proc/iomem | sed 's/^/IOMEM=/'; echo END=1",
               re.compile(r"^END=1$", re.M), "the RAM ranges of /proc/iomem")
    ranges = [(int(a, 16), int(b, 16)) for a, b in re.findall(
        r"^IOMEM=([0-9a-f]+)-([0-9a-f]+) : System RAM$", vm.out[start:], re.M)]
    min_kb = 3584 * 1024
    if memkb <= min_kb:
        raise Fail(f"MemTotal is {memkb} kB with 4 GiB of RAM, not above "
                   f"{min_kb} kB (3.5 GiB)")
    if not ranges:
        raise Fail("no System RAM in the guest's /proc/iomem")
    high = [r for r in ranges if r[0] == 0x100000000]
    if not high:
        raise Fail("no System RAM range starts at 0x100000000 in /proc/iomem "
                   "(found: " + ", ".join(f"{a:#x}-{b:#x}" for a, b in ranges)
                   + ")")
    if high[0][1] < high[0][0] + (256 << 20) - 1:
        raise Fail(f"the System RAM above 4 GiB ends at {high[0][1]:#x}, "
                   f"less than 256 MiB")
    # kill -9 of the controller while the guest reads the rng without
    # pause: its children follow it (parent-death signal), nothing is left
    # behind.
    if not pids_named("bulkhead-vcpu") or not pids_named("bulkhead-dev-rng"):
        raise Fail("the runner or the rng worker is not running")
    vm.command("(while :; do head -c 4096 /dev/hwrng; done | wc -c; "
               "echo RNG_LOOP_END) &", re.compile(r"\[\d+\]|#"),
               "the guest's rng read loop to start")
    vm.pump(1.0)
    if "RNG_LOOP_END" in vm.out:
        raise Fail("the guest's rng read loop ended before the kill")
    vm.proc.kill()
    vm.wait_exit(POWEROFF_S, "bulkhead to die of SIGKILL")
    wait_no_children("after kill -9 of bulkhead")
    return (f"MemTotal {memkb} kB, RAM above 4 GiB {high[0][0]:#x}-"
            f"{high[0][1]:#x}, marker after {t1:.1f} s; kill -9 of "
            f"bulkhead during the guest's rng reads took its runner and "
            f"worker with it")


def case_crash(args, vm_factory):
    vm = vm_factory(argv(args, kernel=args.crash_kernel))
    st = vm.wait_exit(CRASH_S, "bulkhead to exit on the guest's triple fault")
    if st != 1:
        raise Fail(f"bulkhead exited with status {st} on a triple-faulting "
                   f"guest, not 1")
    if not re.search(r"triple[ -]fault", vm.err, re.I):
        raise Fail("bulkhead's stderr does not mention the triple fault")
    if MARKER in vm.out:
        raise Fail("the crash kernel printed the init marker?")
    return f"exit 1 after {vm.exit_time:.1f} s"


def case_badkernel(args, vm_factory):
    bad = os.path.join(args.log, "not-a-kernel.txt")
    with open(bad, "w") as f:
        f.write("This is a text file, not a Linux bzImage.\n" * 64)
    vm = vm_factory(argv(args, kernel=bad))
    st = vm.wait_exit(BADKERNEL_S, "bulkhead to reject a text file as kernel")
    if st != 2:
        raise Fail(f"bulkhead exited with status {st} for a kernel that is a "
                   f"text file, not 2")
    if not vm.err.strip():
        raise Fail("bulkhead rejected the text file as kernel without a "
                   "message on stderr")
    if MARKER in vm.out:
        raise Fail("a guest booted from a text file?")
    return (f"exit 2 after {vm.exit_time:.1f} s: "
            f"{vm.err.strip().splitlines()[0]}")


MIB = 1 << 20
RW_SIZE = 64 * MIB          # rw.img: zeros
RO_SIZE = 16 * MIB          # ro.img: a known pattern
WRITE_SIZE = 32 * MIB       # what the guest writes to /dev/vda
RW_SERIAL = "bh-rw"
RO_SERIAL = "bh-ro"
# The guest writes this line over and over (yes | head -c).
WRITE_LINE = "bulkhead-virtio-blk-pattern-0123456789abcdef"


def write_pattern():
    line = (WRITE_LINE + "\n").encode()
    data = line * (WRITE_SIZE // len(line) + 1)
    return data[:WRITE_SIZE]


def make_images(logdir):
    """Makes rw.img (zeros) and ro.img (pattern) in logdir; returns their
    paths and the sha256 of ro.img (also kept in ro.img.sha256)."""
    rw = os.path.join(logdir, "rw.img")
    ro = os.path.join(logdir, "ro.img")
    for p in (rw, ro):
        if "," in p:
            raise Fail(f"{p}: a comma in the path cannot go into --disk")
    try:
        for p in (rw, ro):
            if os.path.exists(p):
                os.unlink(p)
        with open(rw, "wb") as f:
            f.truncate(RW_SIZE)     # zeros (sparse where the fs allows)
        h = hashlib.sha256()
        with open(ro, "wb") as f:
            for i in range(RO_SIZE // 64):
                block = f"bulkhead ro.img block {i:010d} ".encode()
                block += b"." * (63 - len(block)) + b"\n"
                h.update(block)
                f.write(block)
        ro_sha = h.hexdigest()
        with open(ro + ".sha256", "w") as f:
            f.write(f"{ro_sha}  ro.img\n")
    except OSError as e:
        raise Fail(f"cannot make the disk images in {logdir}: {e}")
    return rw, ro, ro_sha


def sha256_file(path, size=None):
    h = hashlib.sha256()
    left = size
    with open(path, "rb") as f:
        while left is None or left > 0:
            chunk = f.read(MIB if left is None else min(MIB, left))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    if left:
        raise Fail(f"{path} is shorter than {size} bytes")
    return h.hexdigest()


HVC_MARKER = "BULKHEAD-HVC0-MARKER"


def devices_argv(args, rw, ro, hvc):
    return argv(args) + [
        "--disk", f"path={rw},serial={RW_SERIAL}",
        "--disk", f"path={ro},readonly=on,serial={RO_SERIAL}",
        "--rng", "src=/dev/urandom",
        "--console", f"file={hvc}"]


def pids_named(name):
    """Pids of the processes whose argv[0] has this base name."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                arg0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(arg0).decode(errors="replace") == name:
            pids.append(int(d))
    return pids


def check_sandboxes(vm, children):
    """Every child of a running VM, from /proc: seccomp in filter mode,
    no_new_privs, no capability in any set, no core files; workers in
    namespaces of their own unless the host refused them (which the worker
    then logged), PID 1 of a PID namespace of their own. children maps
    argv[0] to the count expected. Returns a summary."""
    ns_refused = "namespace refused" in vm.err
    seen = 0
    for name, count in children.items():
        pids = pids_named(name)
        if len(pids) != count:
            raise Fail(f"{len(pids)} {name} processes, not {count}")
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    st = dict(l.split(":", 1) for l in f.read().splitlines()
                              if ":" in l)
                with open(f"/proc/{pid}/limits") as f:
                    limits = f.read()
            except OSError as e:
                raise Fail(f"{name} ({pid}): /proc: {e.strerror}")
            want = {"Seccomp": "2", "NoNewPrivs": "1",
                    "CapInh": "0000000000000000", "CapPrm": "0000000000000000",
                    "CapEff": "0000000000000000", "CapBnd": "0000000000000000",
                    "CapAmb": "0000000000000000"}
            for k, v in want.items():
                if st.get(k, "").strip() != v:
                    raise Fail(f"{name} ({pid}): {k} {st.get(k, '').strip()!r}"
                               f", not {v}")
            if not re.search(r"^Max core file size\s+0\s+0\s", limits, re.M):
                raise Fail(f"{name} ({pid}): core files are not off")
            if name == "bulkhead-vcpu":
                # The VM's and vCPUs' fds, and no /dev/kvm once they exist.
                targets = []
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                    except OSError:
                        pass
                if "/dev/kvm" in targets:
                    raise Fail(f"{name} ({pid}): still holds /dev/kvm after "
                               f"the VM was built")
                if "anon_inode:kvm-vm" not in targets:
                    raise Fail(f"{name} ({pid}): no KVM VM fd among "
                               f"{sorted(set(targets))}")
            if name.startswith("bulkhead-dev-") and not ns_refused:
                for ns in ("user", "mnt", "net", "ipc", "uts", "pid"):
                    if os.readlink(f"/proc/{pid}/ns/{ns}") == \
                            os.readlink(f"/proc/self/ns/{ns}"):
                        raise Fail(f"{name} ({pid}): in the host's {ns} "
                                   f"namespace, and no refusal was logged")
                # PID 1 of a namespace right below ours.
                nspid = st.get("NSpid", "").split()
                with open("/proc/self/status") as f:
                    ours = [l.split(":", 1)[1].split() for l in f
                            if l.startswith("NSpid:")][0]
                if len(nspid) != len(ours) + 1 or nspid[0] != str(pid) or \
                        nspid[-1] != "1":
                    raise Fail(f"{name} ({pid}): NSpid {' '.join(nspid)!r},"
                               f" not PID 1 of a namespace of its own")
            seen += 1
    return (f"{seen} children with seccomp, no_new_privs, no capabilities, "
            f"no core files, the runner without /dev/kvm; worker namespaces "
            f"{'refused by this host (logged)' if ns_refused else 'own'}")


def case_devices(args, vm_factory):
    rw, ro, ro_sha = make_images(args.log)
    want_sha = hashlib.sha256(write_pattern()).hexdigest()
    hvc = os.path.join(args.log, "hvc0.txt")
    vm = vm_factory(devices_argv(args, rw, ro, hvc))
    t_marker = boot_to_prompt(vm)
    sandboxes = check_sandboxes(vm, {"bulkhead-vcpu": 1,
                                     "bulkhead-dev-blk": 2,
                                     "bulkhead-dev-rng": 1,
                                     "bulkhead-dev-console": 1})

    def expect_value(name, expr, want, step):
        got = vm.value(name, expr, step)
        if got != want:
            raise Fail(f"{step}: the guest says {got!r}, not {want!r}")

    # Sizes in 512-byte sectors, serials, read-only flags.
    for dev, size, serial, ro_flag in (("vda", RW_SIZE, RW_SERIAL, "0"),
                                       ("vdb", RO_SIZE, RO_SERIAL, "1")):
        up = dev.upper()
        expect_value(f"{up}_SIZE", f"cat /sys/block/{dev}/size",
                     str(size // 512), f"the size of /dev/{dev} "
                     f"(/sys/block/{dev}/size)")
        expect_value(f"{up}_SERIAL", f"cat /sys/block/{dev}/serial", serial,
                     f"the serial of /dev/{dev} (/sys/block/{dev}/serial)")
        expect_value(f"{up}_RO", f"cat /sys/block/{dev}/ro", ro_flag,
                     f"the read-only flag of /dev/{dev} "
                     f"(/sys/block/{dev}/ro)")

    # 32 MiB written, synced, caches dropped, read back.
    t = time.monotonic()
    rc = vm.value("WRITE_RC",
                  f"yes {WRITE_LINE} | head -c {WRITE_SIZE} | "
                  "dd of=/dev/vda bs=1M conv=fsync 2>/dev/null; echo $?",
                  "the 32 MiB write to /dev/vda", IO_S)
    t_write = time.monotonic() - t
    if rc != "0":
        raise Fail(f"the 32 MiB write to /dev/vda: dd exited with status "
                   f"{rc!r}")
    expect_value("DROP_RC", "sync; echo 3 >/proc/sys/vm/drop_caches; echo $?",
                 "0", "sync and dropping the guest's caches")
    t = time.monotonic()
    got = vm.value("READ_SHA",
                   f"dd if=/dev/vda bs=1M count={WRITE_SIZE // MIB} "
                   "2>/dev/null | sha256sum",
                   "reading 32 MiB back from /dev/vda", IO_S)
    t_read = time.monotonic() - t
    got = got.split()[0] if got else ""
    if got != want_sha:
        raise Fail(f"reading 32 MiB back from /dev/vda: sha256 {got or '(none)'}"
                   f", not {want_sha} as written")

    # A write to the read-only disk fails.
    rc = vm.value("VDB_WRITE_RC",
                  "dd if=/dev/zero of=/dev/vdb bs=4096 count=1 conv=fsync; "
                  "echo $?", "a write to the read-only /dev/vdb")
    if rc in ("", "0"):
        raise Fail(f"a write to the read-only /dev/vdb: dd exited with "
                   f"status {rc or '(none)'}, not an error")

    # The rng: 64 bytes, not all zero, from the virtio rng.
    cur = vm.value("RNG_CURRENT", "cat /sys/class/misc/hw_random/rng_current",
                   "the current hwrng (/sys/class/misc/hw_random/rng_current)")
    if not cur.startswith("virtio_rng"):
        raise Fail(f"the guest's current hwrng is {cur!r}, not virtio_rng.*")
    hexbytes = vm.value("RNG", "head -c 64 /dev/hwrng | od -A n -t x1 | "
                        "tr -d ' \\n'", "64 bytes from /dev/hwrng")
    if not re.fullmatch(r"[0-9a-f]{128}", hexbytes):
        raise Fail(f"64 bytes from /dev/hwrng: got {hexbytes!r}, not 128 hex "
                   f"digits")
    if set(hexbytes) == {"0"}:
        raise Fail("64 bytes from /dev/hwrng are all zero")

    # The virtio console: a line written to hvc0 lands in the file.
    rc = vm.value("HVC_RC", f"echo {HVC_MARKER} >/dev/hvc0; echo $?",
                  "a line written to /dev/hvc0")
    if rc != "0":
        raise Fail(f"writing to /dev/hvc0 failed with status {rc!r}")

    poweroff(vm)

    try:
        with open(hvc, "rb") as f:
            hvc_text = f.read().decode("utf-8", "replace")
    except OSError as e:
        raise Fail(f"the console file {hvc}: {e.strerror}")
    if HVC_MARKER not in hvc_text:
        raise Fail(f"{HVC_MARKER} did not reach the --console file "
                   f"({len(hvc_text)} bytes there)")

    # What reached the images.
    got = sha256_file(rw, WRITE_SIZE)
    if got != want_sha:
        raise Fail(f"the first 32 MiB of rw.img on the host: sha256 {got}, "
                   f"not {want_sha} as the guest wrote")
    got = sha256_file(ro)
    if got != ro_sha:
        raise Fail(f"ro.img changed on the host: sha256 {got}, not {ro_sha}")
    # Passed: the images go (80 MiB); on a failure they stay with the logs.
    for p in (rw, ro):
        os.unlink(p)
    return (f"{sandboxes}; "
            f"vda 64 MiB rw, vdb 16 MiB ro, rng {cur}, hvc0; marker after "
            f"{t_marker:.1f} s, 32 MiB written in {t_write:.1f} s "
            f"({WRITE_SIZE / MIB / t_write:.1f} MiB/s), read back in "
            f"{t_read:.1f} s ({WRITE_SIZE / MIB / t_read:.1f} MiB/s), "
            f"exit after {vm.exit_time:.1f} s")


PMEM_RW_SIZE = 32 * MIB     # what the guest sees of pmem-rw.img
PMEM_RO_SIZE = 16 * MIB     # pmem-ro.img, discard_writes=on
PMEM_WRITE = 4 * MIB        # the pattern the guest writes


def pmem_images():
    """pmem-rw.img (1 MiB of zeros: bulkhead grows it) and pmem-ro.img (a
    pattern) in a new directory under /tmp; their paths and the sha256 of
    pmem-ro.img."""
    d = tempfile.mkdtemp(prefix="bh-pmem-")
    rw = os.path.join(d, "pmem-rw.img")
    ro = os.path.join(d, "pmem-ro.img")
    for p in (rw, ro):
        if "," in p:
            raise Fail(f"{p}: a comma in the path cannot go into --pmem")
    try:
        with open(rw, "wb") as f:
            f.truncate(MIB)
        h = hashlib.sha256()
        with open(ro, "wb") as f:
            for i in range(PMEM_RO_SIZE // 64):
                block = f"bulkhead pmem-ro block {i:010d} ".encode()
                block += b"." * (63 - len(block)) + b"\n"
                h.update(block)
                f.write(block)
    except OSError as e:
        raise Fail(f"cannot make the pmem files in {d}: {e}")
    return rw, ro, h.hexdigest()


def case_pmem(args, vm_factory):
    rw, ro, ro_sha = pmem_images()
    line = (WRITE_LINE + "\n").encode()
    want_sha = hashlib.sha256(
        (line * (PMEM_WRITE // len(line) + 1))[:PMEM_WRITE]).hexdigest()
    vm = vm_factory(argv(args) + [
        "--pmem", f"file={rw},size={PMEM_RW_SIZE // MIB}M",
        "--pmem", f"file={ro},size={PMEM_RO_SIZE // MIB}M,"
                  f"discard_writes=on,id=base"])
    t_marker = boot_to_prompt(vm)
    check_sandboxes(vm, {"bulkhead-vcpu": 1, "bulkhead-dev-pmem": 2})
    if os.path.getsize(rw) != PMEM_RW_SIZE:
        raise Fail(f"pmem-rw.img is {os.path.getsize(rw)} bytes, not grown "
                   f"to {PMEM_RW_SIZE}")

    # Which /dev/pmemN is which, by size (in 512-byte sectors).
    sizes = vm.value("PMEM_SIZES", "for d in /sys/block/pmem*; do "
                     "echo -n \"${d##*/}:$(cat $d/size) \"; done",
                     "the pmem block devices (/sys/block/pmem*)")
    devs = dict(reversed(e.split(":")) for e in sizes.split())
    dev_rw = devs.get(str(PMEM_RW_SIZE // 512))
    dev_ro = devs.get(str(PMEM_RO_SIZE // 512))
    if len(devs) != 2 or not dev_rw or not dev_ro:
        raise Fail(f"the guest's pmem devices are {sizes!r}, not one of "
                   f"{PMEM_RW_SIZE} and one of {PMEM_RO_SIZE} bytes")
    dax = vm.value("PMEM_DAX", f"cat /sys/block/{dev_rw}/queue/dax",
                   f"whether /dev/{dev_rw} is DAX-capable")

    # The pattern with direct I/O, then fsync: the driver's flush request.
    rc = vm.value("PMEM_WRITE_RC",
                  f"yes {WRITE_LINE} | head -c {PMEM_WRITE} | "
                  f"dd of=/dev/{dev_rw} bs=1M oflag=direct conv=fsync "
                  "2>/dev/null; echo $?",
                  f"the {PMEM_WRITE // MIB} MiB write to /dev/{dev_rw}", IO_S)
    if rc != "0":
        raise Fail(f"the write to /dev/{dev_rw}: dd exited with {rc!r}")
    got = vm.value("PMEM_READ_SHA",
                   f"dd if=/dev/{dev_rw} bs=1M count={PMEM_WRITE // MIB} "
                   "iflag=direct 2>/dev/null | sha256sum",
                   f"reading /dev/{dev_rw} back", IO_S).split()
    if not got or got[0] != want_sha:
        raise Fail(f"reading /dev/{dev_rw} back: sha256 {got}, not "
                   f"{want_sha}")
    # Zeros over the discard_writes device: the guest sees them...
    rc = vm.value("PMEM_RO_WRITE_RC",
                  f"dd if=/dev/zero of=/dev/{dev_ro} bs=1M count=4 "
                  "oflag=direct conv=fsync 2>/dev/null; echo $?",
                  f"a write to /dev/{dev_ro} (discard_writes=on)", IO_S)
    if rc != "0":
        raise Fail(f"the write to /dev/{dev_ro}: dd exited with {rc!r}")
    zero_sha = hashlib.sha256(bytes(MIB)).hexdigest()
    got = vm.value("PMEM_RO_SHA", f"dd if=/dev/{dev_ro} bs=1M count=1 "
                   "iflag=direct 2>/dev/null | sha256sum",
                   f"reading /dev/{dev_ro} back").split()
    if not got or got[0] != zero_sha:
        raise Fail(f"/dev/{dev_ro} does not read back the zeros the guest "
                   f"wrote: {got}")
    # A file system on it, mounted with DAX (the guest's loads and
    # stores go to the region itself, no page cache): on the
    # discard_writes device, so that the files are left alone.
    mounted = vm.value(
        "PMEM_DAX_MOUNT",
        f"mke2fs -q -b 4096 /dev/{dev_ro} >/dev/null 2>&1 && "
        f"mkdir -p /mnt/pm && mount -t ext4 -o dax /dev/{dev_ro} /mnt/pm "
        f"&& echo dax-file >/mnt/pm/f && sync && cat /mnt/pm/f && "
        f"grep ' /mnt/pm ' /proc/mounts; umount /mnt/pm 2>/dev/null",
        f"an ext4 file system on /dev/{dev_ro} mounted with -o dax", IO_S)
    if not mounted.startswith("dax-file") or "dax" not in \
            mounted[len("dax-file"):]:
        raise Fail(f"mounting /dev/{dev_ro} with -o dax: {mounted!r} (no "
                   f"file written, or no dax in its mount options)")
    poweroff(vm)

    # ...and the file never does.
    got = sha256_file(rw, PMEM_WRITE)
    if got != want_sha:
        raise Fail(f"the first {PMEM_WRITE // MIB} MiB of pmem-rw.img: "
                   f"sha256 {got}, not {want_sha} as the guest wrote")
    got = sha256_file(ro)
    if got != ro_sha:
        raise Fail(f"pmem-ro.img changed (discard_writes=on): sha256 {got}, "
                   f"not {ro_sha}")
    for p in (rw, ro):
        os.unlink(p)
    os.rmdir(os.path.dirname(rw))
    return (f"/dev/{dev_rw} 32 MiB (dax {dax}) written and found in the "
            f"file, /dev/{dev_ro} 16 MiB discard_writes left unchanged, an "
            f"ext4 on it mounted with DAX ({mounted.split()[-3]}); "
            f"marker after {t_marker:.1f} s, exit after "
            f"{vm.exit_time:.1f} s")


KILL_WAIT_S = 60   # for the guest's writes to reach the image
RESTART_WINDOW_S = 60  # --restart-devices: at most max= restarts in this


def kill_blk_worker(vm, step):
    pids = pids_named("bulkhead-dev-blk")
    if len(pids) != 1:
        raise Fail(f"{step}: {len(pids)} bulkhead-dev-blk processes, not 1")
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def case_workerkill(args, vm_factory):
    """kill -9 of the block worker during the guest's I/O, twice. With
    --restart-devices on,max=1 the first kill is absorbed by a new worker
    that finishes the requests in flight: the guest's write completes and
    every byte lands. The second exceeds the limit: a failing worker
    answers with I/O errors, which end the guest's read loop instead of
    hanging it, and the VM lives on. Last, kill -9 of the vCPU runner:
    reported, exit 1, no process left."""
    rw, _, _ = make_images(args.log)
    want_sha = hashlib.sha256(write_pattern()).hexdigest()
    line = (WRITE_LINE + "\n").encode()
    # The shell runs on hvc0 through --console tty (the kernel's messages
    # go to the serial port's file), so this case also shows the virtio
    # console carrying a terminal both ways.
    serial_log = os.path.join(args.log, "serial.log")
    a = argv(args)
    a[a.index("--serial") + 1] = f"file={serial_log}"
    a[a.index("--cmdline") + 1] += " bulkhead.shell=hvc0"
    vm = vm_factory(a + [
        "--console", "tty",
        "--disk", f"path={rw},serial={RW_SERIAL}",
        "--restart-devices", "on,max=1"])
    boot_to_prompt(vm)
    tty = vm.value("TTY", "tty", "the shell's terminal")
    if tty != "/dev/hvc0":
        raise Fail(f"the guest's shell runs on {tty!r}, not /dev/hvc0")

    # 1. A 32 MiB write; the worker dies once it has begun to land.
    start = len(vm.out)
    vm.send(f"(yes {WRITE_LINE} | head -c {WRITE_SIZE} | "
            "dd of=/dev/vda bs=1M conv=fsync 2>/dev/null; "
            "echo WRITE1_RC=$?) &\n", "the background write")
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        with open(rw, "rb") as f:
            if f.read(len(line)) == line:
                break
        if time.monotonic() > deadline:
            raise Fail(f"the guest's write did not reach {rw} within "
                       f"{KILL_WAIT_S} s")
        vm.pump(0.02)
    t_kill = time.monotonic()
    pid1 = kill_blk_worker(vm, "the first kill")
    with open(rw, "rb") as f:
        f.seek(WRITE_SIZE - len(line))
        landed_all = f.read(len(line)) == line
    m = vm.expect(re.compile(r"WRITE1_RC=(\d+)\n"), start, IO_S,
                  "the write to finish after the first kill")
    t_write_end = time.monotonic() - t_kill
    if m.group(1) != "0":
        raise Fail(f"the write across a worker restart failed in the guest "
                   f"(dd status {m.group(1)})")
    rm = re.search(r"device disk0: restarted its worker in (\d+) ms", vm.err)
    if not rm:
        vm.pump(0.5)
        rm = re.search(r"device disk0: restarted its worker in (\d+) ms",
                       vm.err)
    if not rm:
        raise Fail("bulkhead did not report the worker's restart")
    if not re.search(r"device disk0: worker killed by signal 9", vm.err):
        raise Fail("bulkhead did not report the worker's death by SIGKILL")
    vm.value("DROP_RC", "sync; echo 3 >/proc/sys/vm/drop_caches; echo $?",
             "dropping the guest's caches")
    got = vm.value("READ_SHA",
                   f"dd if=/dev/vda bs=1M count={WRITE_SIZE // MIB} "
                   "2>/dev/null | sha256sum", "reading the write back",
                   IO_S).split()
    if not got or got[0] != want_sha:
        raise Fail(f"after the restart the guest reads sha256 "
                   f"{got[0] if got else '(none)'}, not {want_sha}")

    # 2. Reads in a loop that only an error ends; the second kill is past
    # the limit of one restart a minute. Where the write above (nearly)
    # outlasted that minute (a sanitizer build's worker is several times
    # slower), the test waits the minute out, and one more kill, answered
    # by a restart, starts a new one first.
    extra_kill = time.monotonic() - t_kill > RESTART_WINDOW_S - 15
    if extra_kill:
        while time.monotonic() - t_kill < RESTART_WINDOW_S + 3:
            vm.pump(0.2)
        pid1 = kill_blk_worker(vm, "the kill that starts a new minute")
        deadline = time.monotonic() + KILL_WAIT_S
        while len(re.findall(r"device disk0: restarted its worker in",
                             vm.err)) < 2:
            if time.monotonic() > deadline:
                raise Fail("bulkhead did not restart the worker after the "
                           "kill that starts a new minute")
            vm.pump(0.2)
    start = len(vm.out)
    vm.send("(while dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null; do "
            "echo 3 >/proc/sys/vm/drop_caches; done; echo READ2_END_$((6*7))) &\n",
            "the background read loop")
    time.sleep(2)
    vm.pump(0)
    pid2 = kill_blk_worker(vm, "the second kill")
    if pid2 == pid1:
        raise Fail("the first worker was not replaced")
    vm.expect(re.compile(r"READ2_END_42\n"), start, IO_S,
              "the guest's read loop to end with an I/O error")
    if not re.search(r"device disk0: replaced its worker by one that fails "
                     r"every request", vm.err):
        vm.pump(0.5)
        if not re.search(r"replaced its worker by one that fails", vm.err):
            raise Fail("bulkhead did not report the failing worker")
    alive = vm.value("ALIVE", "echo yes", "the guest's shell after the "
                     "device failed")
    if alive != "yes":
        raise Fail(f"the guest's shell answered {alive!r}")
    rc = vm.value("READ3_RC", "dd if=/dev/vda of=/dev/null bs=4096 count=1 "
                  "iflag=direct 2>/dev/null; echo $?",
                  "a read from the failed disk")
    if rc == "0":
        raise Fail("a read from the failed disk succeeded")
    # kill -9 of the vCPU runner: bulkhead says so, stops the workers and
    # exits 1; nothing is left behind.
    runner = pids_named("bulkhead-vcpu")
    if len(runner) != 1:
        raise Fail(f"{len(runner)} bulkhead-vcpu processes, not 1")
    # ... while the guest writes to its console (hvc0, the console worker)
    # without pause.
    start = len(vm.out)
    vm.send("while :; do echo CONSOLE-IO-$((i=i+1)); done\n",
            "the console write loop")
    vm.expect(re.compile(r"CONSOLE-IO-50\n"), start, COMMAND_S,
              "the guest's console write loop")
    os.kill(runner[0], signal.SIGKILL)
    st = vm.wait_exit(POWEROFF_S, "bulkhead to exit after its runner died")
    if st != 1:
        raise Fail(f"bulkhead exited with {st} after its runner was "
                   f"killed, not 1")
    if not re.search(r"vCPU runner killed by signal 9", vm.err):
        raise Fail("bulkhead did not report the runner's death")
    wait_no_children("after the runner's kill")
    got = sha256_file(rw, WRITE_SIZE)
    if got != want_sha:
        raise Fail(f"the first 32 MiB of rw.img on the host: sha256 {got}, "
                   f"not {want_sha} as the guest wrote")
    os.unlink(rw)
    os.unlink(os.path.join(args.log, "ro.img"))
    try:
        with open(serial_log, "rb") as f:
            serial = f.read().decode("utf-8", "replace")
    except OSError as e:
        raise Fail(f"the serial file {serial_log}: {e.strerror}")
    if not re.search(r"I/O error, dev vda", serial):
        raise Fail("the guest kernel's I/O errors are not in the serial "
                   "port's file")
    return (f"shell on hvc0 through --console tty; restart "
            f"{rm.group(1)} ms after the kill ("
            f"{'after' if landed_all else 'before'} the write's last block "
            f"landed); write finished {t_write_end:.1f} s after the kill, "
            f"32 MiB intact; "
            f"{'a kill to start a new minute, then ' if extra_kill else ''}"
            f"second kill: the guest's reads failed with "
            f"an I/O error (in the serial log); kill -9 of the runner "
            f"during the guest's hvc0 writes: reported, exit 1, no process "
            f"left")


def ctl(args, sock, *cmd, check=True, limit=CTL_S):
    """Runs bulkhead-ctl --json; returns (status, parsed stdout or None)."""
    a = [args.bulkhead_ctl, "--api-socket", sock, "--json", "--timeout",
         str(limit)] + list(cmd)
    try:
        p = subprocess.run(a, capture_output=True, timeout=2 * limit + 5,
                           env=run_env())
    except subprocess.TimeoutExpired:
        raise Fail(f"bulkhead-ctl {' '.join(cmd)}: no exit in {2 * limit + 5} s")
    CTL_STDERR.append(p.stderr.decode(errors="replace"))
    with open(os.path.join(args.log, "ctl.log"), "a") as f:
        f.write(f"$ {shlex.join(a)}\n[{p.returncode}] "
                f"{p.stdout.decode(errors='replace')}"
                f"{p.stderr.decode(errors='replace')}\n")
    out = None
    if p.stdout.strip():
        try:
            out = json.loads(p.stdout)
        except ValueError:
            raise Fail(f"bulkhead-ctl {' '.join(cmd)}: not JSON: "
                       f"{p.stdout[:200]!r}")
    if check and p.returncode != 0:
        raise Fail(f"bulkhead-ctl {' '.join(cmd)}: status {p.returncode}: "
                   f"{p.stderr.decode(errors='replace').strip()}")
    return p.returncode, out


def api_state(args, sock):
    return ctl(args, sock, "info")[1].get("state")


def wait_state(args, sock, want, limit, step, vm):
    deadline = time.monotonic() + limit
    while True:
        st = api_state(args, sock)
        if st == want:
            return
        if time.monotonic() > deadline:
            vm.kill()
            raise Fail(f"{step}: state {st}, not {want} after {limit} s")
        vm.pump(0.5)


def socket_dir(logdir):
    """logdir if a unix socket works there (a 9p share may not carry one)
    and its path fits, else a fresh directory in /tmp."""
    import socket
    import tempfile
    probe = os.path.join(logdir, "probe.sock")
    ok = False
    if len(os.path.join(logdir, "api.sock")) < 100:
        try:
            with socket.socket(socket.AF_UNIX) as srv:
                srv.bind(probe)
                srv.listen(1)
                with socket.socket(socket.AF_UNIX) as c:
                    c.settimeout(2)
                    c.connect(probe)
                ok = True
        except OSError:
            ok = False
        try:
            os.unlink(probe)
        except OSError:
            pass
    return logdir if ok else tempfile.mkdtemp(prefix="bh-api-", dir="/tmp")


def kvm_for_group(name):
    """Gives group name read-write access to /dev/kvm if it lacks it."""
    gid = grp.getgrnam(name).gr_gid
    st = os.stat("/dev/kvm")
    if st.st_gid != gid or st.st_mode & 0o060 != 0o060:
        os.chown("/dev/kvm", -1, gid)
        os.chmod("/dev/kvm", (st.st_mode & 0o7777) | 0o060)
    return gid


def check_user(vm, uid, gid):
    """bulkhead (after --user) and its runner and worker, from /proc: uid
    and gid, seccomp, no_new_privs, no capability."""
    pids = {"bulkhead": [vm.proc.pid],
            "bulkhead-vcpu": pids_named("bulkhead-vcpu"),
            "bulkhead-dev-blk": pids_named("bulkhead-dev-blk")}
    for name, found in pids.items():
        if len(found) != 1:
            raise Fail(f"--user: {len(found)} processes named {name}")
        with open(f"/proc/{found[0]}/status") as f:
            st = {k: v.split() for k, _, v in
                  (line.partition(":") for line in f)}
        if st["Uid"] != [str(uid)] * 4 or st["Gid"] != [str(gid)] * 4:
            raise Fail(f"--user: {name} runs as Uid {st['Uid']} Gid "
                       f"{st['Gid']}, not {uid}:{gid}")
        if st["Seccomp"] != ["2"] or st["NoNewPrivs"] != ["1"]:
            raise Fail(f"--user: {name}: Seccomp {st['Seccomp']}, "
                       f"NoNewPrivs {st['NoNewPrivs']}")
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            if int(st[cap][0], 16):
                raise Fail(f"--user: {name}: {cap} {st[cap][0]}")
    # The controller emptied its bounding set itself, before the switch.
    with open(f"/proc/{vm.proc.pid}/status") as f:
        if "CapBnd:\t0000000000000000\n" not in f.read():
            raise Fail("--user: bulkhead's CapBnd is not empty")


def case_api(args, vm_factory):
    sock = os.path.join(socket_dir(args.log), "api.sock")
    img = os.path.join(args.log, "api.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    if os.path.exists(sock):
        os.unlink(sock)
    kvm_gid = kvm_for_group("kvm")
    nobody = pwd.getpwnam("nobody").pw_uid
    # create through the API opens the image again, as nobody.
    try:
        os.chown(img, nobody, kvm_gid)
    except OSError:
        os.chmod(img, 0o666)
    # bulkhead, nobody by then, removes its socket on the way out.
    try:
        os.chown(os.path.dirname(sock), nobody, kvm_gid)
    except OSError:
        pass
    vm = vm_factory(argv(args) + ["--api-socket", f"path={sock}",
                                  "--disk", f"path={img}",
                                  "--user", "nobody:kvm"])
    boot_to_prompt(vm)
    check_user(vm, nobody, kvm_gid)

    ops = ctl(args, sock, "ping")[1].get("operations", [])
    want = {"ping", "info", "pause", "resume", "counters", "reboot",
            "shutdown", "shutdown-vmm", "power-button", "boot"}
    if not want <= set(ops):
        raise Fail(f"ping lists {ops}, lacking {sorted(want - set(ops))}")
    info = ctl(args, sock, "info")[1]
    if info.get("state") != "RUNNING":
        raise Fail(f"info: state {info.get('state')}, not RUNNING")
    if int(info.get("memory_actual_size", 0)) != 512 << 20:
        raise Fail(f"info: memory {info.get('memory_actual_size')}")
    devs = {d.get("id"): d for d in info.get("devices", [])}
    d0 = devs.get("disk0", {})
    if d0.get("pci_address") != "0000:00:01.0" or \
            d0.get("type") != "virtio-blk":
        raise Fail(f"info: devices {info.get('devices')}")

    # Pause: the guest's ticking stops, and starts again on resume; its
    # disk reads stop too (the worker is quiet: read_bytes holds still),
    # and what is typed meanwhile waits, none of it lost.
    def read_bytes():
        c = ctl(args, sock, "counters")[1]
        return int(c.get("devices", {}).get("disk0", {}).get("values", {})
                   .get("read_bytes", 0))

    vm.command("while true; do echo TICK; sleep 0.2; done &",
               re.compile(r"^TICK$", re.M), "the first TICK")
    vm.send("while true; do dd if=/dev/vda of=/dev/null bs=64k count=16 "
            "iflag=direct 2>/dev/null; done &\n", "a disk reader")
    vm.expect(re.compile(r"(^TICK\n.*){3}", re.M | re.S), len(vm.out) - 5,
              COMMAND_S, "TICKs")
    ctl(args, sock, "pause")
    if api_state(args, sock) != "PAUSED":
        raise Fail("info after pause: not PAUSED")
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        vm.pump(0.1)
    start = len(vm.out)
    r0 = read_bytes()
    held = "HELD-" + "x" * 100
    vm.send(f"echo {held}\n", "typing while paused")
    end = time.monotonic() + PAUSE_QUIET_S
    while time.monotonic() < end:
        vm.pump(0.2)
    ticks = vm.out[start:].count("TICK")
    if ticks:
        raise Fail(f"{ticks} TICKs arrived in {PAUSE_QUIET_S} s of pause")
    r1 = read_bytes()
    if r1 != r0:
        raise Fail(f"disk0 read {r1 - r0} bytes while the VM was paused")
    rc, _ = ctl(args, sock, "pause", check=False)
    if rc != 1:
        raise Fail(f"a second pause: status {rc}, not 1 (invalid state)")
    ctl(args, sock, "resume")
    vm.expect(re.compile(r"^TICK$", re.M), start, COMMAND_S,
              "TICKs after resume")
    vm.expect(re.compile("^" + held + "$", re.M), start, COMMAND_S,
              "the line typed while paused, whole, after resume")
    if api_state(args, sock) != "RUNNING":
        raise Fail("info after resume: not RUNNING")
    deadline = time.monotonic() + COMMAND_S
    while read_bytes() <= r1:
        if time.monotonic() > deadline:
            raise Fail("disk0 read nothing after resume")
        vm.pump(0.5)
    vm.send("kill %1 %2\n", "stopping the TICKs and the reader")
    time.sleep(1)
    vm.pump(0.5)

    # Counters after the guest read its disk.
    vm.value("READ", "dd if=/dev/vda of=/dev/null bs=4096 count=64 "
             "iflag=direct 2>/dev/null; echo $?", "a read from the disk")
    c = ctl(args, sock, "counters")[1]
    rb = int(c.get("devices", {}).get("disk0", {}).get("values", {})
             .get("read_bytes", 0))
    if rb <= 0:
        raise Fail(f"counters: disk0 read_bytes {rb}: {c}")

    # Ten clients at once.
    procs = [subprocess.Popen([args.bulkhead_ctl, "--api-socket", sock,
                               "--timeout", str(CTL_S), "ping"],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=run_env())
             for _ in range(10)]
    bad = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=2 * CTL_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            bad.append("timeout")
            continue
        CTL_STDERR.append(err.decode(errors="replace"))
        if p.returncode != 0:
            bad.append(f"{p.returncode}: {err.decode(errors='replace')}")
    if bad:
        raise Fail(f"{len(bad)} of 10 concurrent pings failed: {bad[0]}")

    # Reboot: the guest boots again.
    start = len(vm.out)
    ctl(args, sock, "reboot", limit=BOOT_S)
    # The old shell's prompt has no line end: the marker follows it.
    m = vm.expect(re.compile(MARKER + r"$", re.M), start, BOOT_S,
                  "the init marker after reboot")
    vm.expect(PROMPT_RE, m.end(), PROMPT_S, "the shell prompt after reboot")
    if api_state(args, sock) != "RUNNING":
        raise Fail("info after reboot: not RUNNING")

    # Shutdown: the VM stops, bulkhead stays.
    ctl(args, sock, "shutdown", limit=POWEROFF_S)
    wait_state(args, sock, "SHUTDOWN", 10, "shutdown", vm)
    vm.pump(0.5)
    if vm.status is not None:
        raise Fail(f"bulkhead exited ({vm.status}) after shutdown")

    # delete, then a VM made through the API alone: create, boot, and the
    # ACPI power button, which the guest's acpid answers with poweroff.
    ctl(args, sock, "delete")
    rc, _ = ctl(args, sock, "info", check=False)
    if rc != 1:
        raise Fail(f"info after delete: status {rc}, not 1 (no VM)")
    ctl(args, sock, "create", "--kernel", args.kernel, "--initramfs",
        args.initramfs, "--cmdline", cmdline(args, False), "--memory",
        "size=512M", "--serial", "tty", "--disk", f"path={img}")
    if api_state(args, sock) != "CREATED":
        raise Fail("info after create: not CREATED")
    start = len(vm.out)
    ctl(args, sock, "boot", limit=BOOT_S)
    m = vm.expect(re.compile(MARKER + r"$", re.M), start, BOOT_S,
                  "the init marker of the VM created through the API")
    vm.expect(PROMPT_RE, m.end(), PROMPT_S, "the shell prompt after boot")
    ctl(args, sock, "power-button")
    vm.expect(re.compile(r"guest-init: power button"), m.end(), COMMAND_S,
              "the guest's acpid to see the power button")
    wait_state(args, sock, "SHUTDOWN", POWEROFF_S, "power-button", vm)

    # shutdown-vmm: bulkhead exits 0 and removes its socket.
    ctl(args, sock, "shutdown-vmm")
    st = vm.wait_exit(POWEROFF_S, "bulkhead to exit after shutdown-vmm")
    if st != 0:
        raise Fail(f"bulkhead exited with status {st} after shutdown-vmm")
    if os.path.exists(sock):
        raise Fail(f"{sock} is still there after bulkhead exited")
    os.unlink(img)
    return (f"ping, info, pause ({PAUSE_QUIET_S} s silent, disk quiet, input held) and resume, "
            f"counters (read_bytes {rb}), 10 clients at once, reboot, "
            f"shutdown, delete, create + boot of a second VM, power button "
            f"answered by the guest's poweroff, shutdown-vmm (exit 0 after "
            f"{vm.exit_time:.1f} s)")


def main():
    ap = argparse.ArgumentParser(description="bulkhead boot tests")
    ap.add_argument("case", choices=CASES)
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initramfs", required=True)
    ap.add_argument("--crash-kernel", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--bulkhead-ctl", default=None)
    args = ap.parse_args()
    if args.case == "api" and not args.bulkhead_ctl:
        ap.error("the case api needs --bulkhead-ctl")

    return run_case(args, f"boot_test {args.case}")


def run_case(args, name):
    """Runs case_<args.case> with its VMs; prints and records the result
    in args.log/result.txt. The exit status."""
    for opt, path in (("--bulkhead", args.bulkhead), ("--kernel", args.kernel),
                      ("--initramfs", args.initramfs),
                      ("--crash-kernel", args.crash_kernel)):
        if not os.path.isfile(path):
            print(f"{name}: FAIL: {opt} {path}: no such file", file=sys.stderr)
            return 1
    try:
        os.makedirs(args.log, exist_ok=True)
    except OSError as e:
        print(f"{name}: FAIL: cannot create {args.log}: {e.strerror}",
              file=sys.stderr)
        return 1

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    vms = []

    def vm_factory(a):
        vm = Vmm(a, args.log)
        vms.append(vm)
        print(f"{name}: {shlex.join(a)}", flush=True)
        return vm

    result = os.path.join(args.log, "result.txt")
    try:
        summary = globals()["case_" + args.case](args, vm_factory)
    except Fail as e:
        for vm in vms:
            vm.kill()
            print(vm.tail(), flush=True)
            vm.close()
        reports = sanitizer_reports(vms)
        if reports:
            e = Fail(f"{e}; sanitizer report: {reports[0]}")
        print(f"logs in {args.log}", flush=True)
        with open(result, "w") as f:
            f.write(f"FAIL: {e}\n")
        print(f"{name}: FAIL: {e}", file=sys.stderr)
        return 1
    for vm in vms:
        vm.close()
    reports = sanitizer_reports(vms)
    if reports:
        for vm in vms:
            print(vm.tail(40), flush=True)
        print(f"logs in {args.log}", flush=True)
        why = (f"the case passed, but {len(reports)} sanitizer report "
               f"line(s) are in the stderr of bulkhead or bulkhead-ctl, the "
               f"first: {reports[0]}")
        with open(result, "w") as f:
            f.write(f"FAIL: {why}\n")
        print(f"{name}: FAIL: {why}", file=sys.stderr)
        return 1
    with open(result, "w") as f:
        f.write(f"PASS: {summary}\n")
    print(f"{name}: PASS: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
