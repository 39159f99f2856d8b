#!/usr/bin/python3
"""The KVM benchmark's snapshot part (bench/kvm/kvm.py --only snapshot),
all that runs without KVM: the guest's fill command, run here by busybox,
and the hash expected of it; its plan (Bulkhead and QEMU -M pc only, one
part per VMM with every round), its QMP client against a stand-in QEMU
(the greeting, events between answers, errors named, a migration polled to
its end or its failure, an incoming one polled until it is in), the sizes
it reports for a sparse snapshot (st_blocks and st_size), the merge of the
parts' rounds into medians, ratios and the rounds missing with their
reason, its table, and the options of kvm.py and bench/run that name it.

Usage: test_bench_snapshot.py SOURCE_DIR
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TOP = None
kvm = None


class FakeVm:
    """What the QMP helpers use of a running VMM: its console pump, its
    exit and its stderr."""

    def __init__(self, status=None):
        self.status = status
        self.err = "qemu-system-x86_64: a stand-in's last words\n"

    def pump(self, wait):
        time.sleep(wait)

    def exited(self):
        return self.status is not None


class FakeQemu(threading.Thread):
    """A QMP server on a unix socket: the greeting, then for each command
    the next of its scripted answers (each a list of messages, so that an
    event can come before the answer); a command without a script is
    answered {"return": {}}. It binds after `delay` seconds. "close" as an
    answer hangs up."""

    def __init__(self, path, script, delay=0.0):
        super().__init__(daemon=True)
        self.path, self.script, self.delay = path, script, delay
        self.seen = []
        self.error = None

    def run(self):
        try:
            time.sleep(self.delay)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(self.path)
            srv.listen(1)
            c, _ = srv.accept()
            srv.close()
            with c, c.makefile("rb") as f:
                self.send(c, [{"QMP": {"version": {}, "capabilities": []}}])
                for line in f:
                    req = json.loads(line)
                    self.seen.append(req)
                    todo = self.script.get(req["execute"])
                    answer = todo.pop(0) if todo else [{"return": {}}]
                    if answer == "close":
                        return
                    self.send(c, answer)
        except Exception as e:
            self.error = e

    @staticmethod
    def send(c, msgs):
        c.sendall(b"".join(json.dumps(m).encode() + b"\r\n" for m in msgs))


class Qmp(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bh-bench-qmp-")
        self.path = os.path.join(self.tmp.name, "qmp.sock")

    def tearDown(self):
        self.tmp.cleanup()

    def qemu(self, script, delay=0.0):
        srv = FakeQemu(self.path, script, delay)
        srv.start()
        return srv

    def test_connects_late_skips_events(self):
        srv = self.qemu({"stop": [[
            {"event": "STOP", "timestamp": {}}, {"return": {}}]],
            "query-status": [[{"return": {"status": "paused"}}]]},
            delay=0.3)
        q = kvm.Qmp(self.path, FakeVm(), 10)
        self.assertEqual(q.cmd("stop"), {})
        self.assertEqual(q.cmd("query-status"), {"status": "paused"})
        self.assertEqual([e["event"] for e in q.events], ["STOP"])
        q.close()
        srv.join(5)
        self.assertIsNone(srv.error)
        self.assertEqual([r["execute"] for r in srv.seen],
                         ["qmp_capabilities", "stop", "query-status"])

    def test_error_named(self):
        self.qemu({"migrate": [[{"error": {
            "class": "GenericError", "desc": "no such migration uri"}}]]})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    r"QMP migrate: GenericError: no such "
                                    r"migration uri"):
            q.cmd("migrate", {"uri": "bogus:"})
        q.close()

    def test_hang_up_named(self):
        self.qemu({"cont": ["close"]})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "QMP cont: QEMU closed the connection"):
            q.cmd("cont")
        q.close()

    def test_qemu_gone_before_socket(self):
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "QEMU exited with status 1 before its "
                                    "QMP socket answered: .*last words"):
            kvm.Qmp(self.path, FakeVm(status=1), 10)

    def test_migration_polled_to_completed(self):
        self.qemu({"query-migrate": [
            [{"return": {"status": "setup"}}],
            [{"return": {"status": "active"}}],
            [{"event": "MIGRATION", "data": {}},
             {"return": {"status": "completed", "total-time": 812,
                         "ram": {"transferred": 300 << 20}}}]]})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        info = kvm.qemu_wait_migrated(q, FakeVm(), 10, "the migration")
        self.assertEqual(info["total-time"], 812)
        q.close()

    def test_migration_failure_named(self):
        self.qemu({"query-migrate": [
            [{"return": {"status": "active"}}],
            [{"return": {"status": "failed",
                         "error-desc": "Unable to write to command"}}]]})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "the migration failed: Unable to write "
                                    "to command"):
            kvm.qemu_wait_migrated(q, FakeVm(), 10, "to a file")
        q.close()

    def test_migration_stuck_bounded(self):
        self.qemu({"query-migrate": [[{"return": {"status": "active"}}]] *
                   100})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "still active after 0.3 s"):
            kvm.qemu_wait_migrated(q, FakeVm(), 0.3, "to a file")
        q.close()

    def test_incoming_waits_for_run_state(self):
        # QEMU sets the run state first, then the migration's status.
        srv = self.qemu({
            "query-status": [[{"return": {"status": "inmigrate"}}],
                             [{"return": {"status": "inmigrate"}}],
                             [{"return": {"status": "paused"}}],
                             [{"return": {"status": "paused"}}]],
            "query-migrate": [[{"return": {"status": "active"}}],
                              [{"return": {"status": "completed"}}]]})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        run, info = kvm.qemu_wait_incoming(q, FakeVm(), 10)
        self.assertEqual((run, info["status"]), ("paused", "completed"))
        q.close()
        srv.join(5)
        self.assertEqual([r["execute"] for r in srv.seen][1:],
                         ["query-status"] * 3 + ["query-migrate",
                                                 "query-status",
                                                 "query-migrate"])

    def test_incoming_failure_named(self):
        self.qemu({
            "query-status": [[{"return": {"status": "paused"}}]],
            "query-migrate": [[{"return": {
                "status": "failed", "error-desc": "load of state failed"}}]]})
        q = kvm.Qmp(self.path, FakeVm(), 10)
        with self.assertRaisesRegex(kvm.boot_test.Fail,
                                    "incoming migration failed: load of "
                                    "state failed"):
            kvm.qemu_wait_incoming(q, FakeVm(), 10)
        q.close()


class Fill(unittest.TestCase):
    def test_command_and_hash(self):
        # What the guest's shell runs, here: the file it writes and the
        # hash the benchmark expects of it.
        n = kvm.SNAP_FILL_MB << 20
        if not shutil.which("busybox"):
            self.fail("no busybox (Debian busybox-static, as "
                      "scripts/install-deps installs): the guest's shell "
                      "is busybox's, and so is this test's")
        with tempfile.TemporaryDirectory() as d:
            cmd = kvm.SNAP_FILL_CMD % n
            cmd = cmd.replace("/tmp/fill", os.path.join(d, "fill"))
            p = subprocess.run(["busybox", "sh", "-c", cmd],
                               capture_output=True, text=True, timeout=120)
            m = kvm.SNAP_FILL_RE.search(p.stdout)
            self.assertIsNotNone(m, p.stdout + p.stderr)
            self.assertEqual((m.group(1), int(m.group(2))), ("0", n))
            with open(os.path.join(d, "fill"), "rb") as f:
                head = f.read(1024)
                h = hashlib.sha256(head)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        self.assertEqual(head, b"0" * 1023 + b"\n")
        self.assertEqual(h.hexdigest(), kvm.SNAP_FILL_SHA256)
        self.assertRegex("SNAPUP=42\n", kvm.SNAP_ANSWER_RE)
        # Half a line read so far from the console is no answer yet.
        self.assertNotRegex("FILLED=0:2", kvm.SNAP_FILL_RE)
        self.assertNotRegex("SNAPUP=42", kvm.SNAP_ANSWER_RE)
        self.assertNotRegex("# " + kvm.SNAP_ANSWER_CMD + "\n",
                            kvm.SNAP_ANSWER_RE)


class Sizes(unittest.TestCase):
    def test_sparse_directory(self):
        where = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryDirectory(dir=where) as d:
            with open(os.path.join(d, "memory"), "wb") as f:
                f.truncate(64 << 20)
                f.seek(8 << 20)
                f.write(b"x" * (1 << 20))
            with open(os.path.join(d, "state"), "wb") as f:
                f.write(b"s" * 1000)
            used, size = kvm.snapshot_size(d)
            self.assertEqual(size, (64 << 20) + 1000)
            self.assertGreaterEqual(used, (1 << 20) + 1000)
            self.assertLess(used, 4 << 20, "the hole counted as data")
            one = kvm.snapshot_size(os.path.join(d, "state"))
            self.assertEqual(one[1], 1000)

    def test_fs_type(self):
        self.assertEqual(kvm.fs_type("/proc/self"), "proc")


def args(**kw):
    a = argparse.Namespace(only="snapshot", variants="default", repeat=3,
                           quick=False, lkvm="", kernel="/boot/vmlinuz")
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def round_(i, snap, size_mib, restore, **kw):
    r = {"round": i, "fill_s": 2.0, "sha256": "ab" * 32,
         "sha256_after": "ab" * 32, "same": True, "pause_s": 0.02,
         "snapshot_s": snap, "size_bytes": size_mib << 20,
         "apparent_bytes": 1 << 30, "restore_paused_s": restore - 0.5,
         "resume_s": 0.03, "restore_s": restore}
    r.update(kw)
    return r


def part(name, vmm, want, rounds, **kw):
    pt = {"name": name, "status": 0, "seconds": 60.0,
          "wants": [("snapshot", vmm, want)],
          "data": {"snapshot": {vmm: {
              "memory_mb": 1024, "fill_mb": 256, "dir": "/tmp",
              "dir_fs": "tmpfs", "rounds": rounds}}, "done": True}}
    pt.update(kw)
    return pt


class Plan(unittest.TestCase):
    def test_parts(self):
        vmms = [v for v in kvm.ALL_VMMS if v.name != "kvmtool"]
        parts = kvm.plan(args(repeat=4), vmms)
        self.assertEqual([p["name"] for p in parts],
                         ["snapshot-bulkhead", "snapshot-pc"])
        self.assertEqual(parts[0]["args"],
                         ["--only", "snapshot", "--vmms", "bulkhead"])
        self.assertEqual(parts[1]["wants"], [("snapshot", "pc", 4)])
        # Every round's worst case fits in the part's time.
        self.assertGreater(parts[0]["timeout"],
                           4 * (2 * kvm.BOOT_S + kvm.SNAP_S))

    def test_other_parts_unchanged(self):
        parts = kvm.plan(args(only="disk", repeat=2), kvm.ALL_VMMS[:1])
        self.assertEqual([p["name"] for p in parts], ["disk-bulkhead"])

    def test_qemu_argv(self):
        a = args(bulkhead="/b/bulkhead", initramfs="/i.cpio")
        argv = kvm.pc_argv(a, "console=ttyS0", None, kvm.SNAP_MEMORY_MB)
        self.assertEqual(argv[argv.index("-m") + 1], "1024M")
        self.assertIn("pc", argv)
        argv = kvm.bulkhead_argv(a, "console=ttyS0", None,
                                 kvm.SNAP_MEMORY_MB)
        self.assertEqual(argv[argv.index("--memory") + 1], "size=1024M")
        argv = kvm.pc_argv(a, "console=ttyS0", None)
        self.assertEqual(argv[argv.index("-m") + 1],
                         f"{kvm.MEMORY_MB}M")


class Merge(unittest.TestCase):
    def merged(self):
        vmms = [v for v in kvm.ALL_VMMS if v.name in ("bulkhead", "pc")]
        bh = part("snapshot-bulkhead", "bulkhead", 3, [
            round_(1, 0.8, 270, 1.5),
            {"round": 2, "fill_s": 2.0, "error": "bulkhead-ctl snapshot: "
             "status 1: HOST_ERROR: no room"}])
        bh["why"] = ("the emulated host did not finish within its 1000 s "
                     "(wedged or too slow) and was killed")
        bh["data"]["done"] = False
        pc = part("snapshot-pc", "pc", 3, [
            round_(1, 2.0, 280, 3.0), round_(2, 1.6, 282, 2.6),
            round_(3, 1.8, 281, 2.8)])
        return kvm.merge(args(), vmms, [bh, pc])

    def test_figures_ratios_missing(self):
        sec = self.merged()
        bh = sec["vmms"]["bulkhead"]["snapshot"]
        pc = sec["vmms"]["pc"]["snapshot"]
        self.assertEqual(bh["errors"], 1)
        self.assertEqual(bh["sha256_same"], 1)
        self.assertEqual(pc["figures"]["snapshot_s"]["median"], 1.8)
        self.assertEqual(pc["figures"]["snapshot_s"]["min"], 1.6)
        self.assertEqual(pc["figures"]["size_mib"]["median"], 281)
        self.assertEqual(pc["figures"]["apparent_mib"]["median"], 1024)
        self.assertEqual(bh["figures"]["restore_s"]["values"], [1.5])
        r = sec["snapshot"]["ratios_bulkhead_to_pc"]
        self.assertAlmostEqual(r["snapshot_s"], 0.8 / 1.8)
        self.assertAlmostEqual(r["restore_s"], 1.5 / 2.8)
        self.assertEqual(sec["snapshot"]["memory_mb"], 1024)
        self.assertEqual(sec["snapshot"]["dir_fs"], "tmpfs")
        missing = {m["what"]: m["why"] for m in sec["missing"]}
        self.assertEqual(missing["snapshot bulkhead round 2"],
                         "bulkhead-ctl snapshot: status 1: HOST_ERROR: "
                         "no room")
        self.assertIn("did not finish", missing["snapshot bulkhead round 3"])
        self.assertFalse([m for m in missing if " pc " in m + " "])
        # The part's own JSON is left as it was.
        sec2 = self.merged()
        self.assertEqual(sec2["vmms"]["pc"]["snapshot"]["figures"],
                         pc["figures"])

    def test_table(self):
        sec = json.loads(json.dumps(self.merged()))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            kvm.print_tables(sec)
        text = out.getvalue()
        self.assertIn("Snapshot and restore, 1 GiB guest (256 MiB", text)
        self.assertIn("files in /tmp (tmpfs)", text)
        lines = text.splitlines()
        row = [ln for ln in lines if ln.startswith("snapshot on disk, MiB")]
        self.assertEqual(len(row), 1, text)
        self.assertIn("270.0 [270.0-270.0]", row[0])
        self.assertIn("281.0 [280.0-282.0]", row[0])
        self.assertIn("0.96", row[0])  # 270 / 281
        row = [ln for ln in lines if ln.startswith("start to shell answer")]
        self.assertIn("2.80 [2.60-3.00]", row[0])
        self.assertIn("Bulkhead round 2 failed: bulkhead-ctl snapshot",
                      text)
        self.assertIn("MISSING: snapshot bulkhead round 3", text)
        self.assertIn("QEMU -M pc: the restored guest's /tmp/fill had its "
                      "sha256 of before in 3 of 3", text)
        # A run without the part says so.
        sec = kvm.merge(args(only="disk"), kvm.ALL_VMMS[:1], [])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            kvm.print_tables(sec)
        self.assertIn("Snapshot and restore: not measured in this run",
                      out.getvalue())


class Options(unittest.TestCase):
    def run_kvm(self, *argv):
        return subprocess.run([sys.executable, os.path.join(
            TOP, "bench", "kvm", "kvm.py")] + list(argv),
            capture_output=True, text=True, timeout=60)

    def test_unknown_part_lists_snapshot(self):
        p = self.run_kvm("--only", "snapshots", "--build-dir", "/x",
                         "--out", "/x/y")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown part 'snapshots' (boot, startup, disk, net, "
                      "snapshot, migration)", p.stderr)

    def test_needs_bulkhead_ctl(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "bin"))
            fake = os.path.join(d, "bin", "bulkhead")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(fake, 0o755)
            p = self.run_kvm("--only", "snapshot", "--build-dir", d,
                             "--out", os.path.join(d, "out.json"))
            self.assertEqual(p.returncode, 1)
            self.assertIn(f"no {d}/bin/bulkhead-ctl, which the snapshot "
                          f"part needs", p.stderr)

    def test_bench_run_help(self):
        p = subprocess.run([os.path.join(TOP, "bench", "run"), "--help"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertIn("net, snapshot, migration (default boot, startup and",
                      p.stdout)
        self.assertIn("snapshot and\n                  migration measure "
                      "bulkhead and pc only", p.stdout)


def main():
    global TOP, kvm
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    TOP = os.path.abspath(sys.argv[1])
    sys.path.insert(0, os.path.join(TOP, "bench", "kvm"))
    import kvm as module
    kvm = module
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
