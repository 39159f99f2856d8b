#!/usr/bin/python3
"""A vCPU runner that stops reading must not freeze the controller.

bulkhead runs the runner it finds beside itself, so each case copies
bulkhead into a temporary directory and puts bh-standin-runner there as
bulkhead-vcpu (and the real rng worker beside it). The stand-in does the
handshake and set-up, then, as its --name says, floods the controller with
VIRTIO_RESET and reads nothing ("flood"), or just reads nothing while
serial input arrives ("deaf"). The controller must go on serving (ping),
kill the runner once its messages have waited unread for the send timeout
(5 s), report the VM crashed (exit status 1 without an API, and a log line
naming the cause), and end on SIGTERM. Nothing needs KVM.

Usage: test_runner_stuck.py --bulkhead PATH --standin PATH --rng PATH
                            --ctl PATH --kernel BZIMAGE
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ARGS = None
CRASHED = "; killed it: the VM crashed"
# The send timeout is 5 s; the rest is slack for a busy machine.
BOUND_S = 25


class RunnerStuck(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bh-runner-stuck-")
        d = self.tmp.name
        shutil.copy2(ARGS.bulkhead, os.path.join(d, "bulkhead"))
        os.symlink(ARGS.standin, os.path.join(d, "bulkhead-vcpu"))
        # A bulkhead that is not installed takes every child from beside
        # itself, and wants them all there at start-up.
        for kind in ("blk", "console", "net", "rng", "vsock", "pmem"):
            os.symlink(os.path.join(os.path.dirname(ARGS.rng),
                                    f"bulkhead-dev-{kind}"),
                       os.path.join(d, f"bulkhead-dev-{kind}"))
        self.sock = os.path.join(d, "api.sock")
        self.err = open(os.path.join(d, "stderr"), "w+")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if os.environ.get("BH_TEST_LOG"):
            print(self.stderr(), file=sys.stderr)
        self.err.close()
        self.tmp.cleanup()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def start(self, mode, api=False, serial="off", stdin=subprocess.DEVNULL):
        cmd = [os.path.join(self.tmp.name, "bulkhead"), "--kernel",
               ARGS.kernel, "--memory", "size=256M", "--rng", "",
               "--serial", serial, "--name", mode]
        if api:
            cmd += ["--api-socket", f"path={self.sock}"]
        self.proc = subprocess.Popen(cmd, stdin=stdin,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.err)

    def wait_log(self, text, timeout=BOUND_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.fail(f"no {text!r} in the log; stderr:\n{self.stderr()}")

    def wait_exit(self, timeout=BOUND_S):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"bulkhead did not exit within {timeout} s; "
                      f"stderr:\n{self.stderr()}")

    def ping(self):
        p = subprocess.run([ARGS.ctl, "--api-socket", self.sock, "ping"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0,
                         f"ping failed: {p.stdout}{p.stderr}; bulkhead's "
                         f"stderr:\n{self.stderr()}")

    def assert_crashed(self):
        log = self.stderr()
        self.assertIn("vCPU runner left", log)
        self.assertIn(CRASHED, log)

    def test_flood_without_api(self):
        """The VM is the process: it ends with status 1."""
        self.start("flood")
        self.wait_log("now flood")
        t0 = time.monotonic()
        self.assertEqual(self.wait_exit(), 1, self.stderr())
        self.assert_crashed()
        print(f"flood: bulkhead exited {time.monotonic() - t0:.1f} s "
              "into the flood", file=sys.stderr)

    def test_flood_with_api(self):
        """The API answers during the flood and after it; SIGTERM ends
        bulkhead."""
        self.start("flood", api=True)
        self.wait_log("now flood")
        for _ in range(3):
            self.ping()
            time.sleep(0.3)
        self.wait_log(CRASHED)
        self.assert_crashed()
        self.ping()
        self.proc.send_signal(signal.SIGTERM)
        self.wait_exit(10)

    def test_flood_sigterm(self):
        """SIGTERM in the middle of the flood: the power button cannot
        reach the runner, which is killed; status 1."""
        self.start("flood")
        self.wait_log("now flood")
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(), 1, self.stderr())
        self.assert_crashed()

    def test_flood_sigint(self):
        """SIGINT stops the VM at once: QUIT cannot reach the runner, which
        is killed, and bulkhead ends with status 1. Where the flood filled
        the queue first, the VM had crashed already and bulkhead, an API
        server with no VM running, ends as a signal ends it: 128 + 2."""
        self.start("flood", api=True)
        self.wait_log("now flood")
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        rc = self.wait_exit()
        log = self.stderr()
        self.assert_crashed()
        self.assertIn("received Interrupt", log)
        crashed_first = log.index(CRASHED) < log.index("received Interrupt")
        self.assertEqual(rc, 128 + signal.SIGINT if crashed_first else 1,
                         log)

    def feed(self, total):
        """Writes total bytes of serial input from a thread."""
        def run():
            chunk = b"x" * 4096
            try:
                for _ in range(total // len(chunk)):
                    self.proc.stdin.write(chunk)
                    self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

        threading.Thread(target=run, daemon=True).start()

    def test_deaf_serial_input(self):
        """Serial input without end for a runner that reads nothing: the
        queue's bound or the timeout ends it."""
        self.start("deaf", serial="tty", stdin=subprocess.PIPE)
        self.wait_log("now deaf")
        self.feed(64 << 20)
        self.assertEqual(self.wait_exit(), 1, self.stderr())
        self.assert_crashed()

    def test_deaf_timeout_with_api(self):
        """Some serial input, more than the socket holds, less than the
        queue's bound: the API answers while it waits, the runner is killed
        after 5 s of taking nothing, and SIGTERM ends bulkhead."""
        self.start("deaf", api=True, serial="tty", stdin=subprocess.PIPE)
        self.wait_log("now deaf")
        t0 = time.monotonic()
        self.feed(768 << 10)
        for _ in range(6):
            self.ping()
            time.sleep(0.4)
        self.assertNotIn(CRASHED, self.stderr())
        self.wait_log("vCPU runner left its messages unread for 5000 ms"
                      + CRASHED)
        waited = time.monotonic() - t0
        self.assertGreater(waited, 4.5)
        self.ping()
        self.proc.send_signal(signal.SIGTERM)
        self.wait_exit(10)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    for a in ("bulkhead", "standin", "rng", "ctl", "kernel"):
        p.add_argument("--" + a, required=True)
    ARGS, rest = p.parse_known_args()
    for a in ("bulkhead", "standin", "rng", "ctl", "kernel"):
        setattr(ARGS, a, os.path.abspath(getattr(ARGS, a)))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
