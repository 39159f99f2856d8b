#!/usr/bin/python3
"""The controller's serial output against a guest that prints without pause,
played by a stand-in runner (bh-serial-runner) that sends 4 MiB of serial
output: with stdout a pipe that nobody reads, the API keeps answering and
SIGTERM still ends bulkhead; the overflow is dropped, logged and counted;
a closed stdout discards the output; and --serial file= keeps the file to
its max_size in both on_full modes.

bulkhead finds its runner beside its own binary, so the test runs a copy of
it in a temporary directory with the stand-in there as bulkhead-vcpu.

Usage: test_serial_output.py --bulkhead PATH --ctl PATH --runner PATH
                             --kernel BZIMAGE
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
WAIT_S = 20
TOTAL = 4 << 20  # what the stand-in sends


class SerialOutput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        self.bulkhead = os.path.join(d, "bulkhead")
        shutil.copy(ARGS.bulkhead, self.bulkhead)
        shutil.copy(ARGS.runner, os.path.join(d, "bulkhead-vcpu"))
        # A bulkhead that is not installed takes every child from beside
        # itself, and wants them all there at start-up.
        for kind in ("blk", "console", "net", "rng", "vsock", "pmem"):
            os.symlink(os.path.join(os.path.dirname(ARGS.bulkhead),
                                    f"bulkhead-dev-{kind}"),
                       os.path.join(d, f"bulkhead-dev-{kind}"))
        self.sock = os.path.join(d, "api.sock")
        self.err = open(os.path.join(d, "stderr"), "w+")
        self.proc = None
        self.pipe_r = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.pipe_r is not None:
            os.close(self.pipe_r)
        self.err.close()
        self.tmp.cleanup()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def start(self, serial, stdout=subprocess.DEVNULL, preexec_fn=None):
        self.proc = subprocess.Popen(
            [self.bulkhead, "--kernel", ARGS.kernel, "--memory", "size=128M",
             "--serial", serial, "--api-socket", f"path={self.sock}",
             "--name", "t"],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=self.err,
            preexec_fn=preexec_fn)
        end = time.monotonic() + WAIT_S
        while not os.path.exists(self.sock):
            self.assertIsNone(self.proc.poll(), self.stderr())
            self.assertLess(time.monotonic(), end, self.stderr())
            time.sleep(0.05)

    def ctl(self, *cmd, timeout=5):
        p = subprocess.run([ARGS.ctl, "--api-socket", self.sock, "--json"] +
                           list(cmd), capture_output=True, text=True,
                           timeout=timeout)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        return p.returncode, out, p.stderr

    def wait_log(self, text):
        end = time.monotonic() + WAIT_S
        while text not in self.stderr():
            self.assertLess(time.monotonic(), end,
                            f"no '{text}' in the log:\n{self.stderr()}")
            time.sleep(0.05)

    def counters(self):
        rc, out, err = self.ctl("counters")
        self.assertEqual(rc, 0, err)
        return {k: int(v) for k, v in
                out["devices"]["serial0"]["values"].items()}

    def stop(self):
        # SIGTERM presses the power button; the stand-in powers off.
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.fail("bulkhead did not end after SIGTERM:\n" +
                      self.stderr())
        self.assertEqual(rc, 0, self.stderr())

    def test_stdout_nobody_reads(self):
        r, w = os.pipe()
        self.pipe_r = r
        self.start("tty", stdout=w)
        os.close(w)
        # The stand-in fills the pipe within milliseconds; the controller
        # must still answer.
        time.sleep(1)
        for _ in range(3):
            try:
                rc, _, err = self.ctl("ping")
            except subprocess.TimeoutExpired:
                self.fail("the API does not answer:\n" + self.stderr())
            self.assertEqual(rc, 0, err)
            time.sleep(0.2)
        self.wait_log("serial output: its reader does not keep up")
        end = time.monotonic() + WAIT_S
        while True:
            c = self.counters()
            if c["tx_bytes"] + c["tx_dropped"] >= TOTAL - (64 << 10):
                break
            self.assertLess(time.monotonic(), end, c)
            time.sleep(0.1)
        self.assertGreater(c["tx_dropped"], 0)
        self.assertGreater(c["tx_bytes"], 0)
        self.stop()
        # What did go out is the guest's output from its start.
        os.set_blocking(r, False)
        head = os.read(r, 64)
        self.assertEqual(head, b"abcdefghijklmnopqrstuvwxyz" * 2 +
                         b"abcdefghijk\n")

    def test_stdout_closed(self):
        # A closed stdout is held by /dev/null: the output is discarded
        # there, not written into whatever file took fd 1 next.
        self.start("tty", preexec_fn=lambda: os.close(1))
        end = time.monotonic() + WAIT_S
        while self.counters()["tx_bytes"] < TOTAL:
            self.assertLess(time.monotonic(), end, self.stderr())
            time.sleep(0.1)
        self.assertEqual(self.counters()["tx_dropped"], 0)
        self.assertNotIn("serial output", self.stderr())
        self.stop()

    def file_run(self, on_full):
        path = os.path.join(self.tmp.name, "serial,1.log")
        self.start(f"file={path},max_size=64K,on_full={on_full}")
        end = time.monotonic() + WAIT_S
        while True:
            c = self.counters()
            # Every byte counted once: written (into the file, across
            # its truncations) or dropped.
            if c["tx_bytes"] + c["tx_dropped"] >= TOTAL:
                break
            self.assertLess(time.monotonic(), end, c)
            time.sleep(0.1)
        self.assertLessEqual(os.path.getsize(path), 64 << 10)
        self.stop()
        return path, c

    def test_file_stop(self):
        path, c = self.file_run("stop")
        self.assertEqual(os.path.getsize(path), 64 << 10)
        self.assertEqual(c["tx_dropped"], TOTAL - (64 << 10))
        self.assertEqual(c["truncations"], 0)
        self.assertIn("serial output reached max_size=64K (on_full=stop)",
                      self.stderr())

    def test_file_truncate(self):
        path, c = self.file_run("truncate")
        self.assertEqual(c["tx_dropped"], 0)
        self.assertGreaterEqual(c["truncations"], TOTAL // (64 << 10) - 1)
        self.assertGreater(os.path.getsize(path), 0)
        self.assertIn("serial output reached max_size=64K: file emptied",
                      self.stderr())


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--kernel", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
