#!/usr/bin/python3
"""add-disk, add-net, add-pmem, add-vsock and remove-device through the
API, against bulkhead with real device workers and bh-standin-runner as its
vCPU runner (no KVM): the stand-in takes hot-added devices like the runner
does and plays a guest that ejects at once, except a device whose id begins
with "stuck" (never ejected) or "refuse" (refused by the runner). It also
checks every pmem region it is given (fd, alignment, above 4 GiB and RAM,
below 1 TiB, no overlap) and logs it.

Checked: the answer names the device and its PCI address; info lists it;
the errors (duplicate id, a path that does not open, a refused device,
unknown id, a full bus, ip= over the API, fs not supported, a vsock device
added (its listener from the binder) and removed, a
second remove while one waits, a VM that does not run; for pmem a file
whose size does not fit, no room below 1 TiB); the controller's fds are
back where they were after a removal and the slot is reused; pmem regions
are disjoint, the lowest free place, and a removed one's place is taken
again; a paused VM takes a device; a reboot, or a shutdown and boot, keeps
the added devices (pmem regions in their places) and drops the removed
ones; a guest that never ejects holds remove-device for a bounded time
only; libbulkhead-client's calls.

Usage: test_hotplug_api.py --bulkhead PATH --standin PATH --rng PATH
                           --ctl PATH --client PATH --kernel BZIMAGE
"""
import argparse
import json
import os
import socket
import stat
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
BOUND_S = 30
REMOVE_TIMEOUT_S = 10  # vmapi.c's REMOVE_TIMEOUT
MIB = 1 << 20
GIB = 1 << 30
REGION_ALIGN = 128 * MIB  # controller/layout.h


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

        # A vsock device: its listener made by the binder (the
        # controller's sandbox has no bind), listening at once; one per
        # VM; gone with its socket file when removed.
        vs = os.path.join(self.tmp.name, "v.sock")
        # bulkhead-ctl checks with --vsock's parser before sending.
        rc, _, err = self.ctl("add-vsock", f"cid=2,socket={vs}")
        self.assertEqual(rc, 2, err)
        self.assertIn("--vsock: cid=2 is out of range", err)
        self.assertFalse(os.path.exists(vs))
        out = self.ok("add-vsock", f"cid=3,socket={vs}")
        self.assertEqual((out["id"], out["type"]), ("vsock0", "virtio-vsock"))
        self.assertTrue(stat.S_ISSOCK(os.lstat(vs).st_mode))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect(vs)
        self.refused("ALREADY_EXISTS", "one at most", "add-vsock",
                     f"cid=4,socket={vs}2")
        self.assertEqual(self.ok("info")["config"]["vsock"]["socket"], vs)
        self.ok("remove-device", "vsock0")
        self.assertNotIn("vsock0", self.devices())
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

    def regions(self, dev_id):
        """Every region the stand-in runners took for DEV_ID, in order,
        as (gpa, size); none was refused as bad."""
        err = self.stderr()
        self.assertNotIn("BAD REGION", err)
        return [(int(g, 16), int(s, 16)) for g, s in re.findall(
            rf"stand-in runner: region {re.escape(dev_id)} "
            r"0x([0-9a-f]+)\+0x([0-9a-f]+)\n", err)]

    def region(self, dev_id):
        r = self.regions(dev_id)
        self.assertEqual(len(r), 1, f"{dev_id}: {r}")
        return r[0]

    def pmems(self):
        return [(p["id"], p["file"], int(p["size"]),
                 p.get("discard_writes", False))
                for p in self.ok("info")["config"].get("pmem", [])]

    def test_pmem(self):
        a = self.image("a.pmem", 4 * MIB)
        b = self.image("b.pmem", 1 * MIB)
        base = self.devices()
        first = "0000:00:%02x.0" % (len(base) + 1)
        fds0 = self.nfds()

        # No size: the file's. RAM is 256 MiB: the first place is 4 GiB.
        out = self.ok("add-pmem", f"file={a}")
        self.assertEqual(out["id"], "pmem0")
        self.assertEqual(out["type"], "virtio-pmem")
        self.assertEqual(out["pci_address"], first)
        self.assertEqual(self.devices(), dict(base, pmem0=first))
        self.assertEqual(self.pmems(), [("pmem0", a, 4 * MIB, False)])
        self.assertEqual(self.region("pmem0"), (4 * GIB, 4 * MIB))

        # size= grows a smaller file; the region goes in the next free
        # section, clear of the first.
        out = self.ok("add-pmem", f"file={b},size=256M,id=big")
        self.assertEqual(out["id"], "big")
        self.assertEqual(os.path.getsize(b), 256 * MIB)
        self.assertEqual(self.region("big"),
                         (4 * GIB + REGION_ALIGN, 256 * MIB))
        c = self.image("c.pmem", 64 * MIB)
        self.ok("add-pmem", f"file={c},discard_writes=on,id=ro")
        self.assertEqual(self.region("ro"),
                         (4 * GIB + 3 * REGION_ALIGN, 64 * MIB))
        self.assertEqual(self.pmems(),
                         [("pmem0", a, 4 * MIB, False),
                          ("big", b, 256 * MIB, False),
                          ("ro", c, 64 * MIB, True)])
        fds1 = self.nfds()
        self.assertGreater(fds1, fds0)

        # Refusals leave the VM, the controller's fds and the files as
        # they were.
        missing = os.path.join(self.tmp.name, "missing.pmem")
        msg = self.refused("HOST_ERROR", missing, "add-pmem",
                           f"file={missing}")
        self.assertIn("add-pmem", msg)
        odd = self.image("odd.pmem", 3 * MIB)
        self.refused("INVALID_ARGUMENT", "not a non-zero multiple of 2 MiB",
                     "add-pmem", f"file={odd}")
        self.refused("INVALID_ARGUMENT", "pmem.size", "add-pmem",
                     f"file={odd},size=3M")
        self.refused("INVALID_ARGUMENT", "less than size=", "add-pmem",
                     f"file={odd},size=4M,discard_writes=on")
        self.refused("ALREADY_EXISTS", "'big'", "add-pmem",
                     f"file={a},id=big")
        small = self.image("small.pmem", 1 * MIB)
        msg = self.refused("INVALID_STATE", "below 1024 GiB", "add-pmem",
                           f"file={small},size=1T")
        self.assertIn(small, msg)
        self.assertEqual(os.path.getsize(small), 1 * MIB)
        self.refused("HOST_ERROR", "refuse1", "add-pmem",
                     f"file={a},id=refuse1")
        self.assertEqual(len(self.devices()), len(base) + 3)
        self.assertEqual(self.settled_nfds(fds1), fds1)

        # The first goes, with what the controller held for it; the next
        # that fits takes its place, one that does not goes past the
        # others.
        self.ok("remove-device", "pmem0")
        self.assertNotIn("pmem0", self.devices())
        self.assertEqual([p[0] for p in self.pmems()], ["big", "ro"])
        d = self.image("d.pmem", 64 * MIB)
        out = self.ok("add-pmem", f"file={d}")
        self.assertEqual(out["id"], "pmem0")
        self.assertEqual(out["pci_address"], first)
        self.assertEqual(self.regions("pmem0")[-1], (4 * GIB, 64 * MIB))
        e = self.image("e.pmem", 130 * MIB)
        self.ok("add-pmem", f"file={e},size=130M,id=wide")
        self.assertEqual(self.region("wide"),
                         (4 * GIB + 4 * REGION_ALIGN, 130 * MIB))

        # A reboot keeps each device and its place.
        placed = {i: self.regions(i)[-1]
                  for i in ("pmem0", "big", "ro", "wide")}
        before = self.devices()
        self.ok("reboot")
        self.wait_log("now hotplug", count=2)
        self.assertEqual(self.devices(), before)
        for i, r in placed.items():
            self.assertEqual(self.regions(i)[-1], r, i)
            self.assertEqual(len(self.regions(i)), 3 if i == "pmem0" else 2)

        # All gone: the controller holds what it held before the first.
        for i in ("pmem0", "big", "ro", "wide"):
            self.ok("remove-device", i)
        self.assertEqual(self.devices(), base)
        self.assertEqual(self.pmems(), [])
        self.assertEqual(self.settled_nfds(fds0), fds0)

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
        pm = self.image("p.pmem", 2 * MIB)
        p = subprocess.run([ARGS.client, self.sock, "add-pmem", pm,
                            "libpm"],
                           capture_output=True, text=True, timeout=BOUND_S)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(),
                         ["libpm", "virtio-pmem",
                          "0000:00:%02x.0" % (len(base) + 1)])
        self.assertEqual(self.region("libpm"), (4 * GIB, 2 * MIB))
        p = subprocess.run([ARGS.client, self.sock, "add-pmem",
                            pm + ".missing"],
                           capture_output=True, text=True, timeout=BOUND_S)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("HOST_ERROR: add-pmem: --pmem: cannot open", p.stderr)
        p = subprocess.run([ARGS.client, self.sock, "remove", "libpm"],
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
        # A pmem whose removal waits keeps its region until it goes: the
        # next one is placed clear of it.
        pm = self.image("stuck.pmem", 2 * MIB)
        self.ok("add-pmem", f"file={pm},id=stuckpm")
        self.assertEqual(self.region("stuckpm"), (4 * GIB, 2 * MIB))
        rc, _, _ = self.ctl("remove-device", "stuckpm")
        self.assertEqual(rc, 1)
        self.assertIn("stuckpm", self.devices())
        self.ok("add-pmem", f"file={pm},id=pm1")
        self.assertEqual(self.region("pm1"),
                         (4 * GIB + REGION_ALIGN, 2 * MIB))
        # The next boot comes without them, the other pmem in its place.
        self.ok("reboot")
        self.wait_log("now hotplug", count=2)
        self.assertEqual(self.devices(),
                         dict(base, disk1="0000:00:%02x.0" % (len(base) + 2),
                              pm1="0000:00:%02x.0" % (len(base) + 4)))
        self.assertEqual(self.regions("pm1"),
                         [(4 * GIB + REGION_ALIGN, 2 * MIB)] * 2)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    for a in ("bulkhead", "standin", "rng", "ctl", "client", "kernel"):
        p.add_argument("--" + a, required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
