#!/usr/bin/python3
"""bulkhead itself with --api-socket and no VM (no KVM needed): the systemd
notify protocol against a datagram socket standing in for systemd (READY=1
once the API listens, STOPPING=1 on the way out), create with a bad and a
good configuration, info, delete, shutdown-vmm, and SIGTERM without a VM;
FIFOs as backends, refused at once by create and on the command line.

Usage: test_vmm.py --bulkhead PATH --ctl PATH --kernel BZIMAGE
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
WAIT_S = 20


class Vmm(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.tmp.name, "api.sock")
        self.notify_path = os.path.join(self.tmp.name, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(WAIT_S)
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        self.err = open(os.path.join(self.tmp.name, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [ARGS.bulkhead, "--api-socket", f"path={self.sock}",
             "--name", "t"], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.err)

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()
        self.notify.close()
        self.tmp.cleanup()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def message(self):
        try:
            return self.notify.recv(4096).decode()
        except socket.timeout:
            self.fail(f"no notify message in {WAIT_S} s; stderr:\n"
                      f"{self.stderr()}")

    def ctl(self, *cmd):
        p = subprocess.run([ARGS.ctl, "--api-socket", self.sock, "--json"] +
                           list(cmd), capture_output=True, text=True,
                           timeout=WAIT_S)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        return p.returncode, out, p.stderr

    def test_lifecycle(self):
        ready = self.message()
        self.assertIn("READY=1", ready.split("\n"))
        self.assertIn("STATUS=No VM yet", ready)
        rc, _, err = self.ctl("info")
        self.assertEqual(rc, 1, err)
        self.assertIn("INVALID_STATE", err)

        # A disk that cannot be opened: refused, nothing created.
        rc, _, err = self.ctl("create", "--kernel", ARGS.kernel, "--disk",
                              f"path={self.tmp.name}/missing.img")
        self.assertEqual(rc, 1, err)
        self.assertIn("INVALID_ARGUMENT", err)
        self.assertIn("missing.img", err)
        rc, _, _ = self.ctl("info")
        self.assertEqual(rc, 1)

        img = os.path.join(self.tmp.name, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        rc, _, err = self.ctl("create", "--kernel", ARGS.kernel, "--memory",
                              "size=256M", "--serial", "off", "--disk",
                              f"path={img},id=data")
        self.assertEqual(rc, 0, err)
        rc, info, err = self.ctl("info")
        self.assertEqual(rc, 0, err)
        self.assertEqual(info["state"], "CREATED")
        self.assertEqual(int(info["memory_actual_size"]), 256 << 20)
        self.assertEqual(info["devices"][0]["id"], "data")
        self.assertEqual(info["devices"][0]["pci_address"], "0000:00:01.0")
        rc, _, err = self.ctl("create", "--kernel", ARGS.kernel)
        self.assertEqual(rc, 1)
        self.assertIn("INVALID_STATE", err)

        rc, _, err = self.ctl("delete")
        self.assertEqual(rc, 0, err)
        rc, _, _ = self.ctl("info")
        self.assertEqual(rc, 1)

        rc, _, err = self.ctl("shutdown-vmm")
        self.assertEqual(rc, 0, err)
        self.assertIn("STOPPING=1", self.message().split("\n"))
        self.assertEqual(self.proc.wait(WAIT_S), 0, self.stderr())
        self.assertFalse(os.path.exists(self.sock))

    def fifo_cases(self):
        fifo = os.path.join(self.tmp.name, "fifo")
        os.mkfifo(fifo)
        return fifo, [
            (["--rng", f"src={fifo}"], "--rng"),
            (["--disk", f"path={fifo}"], "--disk"),
            (["--serial", f"file={fifo}"], "--serial"),
            (["--serial", "off", "--console", f"file={fifo}"], "--console"),
        ]

    def test_create_fifo_backends(self):
        # Opening a FIFO waits for its other end; the controller must not:
        # each create is refused at once, naming the path and its type,
        # while another client's ping is answered.
        self.assertIn("READY=1", self.message().split("\n"))
        fifo, cases = self.fifo_cases()
        for opts, opt in cases:
            with self.subTest(opt=opt):
                create = subprocess.Popen(
                    [ARGS.ctl, "--api-socket", self.sock, "create",
                     "--kernel", ARGS.kernel] + opts,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
                try:
                    time.sleep(0.3)
                    try:
                        rc, _, err = self.ctl("ping")
                    except subprocess.TimeoutExpired:
                        self.fail("ping not answered while creating with "
                                  f"{opts}:\n{self.stderr()}")
                    self.assertEqual(rc, 0, err)
                    _, err = create.communicate(timeout=WAIT_S)
                finally:
                    if create.poll() is None:
                        create.kill()
                        create.wait()
                self.assertEqual(create.returncode, 1, err)
                self.assertIn("INVALID_ARGUMENT", err)
                self.assertIn(f"{opt}: '{fifo}' is a FIFO", err)
                rc, _, _ = self.ctl("info")
                self.assertEqual(rc, 1)

    def test_command_line_fifo_backends(self):
        fifo, cases = self.fifo_cases()
        for opts, opt in cases:
            with self.subTest(opt=opt):
                try:
                    p = subprocess.run(
                        [ARGS.bulkhead, "--kernel", ARGS.kernel] + opts,
                        stdin=subprocess.DEVNULL, capture_output=True,
                        text=True, timeout=WAIT_S)
                except subprocess.TimeoutExpired:
                    self.fail(f"bulkhead {opts} hangs")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(f"{opt}: '{fifo}' is a FIFO", p.stderr)

    def test_sigterm_without_vm(self):
        self.assertIn("READY=1", self.message().split("\n"))
        self.proc.send_signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", self.message().split("\n"))
        self.assertEqual(self.proc.wait(WAIT_S), 128 + signal.SIGTERM)
        self.assertFalse(os.path.exists(self.sock))


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
