#!/usr/bin/python3
"""The controller's own sandbox, from outside: --user (root drops to nobody,
every capability set empty, no_new_privs, its seccomp filter; the API still
answers; refusals), root without --user (no capability left, a warning),
its launcher (sandboxed; its loss ends the controller), its binder
(sandboxed as the same user; its loss does not end the controller), and
--self-test-seccomp: the controller (ptrace, and
io_uring_setup), the vCPU runner and a device worker each make a call their
filter refuses and are killed,
and the controller names the call of a child it started, from the kernel's
audit record (type=1326) in /dev/kmsg.

Run as root (as the test machines and the emulated KVM host do): --user
needs it, and so does /dev/kmsg on most hosts. A run without root fails.

Usage: test_ctl_sandbox.py --bulkhead PATH --ctl PATH --kernel BZIMAGE
"""
import argparse
import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
WAIT_S = 20


def status_fields(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def kmsg_readable():
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


def kmsg_records(fd):
    """The records written to /dev/kmsg since fd was opened (at its end)."""
    out = []
    while True:
        try:
            out.append(os.read(fd, 8192).decode(errors="replace"))
        except BlockingIOError:
            return out
        except BrokenPipeError:
            continue


class Sandbox(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The kernel prints at most 10 audit records in 5 s where no auditd
        # takes them (kauditd_printk_skb: N callbacks suppressed), and the
        # seccomp kills of a test run just before (test_seccomp_signals) can
        # use them up: these tests read the record of each kill, so they
        # start with a fresh window.
        time.sleep(5.5)

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: --user switches from root, and "
                      "/dev/kmsg is root's")
        self.tmp = tempfile.TemporaryDirectory()
        os.chmod(self.tmp.name, 0o755)
        self.nobody = pwd.getpwnam("nobody")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            p.err.close()
        self.tmp.cleanup()

    def start(self, *args, user=None):
        err = open(os.path.join(self.tmp.name, f"stderr{len(self.procs)}"),
                   "w+")
        preexec = None
        if user is not None:
            def preexec():
                os.setgroups([])
                os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
                os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
        # In a sanitizer build, leak checking asked for must not run into
        # the filter at exit (ptrace): the controller keeps it off.
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
        p = subprocess.Popen([ARGS.bulkhead] + list(args),
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err,
                             preexec_fn=preexec, env=env)
        p.err = err
        self.procs.append(p)
        return p

    def stderr(self, p):
        p.err.seek(0)
        return p.err.read()

    def run_to_end(self, *args, user=None):
        p = self.start(*args, user=user)
        try:
            p.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.fail(f"bulkhead {args} still runs after {WAIT_S} s")
        return p.returncode, self.stderr(p)

    def ctl(self, sock, *cmd):
        return subprocess.run([ARGS.ctl, "--api-socket", sock] + list(cmd),
                              capture_output=True, text=True, timeout=WAIT_S)

    def wait_socket(self, p, sock):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if os.path.exists(sock) and self.ctl(sock, "ping").returncode \
                    == 0:
                return
            if p.poll() is not None:
                self.fail(f"bulkhead ended ({p.returncode}):\n"
                          f"{self.stderr(p)}")
            time.sleep(0.05)
        self.fail(f"no API on {sock}:\n{self.stderr(p)}")

    def test_user_nobody(self):
        sock = os.path.join(self.tmp.name, "api.sock")
        p = self.start("--api-socket", f"path={sock}", "--user", "nobody")
        self.wait_socket(p, sock)
        st = status_fields(p.pid)
        uid, gid = str(self.nobody.pw_uid), str(self.nobody.pw_gid)
        self.assertEqual(st["Uid"], [uid] * 4)
        self.assertEqual(st["Gid"], [gid] * 4)
        groups = set(os.getgrouplist("nobody", self.nobody.pw_gid))
        self.assertEqual({int(g) for g in st["Groups"]}, groups)
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[cap][0], 16), 0, cap)
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(st["Seccomp"], ["2"])
        # The binder becomes nobody as well, with no capability.
        self.assert_sandboxed(self.binder_of(p), self.nobody.pw_uid)
        r = self.ctl(sock, "ping")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("running as uid", self.stderr(p))
        r = self.ctl(sock, "shutdown-vmm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(WAIT_S), 0, self.stderr(p))

    def test_limits_without_user(self):
        """Without --user too (here started as nobody): no core files, a
        bound on descriptors, no_new_privs, the filter, and not dumpable:
        the /proc files of a process that is not dumpable belong to root,
        not to the user it runs as."""
        d = os.path.join(self.tmp.name, "nobody")
        os.mkdir(d)
        os.chown(d, self.nobody.pw_uid, self.nobody.pw_gid)
        sock = os.path.join(d, "api.sock")
        p = self.start("--api-socket", f"path={sock}", user=self.nobody)
        self.wait_socket(p, sock)
        st = status_fields(p.pid)
        self.assertEqual(st["Uid"], [str(self.nobody.pw_uid)] * 4)
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(st["Seccomp"], ["2"])
        limits = {}
        with open(f"/proc/{p.pid}/limits") as f:
            for line in f:
                m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
                if m:
                    limits[m.group(1)] = (m.group(2), m.group(3))
        self.assertEqual(limits["Max core file size"], ("0", "0"))
        soft, hard = limits["Max open files"]
        self.assertEqual(soft, hard)
        self.assertLessEqual(int(hard), 4096 + 64)
        self.assertEqual(os.stat(f"/proc/{p.pid}/environ").st_uid, 0)
        r = self.ctl(sock, "shutdown-vmm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(WAIT_S), 0, self.stderr(p))

    def child_of(self, p, comm):
        """The controller's one child named comm (/proc/PID/comm): while no
        VM runs its children are the launcher ("bulkhead", a fork of it)
        and the binder ("bulkhead-binder")."""
        kids = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if status_fields(d).get("PPid") == [str(p.pid)]:
                        with open(f"/proc/{d}/comm") as f:
                            kids[int(d)] = f.read().strip()
                except OSError:
                    pass
        self.assertEqual(sorted(kids.values()),
                         ["bulkhead", "bulkhead-binder"], kids)
        return next(pid for pid, c in kids.items() if c == comm)

    def launcher_of(self, p):
        return self.child_of(p, "bulkhead")

    def binder_of(self, p):
        return self.child_of(p, "bulkhead-binder")

    def assert_sandboxed(self, pid, uid):
        st = status_fields(pid)
        self.assertEqual(st["Uid"], [str(uid)] * 4)
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[cap][0], 16), 0, cap)
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(st["Seccomp"], ["2"])

    def test_root_without_user(self):
        """Root without --user: once started, the controller holds no
        capability (it parses API, runner and worker input) and says that
        root's files stay open to it. Its launcher is sandboxed too."""
        sock = os.path.join(self.tmp.name, "root.sock")
        p = self.start("--api-socket", f"path={sock}")
        self.wait_socket(p, sock)
        st = status_fields(p.pid)
        self.assertEqual(st["Uid"], ["0"] * 4)
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[cap][0], 16), 0, cap)
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(st["Seccomp"], ["2"])
        self.assertIn("running as root without --user", self.stderr(p))
        lst = status_fields(self.launcher_of(p))
        self.assertEqual(lst["NoNewPrivs"], ["1"])
        self.assertEqual(lst["Seccomp"], ["2"])
        # The binder keeps root's uid, as the controller does, and no
        # capability.
        self.assert_sandboxed(self.binder_of(p), 0)
        r = self.ctl(sock, "ping")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl(sock, "shutdown-vmm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(WAIT_S), 0, self.stderr(p))

    def test_launcher_lost(self):
        """A launcher that dies leaves a controller that can start no
        child: it says so and ends with status 1."""
        sock = os.path.join(self.tmp.name, "lost.sock")
        p = self.start("--api-socket", f"path={sock}", "--user", "nobody")
        self.wait_socket(p, sock)
        launcher = self.launcher_of(p)
        self.assertEqual(status_fields(launcher)["Uid"],
                         [str(self.nobody.pw_uid)] * 4)
        os.kill(launcher, signal.SIGKILL)
        self.assertEqual(p.wait(WAIT_S), 1, self.stderr(p))
        self.assertIn("launcher killed by signal 9 (Killed): no process "
                      "can start any more", self.stderr(p))

    def test_binder_lost(self):
        """A binder that dies costs only the listeners it would make: the
        controller serves on and ends normally; and a binder never outlives
        the controller."""
        sock = os.path.join(self.tmp.name, "binder.sock")
        sock2 = os.path.join(self.tmp.name, "binder2.sock")
        p = self.start("--api-socket", f"path={sock}", "--user", "nobody")
        self.wait_socket(p, sock)
        binder = self.binder_of(p)
        os.kill(binder, signal.SIGKILL)
        r = self.ctl(sock, "ping")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl(sock, "shutdown-vmm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(WAIT_S), 0, self.stderr(p))

        p = self.start("--api-socket", f"path={sock2}", "--user", "nobody")
        self.wait_socket(p, sock2)
        binder = self.binder_of(p)
        p.kill()
        p.wait(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while os.path.exists(f"/proc/{binder}") and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(f"/proc/{binder}"),
                         "the binder outlived the controller")

    def test_user_refused(self):
        rc, err = self.run_to_end("--api-socket", "path=/nonexistent/s",
                                  "--user", "no-such-user-bh")
        self.assertEqual(rc, 2, err)
        self.assertIn("--user: no user 'no-such-user-bh'", err)
        rc, err = self.run_to_end("--api-socket", "path=/nonexistent/s",
                                  "--user", "nobody:no-such-group-bh")
        self.assertEqual(rc, 2, err)
        self.assertIn("--user: no group 'no-such-group-bh'", err)
        # Not root: refused, unless it names the user it already is.
        rc, err = self.run_to_end("--api-socket", "path=/nonexistent/s",
                                  "--user", "root", user=self.nobody)
        self.assertEqual(rc, 2, err)
        self.assertIn("--user: only root can become another user", err)
        sock = os.path.join(self.tmp.name, "own.sock")
        os.chown(self.tmp.name, self.nobody.pw_uid, self.nobody.pw_gid)
        p = self.start("--api-socket", f"path={sock}", "--user", "nobody",
                       user=self.nobody)
        self.wait_socket(p, sock)
        self.assertEqual(status_fields(p.pid)["Seccomp"], ["2"])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(WAIT_S), 128 + signal.SIGTERM,
                         self.stderr(p))

    def controller_self_test(self, which, nr):
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.lseek(fd, 0, os.SEEK_END)
            p = self.start("--self-test-seccomp", which)
            p.wait(WAIT_S)
            self.assertEqual(p.returncode, -signal.SIGSYS, self.stderr(p))
            # The kernel's record names the call; it may come a moment
            # after the process died.
            pattern = re.compile(r"type=1326 .*\bpid=%d\b.*\bsig=31\b.*"
                                 r"\bsyscall=%d\b" % (p.pid, nr))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if any(pattern.search(r) for r in kmsg_records(fd)):
                    break
                time.sleep(0.05)
            else:
                self.fail(f"no audit record for pid {p.pid} in /dev/kmsg")
        finally:
            os.close(fd)

    def test_self_test_controller(self):
        self.controller_self_test("controller", 101)  # ptrace

    def test_self_test_io_uring(self):
        """io_uring's operations pass no seccomp filter (an AF_INET socket,
        connect and send went through it where socket() was refused): the
        controller must be killed for io_uring_setup itself."""
        self.controller_self_test("io-uring", 425)  # io_uring_setup

    def child_self_test(self, which, name, *extra):
        img = os.path.join(self.tmp.name, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        rc, err = self.run_to_end("--kernel", ARGS.kernel, "--serial",
                                  "null", "--disk", f"path={img}",
                                  "--self-test-seccomp", which, *extra)
        self.assertEqual(rc, 1, err)
        named = f"{name} killed by its seccomp filter for syscall openat " \
                "(257)"
        if kmsg_readable():
            self.assertIn(named, err)
        else:
            self.assertRegex(err, re.escape(name) + r" killed by its "
                             r"seccomp filter \(SIGSYS\); the kernel log's "
                             r"audit record type=1326 for pid \d+ names")
        return err

    def test_self_test_vcpu(self):
        self.child_self_test("vcpu", "vCPU runner")

    def test_self_test_worker(self):
        self.child_self_test("worker", "worker disk0 (blk)")

    def test_self_test_vcpu_as_nobody(self):
        # /dev/kmsg was opened as root, before the switch. The worker,
        # cloned into a user namespace by a controller that is no longer
        # dumpable, still maps its ids there.
        err = self.child_self_test("vcpu", "vCPU runner", "--user", "nobody")
        self.assertNotIn("cannot write its", err)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--kernel", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
