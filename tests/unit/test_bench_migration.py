#!/usr/bin/python3
"""The KVM benchmark's migration part (bench/kvm/kvm.py --only migration),
all that runs without KVM: the guest's commands (the dirtier's start and
verdict with bh-guest-tool built here, the ticker and its end), run here by
busybox; the host's timing of the ticker's lines across two consoles, by a
thread of its own while the caller blocks; send-migration's answer read
into figures; bulkhead-ctl in the background, answered and hung; QEMU's
destination polled until it left inmigrate; the plan (Bulkhead and QEMU
-M pc only, one part per VMM with every round); the merge of the rounds
into medians, ratios and the rounds missing with their reason; its table;
and the options of kvm.py and bench/run that name it.

Usage: test_bench_migration.py SOURCE_DIR
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TOP = None
kvm = None
snap_test = None


def busybox_sh(cmd, timeout=60):
    return subprocess.run(["busybox", "sh", "-c", cmd], capture_output=True,
                          text=True, timeout=timeout)


class GuestCommands(unittest.TestCase):
    """The commands the guest's busybox shell runs, with the paths moved
    into a directory of the test's."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bh-bench-mig-")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def here(self, cmd):
        return (cmd.replace(kvm.MIG_STOP, os.path.join(self.d, "stop"))
                .replace("/tmp/dirty.out", os.path.join(self.d, "dirty.out")))

    def test_dirtier_start_and_verdict(self):
        exe = os.path.join(self.d, "bh-guest-tool")
        p = subprocess.run([os.environ.get("CC", "cc"), "-std=gnu11", "-O2",
                            "-o", exe, kvm.GUEST_TOOL_SRC],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        start = self.here(kvm.MIG_DIRTY_CMD).replace("bh-guest-tool", exe)
        self.assertIn(f"dirty {kvm.MIG_DIRTY_MB} ", kvm.MIG_DIRTY_CMD)
        # The shell in the background as the guest's is: the dirtier
        # runs on after the command line that started it.
        script = (f"{start}\n"
                  f"echo UP=$({self.here(kvm.MIG_DIRTY_UP)})\n"
                  f"sleep 0.3; touch {self.d}/stop\n"
                  f"echo V=$({self.here(kvm.MIG_DIRTY_VERDICT)})\n"
                  f"wait\n")
        p = busybox_sh(script, timeout=120)
        self.assertIn("UP=DIRTY_RUNNING\n", p.stdout, p.stderr)
        self.assertRegex(p.stdout, r"V=DIRTY_OK \d+ generations of 16384 "
                         r"pages\n")

    def test_verdict_bad_and_bounded_wait(self):
        with open(os.path.join(self.d, "dirty.out"), "w") as f:
            f.write("DIRTY_RUNNING\nDIRTY_BAD page 7 holds generation 3, "
                    "the last was 4\n")
        p = busybox_sh("echo V=$(%s)" % self.here(kvm.MIG_DIRTY_VERDICT))
        self.assertIn("V=DIRTY_BAD page 7", p.stdout)
        # The start's wait is for any DIRTY_ line; a tool that failed
        # at once has only its error, which the wait's bound lets
        # through (here cut short: the guest's is 600 x 0.1 s).
        with open(os.path.join(self.d, "dirty.out"), "w") as f:
            f.write("mmap: Cannot allocate memory\n")
        cmd = self.here(kvm.MIG_DIRTY_UP).replace("600", "3")
        p = busybox_sh("echo UP=$(%s)" % cmd)
        self.assertIn("UP=mmap: Cannot allocate memory", p.stdout)

    def test_ticker(self):
        cmd = self.here(kvm.MIG_TICK_CMD)
        p = busybox_sh(f"{cmd}\nsleep 0.6; touch {self.d}/stop; wait",
                       timeout=30)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[-1], "TICKEND", p.stdout + p.stderr)
        ticks = [int(m.group(1)) for m in
                 kvm.MIG_TICK_RE.finditer(p.stdout)]
        self.assertGreaterEqual(len(ticks), 4, p.stdout)
        self.assertEqual(ticks, list(range(1, len(ticks) + 1)))
        self.assertRegex(p.stdout + "", kvm.MIG_TICKEND_RE)
        # The typed command's echo and half a line are no tick.
        self.assertNotRegex("# " + kvm.MIG_TICK_CMD + "\n", kvm.MIG_TICK_RE)
        self.assertNotRegex("TICK12", kvm.MIG_TICK_RE)
        self.assertNotRegex("# " + kvm.MIG_TICK_CMD + "\n",
                            kvm.MIG_TICKEND_RE)


class Console:
    """What Ticks uses of a VMM: a console on a pipe, read as
    boot_test.Vmm reads it."""

    def __init__(self):
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        self.fds = {self.rfd: "out"}
        self.out = ""
        self.status = None
        self.err = ""

    def write(self, text):
        os.write(self.wfd, text.encode())

    def pump(self, wait):
        import select
        if not self.fds:
            return
        r, _, _ = select.select(list(self.fds), [], [], wait)
        if r:
            try:
                data = os.read(self.rfd, 65536)
            except BlockingIOError:
                return
            if not data:
                del self.fds[self.rfd]
                return
            self.out += data.decode()

    def exited(self):
        return self.status is not None

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Ticks(unittest.TestCase):
    def test_gaps_from_scans(self):
        a, b = Console(), Console()
        try:
            a.out = "TICK1\n"  # before: known, not timed
            t = kvm.Ticks([a, b])
            t.scan(0.0)
            a.out += "TICK2\nTICK3\nTIC"
            t.scan(1.0)
            a.out += "K4\n"
            t.scan(1.05)
            # The destination repeats a line the source sent, then goes on.
            b.out += "TICK4\nTICK5\n"
            t.scan(1.5)
            b.out += "TICK6\n"
            t.scan(1.55)
            f = t.figures()
            self.assertEqual(f["ticks"], 5)
            self.assertEqual(f["gap_ms"], 450.0)
            self.assertEqual(f["tick_ms"], 50.0)
            self.assertEqual((t.count(a), t.count(b)), (3, 3))
        finally:
            a.close()
            b.close()

    def test_no_ticks_no_gap(self):
        self.assertEqual(kvm.Ticks([]).figures(), {"ticks": 0})

    def test_thread_times_while_caller_blocks(self):
        # The source ticks every 20 ms, stops; 300 ms later the
        # destination goes on. The caller does not read the consoles (it
        # is in a blocking call until the destination runs): the thread
        # does, and the gap is the real one, not the caller's block.
        a, b = Console(), Console()
        stop = threading.Event()

        def feed():
            for i in range(1, 11):
                a.write(f"TICK{i}\n")
                time.sleep(0.02)
            time.sleep(0.3)
            i = 11
            while not stop.is_set():
                b.write(f"TICK{i}\n")
                i += 1
                time.sleep(0.02)
        w = threading.Thread(target=feed)
        try:
            with kvm.Ticks([a, b]) as t:
                w.start()
                time.sleep(0.6)
                t.settle(b, "the test")
            stop.set()
            w.join(5)
            f = t.figures()
            self.assertGreater(f["ticks"], 10 + kvm.MIG_SETTLE_TICKS)
            self.assertEqual(t.count(a), 10)
            self.assertGreater(f["gap_ms"], 290)
            self.assertLess(f["gap_ms"], 450)
            self.assertLess(f["tick_ms"], 60)
        finally:
            stop.set()
            a.close()
            b.close()

    def test_settle_bounded_and_named(self):
        a, b = Console(), Console()
        try:
            old = kvm.boot_test.COMMAND_S
            kvm.boot_test.COMMAND_S = 0.5
            with self.assertRaisesRegex(kvm.boot_test.Fail,
                                        "0 ticker line.s. on the "
                                        "destination's console"):
                with kvm.Ticks([a, b]) as t:
                    t.settle(b, "here")
            b.status = 1
            with self.assertRaisesRegex(kvm.boot_test.Fail,
                                        "here: the destination exited"):
                with kvm.Ticks([a, b]) as t:
                    t.settle(b, "here")
        finally:
            kvm.boot_test.COMMAND_S = old
            a.close()
            b.close()


class Status(unittest.TestCase):
    def test_figures(self):
        out = {"status": {"role": "send", "phase": "done", "pass": 2,
                          "pages_sent": "90000", "bytes_sent": "370000000",
                          "downtime_ms": "41", "elapsed_ms": "9000",
                          "downtime_limit_ms": 300}}
        r = kvm.bulkhead_mig_status(out)
        self.assertEqual((r["passes"], r["bytes_sent"], r["downtime_ms"],
                          r["pages_dirty"], r["local"]),
                         (3, 370000000, 41, 0, False))
        # As bulkhead-ctl --json prints it: the MigrationStatus alone,
        # numbers as numbers. local=on: no pass, no pages.
        r = kvm.bulkhead_mig_status({
            "role": "send", "phase": "done", "local": True, "pass": 0,
            "pages_sent": 0, "downtime_ms": 120, "bytes_sent": 9000})
        self.assertEqual((r["passes"], r["pages_sent"], r["local"],
                          r["downtime_ms"], r["bytes_sent"]),
                         (1, 0, True, 120, 9000))
        # Fields at zero left out.
        r = kvm.bulkhead_mig_status({"phase": "done"})
        self.assertEqual((r["passes"], r["downtime_ms"]), (1, 0))

    def test_refused(self):
        with self.assertRaisesRegex(kvm.boot_test.Fail, "not a "
                                    "MigrationStatus of phase done"):
            kvm.bulkhead_mig_status({"status": {"phase": "failed"}})
        with self.assertRaisesRegex(kvm.boot_test.Fail, "not a "
                                    "MigrationStatus"):
            kvm.bulkhead_mig_status(None)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "send-migration's bytes_sent is 'x'"):
            kvm.bulkhead_mig_status({"status": {"phase": "done",
                                                "bytes_sent": "x"}})


class CtlCall(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bh-bench-ctl-")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def ctl(self, body):
        exe = os.path.join(self.d, "bulkhead-ctl")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(exe, 0o755)
        return argparse.Namespace(bulkhead_ctl=exe, log=self.d)

    def test_answer_and_argv(self):
        ctl = self.ctl('echo "$*" >&2; echo \'{"status": {"phase": '
                       '"done"}}\'\n')
        c = kvm.CtlCall(ctl, "/s.sock", "send-migration", "unix:/m,local=on",
                        limit=7)
        st, out, err = c.result(10)
        self.assertEqual(st, 0)
        self.assertEqual(out, {"status": {"phase": "done"}})
        self.assertEqual(err, "--api-socket /s.sock --json --timeout 7 "
                         "send-migration unix:/m,local=on")

    def test_failure_and_garbage(self):
        c = kvm.CtlCall(self.ctl("echo 'HOST_ERROR: did not converge' >&2;"
                                 " exit 1\n"), "/s", "send-migration", "u",
                        limit=5)
        st, out, err = c.result(10)
        self.assertEqual((st, out), (1, None))
        self.assertIn("did not converge", err)
        c = kvm.CtlCall(self.ctl("echo oops\n"), "/s", "info", limit=5)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "bulkhead-ctl info: not JSON"):
            c.result(10)

    def test_hang_bounded(self):
        c = kvm.CtlCall(self.ctl("exec sleep 30\n"), "/s",
                        "receive-migration", "unix:/m", limit=5)
        self.assertFalse(c.done())
        t = time.monotonic()
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "receive-migration unix:/m: no answer "
                                    "in 0.3 s; killed"):
            c.result(0.3)
        self.assertLess(time.monotonic() - t, 5)
        self.assertTrue(c.done())


class QemuIncoming(unittest.TestCase):
    def test_waits_until_out_of_inmigrate(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "qmp.sock")
            srv = snap_test.FakeQemu(path, {"query-status": [
                [{"return": {"status": "inmigrate"}}],
                [{"return": {"status": "inmigrate"}}],
                [{"return": {"status": "running"}}]]})
            srv.start()
            vm = snap_test.FakeVm()
            q = kvm.Qmp(path, vm, 10)
            waits = []
            self.assertEqual(kvm.qemu_wait_running(q, vm, 10, waits.append),
                             "running")
            self.assertEqual(waits, [kvm.SNAP_POLL_S] * 2)
            q.close()

    def test_gone_and_stuck_named(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "qmp.sock")
            snap_test.FakeQemu(path, {"query-status": [
                [{"return": {"status": "inmigrate"}}]] * 100}).start()
            vm = snap_test.FakeVm()
            q = kvm.Qmp(path, vm, 10)
            with self.assertRaisesRegex(kvm.boot_test.Fail,
                                        "still inmigrate 0.2 s after"):
                kvm.qemu_wait_running(q, vm, 0.2, time.sleep)
            vm.status = 1
            with self.assertRaisesRegex(kvm.boot_test.Fail,
                                        "QEMU -incoming exited with "
                                        "status 1"):
                kvm.qemu_wait_running(q, vm, 10, time.sleep)
            q.close()


def args(**kw):
    a = argparse.Namespace(only="migration", variants="default", repeat=3,
                           quick=False, lkvm="", kernel="/boot/vmlinuz")
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def mig(total, downtime, gap, sent_mib, passes, **kw):
    r = {"total_s": total, "host_s": total, "downtime_ms": downtime,
         "gap_ms": gap, "tick_ms": 60.0, "ticks": 80,
         "bytes_sent": sent_mib << 20, "passes": passes}
    r.update(kw)
    return r


def round_(i, copy, local=None, **kw):
    r = {"round": i, "fill_s": 2.0, "sha256": "ab" * 32,
         "sha256_after": "ab" * 32, "same": True, "dirty_ok": True,
         "dirty": "DIRTY_OK 90 generations of 16384 pages", "copy": copy}
    if local:
        r["local"] = local
    r.update(kw)
    return r


def part(name, vmm, want, rounds):
    return {"name": name, "status": 0, "seconds": 60.0,
            "wants": [("migration", vmm, want)],
            "data": {"migration": {vmm: {
                "memory_mb": 1024, "fill_mb": 256, "dirty_mb": 64,
                "downtime_limit_ms": 300, "tick_s": 0.05, "dir": "/tmp",
                "rounds": rounds}}, "done": True}}


class Plan(unittest.TestCase):
    def test_parts(self):
        vmms = [v for v in kvm.ALL_VMMS if v.name != "kvmtool"]
        parts = kvm.plan(args(repeat=4), vmms)
        self.assertEqual([p["name"] for p in parts],
                         ["migration-bulkhead", "migration-pc"])
        self.assertEqual(parts[0]["args"],
                         ["--only", "migration", "--vmms", "bulkhead"])
        self.assertEqual(parts[1]["wants"], [("migration", "pc", 4)])
        # Every round's worst case fits: three VMM starts, the guest's
        # fill and hashes, two migrations.
        self.assertGreater(parts[0]["timeout"], 4 * (
            3 * kvm.BOOT_S + 3 * kvm.SNAP_IO_S + 2 * kvm.MIG_S))
        parts = kvm.plan(args(only="snapshot,migration", repeat=1), vmms)
        self.assertEqual([p["name"] for p in parts],
                         ["snapshot-bulkhead", "snapshot-pc",
                          "migration-bulkhead", "migration-pc"])


class Merge(unittest.TestCase):
    def merged(self):
        vmms = [v for v in kvm.ALL_VMMS if v.name in ("bulkhead", "pc")]
        bh = part("migration-bulkhead", "bulkhead", 3, [
            round_(1, mig(8.0, 40, 120.0, 330, 3),
                   mig(1.0, 200, 400.0, 0, 1)),
            round_(2, mig(10.0, 60, 140.0, 350, 4),
                   mig(1.2, 220, 380.0, 0, 1)),
            round_(3, mig(9.0, 50, 130.0, 340, 3),
                   error="local: send-migration unix:/tmp/x,local=on: "
                   "status 1: HOST_ERROR: no memfd")])
        pc = part("migration-pc", "pc", 3, [
            round_(1, mig(20.0, 100, 300.0, 400, 5,
                          dest_run_state="running")),
            round_(2, mig(24.0, 120, 360.0, 420, 6,
                          dest_run_state="paused"))])
        pc["why"] = ("the emulated host did not finish within its 1000 s "
                     "(wedged or too slow) and was killed")
        pc["data"]["done"] = False
        return kvm.merge(args(), vmms, [bh, pc])

    def test_figures_ratios_missing(self):
        sec = self.merged()
        bh = sec["vmms"]["bulkhead"]["migration"]
        pc = sec["vmms"]["pc"]["migration"]
        self.assertEqual((bh["errors"], bh["checked"]), (1, 2))
        self.assertEqual((pc["errors"], pc["checked"]), (0, 2))
        c = bh["figures"]["copy"]
        self.assertEqual(c["total_s"]["values"], [8.0, 10.0])
        self.assertEqual(c["sent_mib"]["median"], 340)
        self.assertEqual(c["passes"]["max"], 4)
        loc = bh["figures"]["local"]
        self.assertEqual(loc["downtime_ms"]["median"], 210)
        self.assertIsNone(loc["sent_mib"])
        self.assertIsNone(loc["passes"])
        self.assertEqual(set(pc["figures"]), {"copy"})
        self.assertEqual(pc["figures"]["copy"]["gap_ms"]["median"], 330)
        r = sec["migration"]["ratios_bulkhead_to_pc"]
        self.assertAlmostEqual(r["total_s"], 9.0 / 22.0)
        self.assertAlmostEqual(r["downtime_ms"], 50 / 110)
        self.assertAlmostEqual(r["gap_ms"], 130 / 330)
        self.assertEqual(sec["migration"]["dirty_mb"], 64)
        self.assertIn("send-migration unix:PATH,downtime=300",
                      sec["migration"]["how"])
        missing = {m["what"]: m["why"] for m in sec["missing"]}
        self.assertIn("HOST_ERROR: no memfd",
                      missing["migration bulkhead round 3"])
        self.assertIn("did not finish", missing["migration pc round 3"])
        self.assertEqual(len(missing), 2)

    def test_table(self):
        sec = json.loads(json.dumps(self.merged()))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            kvm.print_tables(sec)
        text = out.getvalue()
        self.assertIn("Live migration, 1 GiB guest dirtying 64 MiB", text)
        lines = text.splitlines()
        hdr = [ln for ln in lines if "Bulkhead local=on" in ln]
        self.assertEqual(len(hdr), 1, text)
        self.assertRegex(hdr[0], r"Bulkhead +Bulkhead local=on +QEMU -M pc "
                         r"+BH/QEMU")

        def row(label):
            got = [ln for ln in lines if ln.startswith(label)]
            self.assertEqual(len(got), 1, text)
            return got[0]
        r = row("total time, s")
        self.assertIn("9.00 [8.00-10.00]", r)
        self.assertIn("1.10 [1.00-1.20]", r)
        self.assertIn("22.00 [20.00-24.00]", r)
        self.assertIn("0.41", r)
        r = row("downtime (VMM's figure), ms")
        self.assertIn("50 [40-60]", r)
        self.assertIn("210 [200-220]", r)
        r = row("bytes sent, MiB")
        self.assertIn("340.0 [330.0-350.0]", r)
        self.assertIn(" - ", r)  # local=on: no RAM copied
        r = row("passes (QEMU: dirty syncs)")
        self.assertIn("4 [3-4]", r)
        self.assertIn("6 [5-6]", r)
        self.assertIn("guest-observed gap, ms", text)
        self.assertIn("Bulkhead round 3 failed: local: send-migration", text)
        self.assertIn("QEMU -M pc round 2: the destination was paused after "
                      "the migration; cont was sent", text)
        self.assertIn("MISSING: migration pc round 3", text)
        self.assertIn("QEMU -M pc: after the migration the dirtier's pages "
                      "held their last generation and the fill its sha256 "
                      "in 2 of 2", text)
        # A run without the part says so.
        sec = kvm.merge(args(only="disk"), kvm.ALL_VMMS[:1], [])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            kvm.print_tables(sec)
        self.assertIn("Live migration: not measured in this run",
                      out.getvalue())


class Options(unittest.TestCase):
    def run_kvm(self, *argv):
        return subprocess.run([sys.executable, os.path.join(
            TOP, "bench", "kvm", "kvm.py")] + list(argv),
            capture_output=True, text=True, timeout=60)

    def test_unknown_part_lists_migration(self):
        p = self.run_kvm("--only", "migrate", "--build-dir", "/x",
                         "--out", "/x/y")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown part 'migrate' (boot, startup, disk, net, "
                      "snapshot, migration)", p.stderr)

    def test_needs_bulkhead_ctl(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "bin"))
            fake = os.path.join(d, "bin", "bulkhead")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(fake, 0o755)
            p = self.run_kvm("--only", "migration", "--build-dir", d,
                             "--out", os.path.join(d, "out.json"))
            self.assertEqual(p.returncode, 1)
            self.assertIn(f"no {d}/bin/bulkhead-ctl, which the migration "
                          f"part needs", p.stderr)

    def test_bench_run_help(self):
        p = subprocess.run([os.path.join(TOP, "bench", "run"), "--help"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertIn("net, snapshot, migration (default boot, startup and",
                      p.stdout)
        self.assertIn("(--only migration) live migration", p.stdout)
        self.assertIn("snapshot and\n                  migration measure "
                      "bulkhead and pc only", p.stdout)


def main():
    global TOP, kvm, snap_test
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    TOP = os.path.abspath(sys.argv[1])
    sys.path.insert(0, os.path.join(TOP, "bench", "kvm"))
    sys.path.insert(0, os.path.join(TOP, "tests", "unit"))
    import kvm as module
    import test_bench_snapshot
    kvm = module
    snap_test = test_bench_snapshot
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
