#!/usr/bin/python3
"""add-disk, add-net, add-vsock and remove-device through the API, against
bulkhead with real device workers and bh-standin-runner as its vCPU runner
(no KVM): the stand-in takes hot-added devices like the runner does and
plays a guest that ejects at once, except a device whose id begins with
"stuck" (never ejected) or "refuse" (refused by the runner).

Checked: the answer names the device and its PCI address; info lists it;
the errors (duplicate id, a path that does not open, a refused device,
unknown id, a full bus, ip= over the API, vsock, pmem and fs not
supported, a second remove while one waits, a VM that does not run); the
controller's fds are back where they were after a removal and the slot is
reused; a paused VM takes a device; a reboot, or a shutdown and boot, keeps
the added devices and drops the removed ones; a guest that never ejects
holds remove-device for a bounded time only; libbulkhead-client's calls.

Usage: test_hotplug_api.py --bulkhead PATH --standin PATH --rng PATH
                           --ctl PATH --client PATH --kernel BZIMAGE
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
BOUND_S = 30
REMOVE_TIMEOUT_S = 10  # vmapi.c's REMOVE_TIMEOUT


class Hotplug(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bh-hotplug-")
        d = self.tmp.name
        shutil.copy2(ARGS.bulkhead, os.path.join(d, "bulkhead"))
        os.symlink(ARGS.standin, os.path.join(d, "bulkhead-vcpu"))
        for kind in ("blk", "console", "net", "pmem", "rng", "vsock"):
            os.symlink(os.path.join(os.path.dirname(ARGS.rng),
                                    f"bulkhead-dev-{kind}"),
                       os.path.join(d, f"bulkhead-dev-{kind}"))
        self.sock = os.path.join(d, "api.sock")
        self.err = open(os.path.join(d, "stderr"), "w+")
        self.proc = None
        self.start()

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if os.environ.get("BH_TEST_LOG"):
            print(self.stderr(), file=sys.stderr)
        self.err.close()
        self.tmp.cleanup()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def image(self, name, size=1 << 20):
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def start(self):
        cmd = [os.path.join(self.tmp.name, "bulkhead"), "--kernel",
               ARGS.kernel, "--memory", "size=256M", "--rng", "",
               "--serial", "off", "--name", "hotplug",
               "--api-socket", f"path={self.sock}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.err)
        self.wait_log("now hotplug")

    def wait_log(self, text, count=1, timeout=BOUND_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr().count(text) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.fail(f"no {text!r} in the log; stderr:\n{self.stderr()}")

    def ctl(self, *cmd, timeout=BOUND_S):
        p = subprocess.run([ARGS.ctl, "--api-socket", self.sock, "--json",
                            "--timeout", str(timeout)] + list(cmd),
                           capture_output=True, text=True,
                           timeout=timeout * 2 + 5)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        return p.returncode, out, p.stderr

    def ok(self, *cmd):
        rc, out, err = self.ctl(*cmd)
        self.assertEqual(rc, 0, f"{cmd}: {err}; bulkhead's stderr:\n"
                         f"{self.stderr()}")
        return out

    def refused(self, code, text, *cmd):
        rc, out, err = self.ctl(*cmd)
        self.assertEqual(rc, 1, f"{cmd}: {out} {err}")
        self.assertEqual(out["error"]["code"], code, out)
        self.assertIn(text, out["error"]["message"])
        return out["error"]["message"]

    def devices(self):
        info = self.ok("info")
        return {d["id"]: d["pci_address"] for d in
                info.get("devices", [])}

    def nfds(self):
        """The controller's fd count once it holds still for 0.2 s: the
        connection of the bulkhead-ctl that just returned may not be
        closed yet on the controller's side."""
        deadline = time.monotonic() + 5
        n = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        while time.monotonic() < deadline:
            time.sleep(0.2)
            m = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
            if m == n:
                break
            n = m
        return n

    def settled_nfds(self, want):
        """The controller's fd count, waiting a little for it to reach
        want (a worker's exit is reaped from the loop)."""
        deadline = time.monotonic() + 5
        n = self.nfds()
        while n != want and time.monotonic() < deadline:
            time.sleep(0.1)
            n = self.nfds()
        return n

    def test_add_remove(self):
        a = self.image("a.img")
        # The VM's own devices take the first slots (the rng).
        base = self.devices()
        first = "0000:00:%02x.0" % (len(base) + 1)
        fds0 = self.nfds()
        out = self.ok("add-disk", f"path={a}")
        self.assertEqual(out["id"], "disk0")
        self.assertEqual(out["type"], "virtio-blk")
        self.assertEqual(out["pci_address"], first)
        self.assertEqual(self.devices(), dict(base, disk0=first))
        # Part of the VM's configuration now.
        disks = self.ok("info")["config"]["disks"]
        self.assertEqual([(d["id"], d["path"]) for d in disks],
                         [("disk0", a)])
        fds1 = self.nfds()
        self.assertGreater(fds1, fds0)

        # Errors leave the VM as it was.
        self.refused("ALREADY_EXISTS", "'disk0'", "add-disk",
                     f"path={a},id=disk0")
        missing = os.path.join(self.tmp.name, "missing.img")
        self.refused("HOST_ERROR", "missing.img", "add-disk",
                     f"path={missing}")
        self.refused("HOST_ERROR", "refuse1", "add-disk",
                     f"path={a},id=refuse1")
        self.refused("NOT_FOUND", "'nosuch'", "remove-device", "nosuch")
        self.refused("NOT_SUPPORTED_YET", "add-pmem", "add-pmem",
                     f"file={a}")
        self.refused("NOT_SUPPORTED_YET", "add-fs", "add-fs",
                     "tag=t,socket=/nonexistent")
        self.refused("INVALID_ARGUMENT", "net.ip", "add-net",
                     "tap=bhtest0,ip=192.168.7.1")
        self.assertEqual(self.devices(), dict(base, disk0=first))
        self.assertEqual(self.settled_nfds(fds1), fds1)

        # Gone, with everything the controller held for it; the slot is
        # taken again by the next one.
        self.ok("remove-device", "disk0")
        self.assertEqual(self.devices(), base)
        self.assertEqual(self.ok("info")["config"]["disks"], [])
        self.assertEqual(self.settled_nfds(fds0), fds0)
        out = self.ok("add-disk", f"path={a},id=again,readonly=on")
        self.assertEqual(out["pci_address"], first)

        # The vsock listener is bound before the sandbox closes: a vsock
        # device comes at start-up only. Its fields are checked first.
        vs = os.path.join(self.tmp.name, "v.sock")
        self.refused("NOT_SUPPORTED_YET", "bulkhead --vsock", "add-vsock",
                     f"cid=3,socket={vs}")
        # bulkhead-ctl checks with --vsock's parser before sending.
        rc, _, err = self.ctl("add-vsock", f"cid=2,socket={vs}")
        self.assertEqual(rc, 2, err)
        self.assertIn("--vsock: cid=2 is out of range", err)
        self.assertFalse(os.path.exists(vs))

        # Paused: taken now, seen by the guest when it runs again.
        self.ok("pause")
        out = self.ok("add-disk", f"path={a},readonly=on")
        self.assertEqual(out["id"], "disk0")
        self.ok("resume")

        # Up to 16, then refused with the limit named.
        n = len(self.devices())
        for i in range(n, 16):
            self.ok("add-disk", f"path={a},readonly=on,id=fill{i}")
        msg = self.refused("INVALID_STATE", "16 devices at most",
                           "add-disk", f"path={a},readonly=on")
        self.assertIn("add-disk", msg)
        self.assertEqual(len(self.devices()), 16)

        # A reboot brings back the added devices, in their slots.
        before = self.devices()
        self.ok("remove-device", "fill15")
        del before["fill15"]
        self.ok("reboot")
        self.wait_log("now hotplug", count=2)
        self.assertEqual(self.devices(), before)

    def test_client_library(self):
        a = self.image("a.img")
        base = self.devices()
        p = subprocess.run([ARGS.client, self.sock, "add-disk", a, "lib0"],
                           capture_output=True, text=True, timeout=BOUND_S)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(),
                         ["lib0", "virtio-blk",
                          "0000:00:%02x.0" % (len(base) + 1)])
        p = subprocess.run([ARGS.client, self.sock, "add-disk", a, "lib0"],
                           capture_output=True, text=True, timeout=BOUND_S)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("ALREADY_EXISTS: add-disk: id 'lib0'", p.stderr)
        p = subprocess.run([ARGS.client, self.sock, "remove", "lib0"],
                           capture_output=True, text=True, timeout=BOUND_S)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.devices(), base)

    def test_not_running(self):
        a = self.image("a.img")
        self.ok("add-disk", f"path={a},id=kept")
        before = self.devices()
        self.ok("shutdown")
        self.refused("INVALID_STATE", "the VM is not running", "add-disk",
                     f"path={a}")
        self.refused("INVALID_STATE", "the VM is not running",
                     "remove-device", "kept")
        self.assertEqual(self.devices(), before)
        # The next boot has it.
        self.ok("boot")
        self.wait_log("now hotplug", count=2)
        self.assertEqual(self.devices(), before)
        self.ok("remove-device", "kept")

    def test_guest_never_ejects(self):
        a = self.image("a.img")
        base = self.devices()
        self.ok("add-disk", f"path={a},id=stuck0")
        self.ok("add-disk", f"path={a},id=disk1")
        t0 = time.monotonic()
        first = subprocess.Popen(
            [ARGS.ctl, "--api-socket", self.sock, "--json",
             "remove-device", "stuck0"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.wait_log("stand-in runner: remove stuck0")
        # One removal waits: a second is refused.
        self.refused("BUSY", "remove-device", "remove-device", "disk1")
        out, _ = first.communicate(timeout=REMOVE_TIMEOUT_S + BOUND_S)
        took = time.monotonic() - t0
        self.assertEqual(first.returncode, 1, out)
        err = json.loads(out)["error"]
        self.assertEqual(err["code"], "INVALID_STATE")
        self.assertIn("did not eject stuck0", err["message"])
        self.assertLess(took, REMOVE_TIMEOUT_S + BOUND_S)
        self.assertIn("stuck0", self.devices())
        # Asking again asks the guest again (and is bounded again).
        rc, _, _ = self.ctl("remove-device", "stuck0")
        self.assertEqual(rc, 1)
        self.wait_log("stand-in runner: remove stuck0", count=2)
        # The next boot comes without it.
        self.ok("reboot")
        self.wait_log("now hotplug", count=2)
        self.assertEqual(self.devices(),
                         dict(base, disk1="0000:00:%02x.0" % (len(base) + 2)))


def main():
    global ARGS
    p = argparse.ArgumentParser()
    for a in ("bulkhead", "standin", "rng", "ctl", "client", "kernel"):
        p.add_argument("--" + a, required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
