#!/usr/bin/python3
"""bulkhead-ctl against bh-api-test-server: text and JSON output, exit
statuses, create with bulkhead's own options, errors from the server.

Usage: test_ctl.py --server PATH --ctl PATH
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

ARGS = None


class Ctl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.tmp.name, "api.sock")
        cls.log = open(os.path.join(cls.tmp.name, "server.log"), "w+")
        cls.proc = subprocess.Popen([ARGS.server, cls.path],
                                    stdout=subprocess.PIPE,
                                    stderr=cls.log, text=True)
        line = cls.proc.stdout.readline()
        if line.strip() != "ready":
            cls.proc.kill()
            raise RuntimeError("test server did not start: %r" % line)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.terminate()
            cls.proc.wait(10)
        cls.proc.stdout.close()
        cls.log.close()
        cls.tmp.cleanup()

    def ctl(self, *args, socket=True):
        argv = [ARGS.ctl]
        if socket:
            argv += ["--api-socket", self.path, "--timeout", "10"]
        p = subprocess.run(argv + list(args), capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args):
        rc, out, err = self.ctl(*args)
        self.assertEqual(rc, 0, (args, out, err))
        return out

    def setUp(self):
        self.assertIsNone(self.proc.poll(), "the server has died")
        self.ok("delete")

    def test_help(self):
        rc, out, _ = self.ctl("--help", socket=False)
        self.assertEqual(rc, 0)
        for cmd in ("ping", "create", "info", "counters", "boot", "pause",
                    "resume", "shutdown", "reboot", "power-button",
                    "delete", "shutdown-vmm", "snapshot", "restore",
                    "resize", "resize-zone", "add-device", "remove-device",
                    "add-disk", "add-fs", "add-pmem", "add-net",
                    "add-vsock", "send-migration", "receive-migration",
                    "--json", "--timeout", "Exit status"):
            self.assertIn(cmd, out)
        rc, out, _ = self.ctl("create", "--help", socket=False)
        self.assertEqual(rc, 0)
        self.assertIn("--disk path=PATH", out)

    def test_ping(self):
        out = self.ok("ping")
        self.assertIn("api_version: 1", out)
        self.assertIn("operations: ping, create,", out)
        p = json.loads(self.ok("--json", "ping"))
        self.assertEqual(p["api_version"], 1)
        self.assertEqual(p["pid"], self.proc.pid)
        self.assertIn("power-button", p["operations"])
        self.assertNotIn("snapshot", p["operations"])

    def test_create_and_info(self):
        cmdline = 'console=ttyS0 quote" back\\ esc\x1b \u00e9'
        out = self.ok("create", "--kernel", "/boot/vmlinuz",
                      "--initramfs=/boot/initrd.img", "--cmdline", cmdline,
                      "--cpus", "boot=2", "--memory", "size=1G",
                      "--serial", "off", "--console", "file=/tmp/c,1.log",
                      "--disk", "path=/var/lib/vm/root.img,readonly=on,id=root",
                      "--disk", "path=/var/lib/vm/data.img,num_queues=4",
                      "--rng", "src=/dev/random", "--name", "web1",
                      "--restart-devices", "on,max=7")
        self.assertEqual(out, "")
        info = json.loads(self.ok("--json", "info"))
        self.assertEqual(info["state"], "CREATED")
        self.assertEqual(info["memory_actual_size"], 1 << 30)
        c = info["config"]
        self.assertEqual(c["name"], "web1")
        self.assertEqual(c["payload"], {"kernel": "/boot/vmlinuz",
                                        "initramfs": "/boot/initrd.img",
                                        "cmdline": cmdline})
        self.assertEqual(c["cpus"], {"boot": 2})
        self.assertEqual(c["serial"], {"mode": "CONSOLE_MODE_OFF",
                                       "path": "", "max_size": 0,
                                       "on_full": "OUTPUT_FULL_DEFAULT"})
        # A file output's limit is spelled out, the default included.
        self.assertEqual(c["console"], {"mode": "CONSOLE_MODE_FILE",
                                        "path": "/tmp/c,1.log",
                                        "max_size": 64 << 20,
                                        "on_full": "OUTPUT_FULL_TRUNCATE"})
        self.assertEqual(c["rng"], {"src": "/dev/random"})
        self.assertEqual(c["restart_devices"], {"enabled": True, "max": 7})
        self.assertEqual(len(c["disks"]), 2)
        self.assertEqual(c["disks"][0]["id"], "root")
        self.assertIs(c["disks"][0]["readonly"], True)
        self.assertEqual(c["disks"][1], {
            "path": "/var/lib/vm/data.img", "readonly": False,
            "direct": False, "num_queues": 4, "queue_size": 256,
            "id": "disk1", "serial": ""})
        self.assertEqual([d["id"] for d in info["devices"]],
                         ["root", "disk1", "rng0", "console0"])

        text = self.ok("info")
        self.assertIn("state: CREATED", text)
        self.assertIn("  name: web1\n", text)
        self.assertIn("mode: FILE", text)
        self.assertIn("    - path: /var/lib/vm/root.img\n", text)
        # Control characters reach the terminal escaped.
        self.assertNotIn("\x1b", text)
        self.assertIn("esc\\x1b", text)

    def test_create_net_vsock(self):
        self.ok("create", "--kernel", "/k", "--net",
                "tap=bh0,mac=52:54:00:12:34:56,ip=192.168.249.1,mtu=9000",
                "--vsock", "cid=3,socket=/run/web1.vsock")
        c = json.loads(self.ok("--json", "info"))["config"]
        self.assertEqual(c["net"], [{
            "tap": "bh0", "ip": "192.168.249.1", "mask": "255.255.255.0",
            "mac": "52:54:00:12:34:56", "num_queues": 2, "queue_size": 256,
            "id": "net0", "mtu": 9000}])
        self.assertEqual(c["vsock"], {"cid": 3, "socket": "/run/web1.vsock",
                                      "id": "vsock0"})
        text = self.ok("info")
        self.assertIn("    - tap: bh0\n", text)
        self.assertIn("socket: /run/web1.vsock", text)
        # fds cannot travel over the API.
        self.ok("delete")
        rc, out, err = self.ctl("create", "--kernel", "/k", "--net", "fd=5")
        self.assertEqual(rc, 2, err)
        self.assertIn("create: --net fd= cannot go through the API", err)

    def test_refused_operation(self):
        self.ok("create", "--kernel", "/k")
        rc, out, err = self.ctl("pause")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertEqual(err.strip(), "bulkhead-ctl: INVALID_STATE: pause: "
                         "the VM is not running (state: Created)")
        rc, out, err = self.ctl("--json", "pause")
        self.assertEqual(rc, 1)
        self.assertEqual(json.loads(out), {"error": {
            "code": "INVALID_STATE",
            "message": "pause: the VM is not running (state: Created)"}})
        rc, _, err = self.ctl("create", "--kernel", "/k")
        self.assertEqual(rc, 1)
        self.assertIn("INVALID_STATE: create: a VM already exists", err)

    def test_not_supported_yet(self):
        for args in (["snapshot", "file:///tmp/snap"],
                     ["add-disk", "path=/x.img,readonly=on"],
                     ["add-net", "tap=tap0"],
                     ["resize", "--cpus", "2"],
                     ["restore", "file:///tmp/snap", "--prefault"]):
            rc, _, err = self.ctl(*args)
            self.assertEqual(rc, 1, args)
            self.assertIn("NOT_SUPPORTED_YET: %s: not supported" % args[0],
                          err)

    def test_lifecycle(self):
        self.ok("create", "--kernel", "/k", "--disk", "path=/d.img")
        self.ok("boot")
        self.assertEqual(json.loads(self.ok("--json", "info"))["state"],
                         "RUNNING")
        self.ok("pause")
        self.ok("resume")
        counters = json.loads(self.ok("--json", "counters"))
        self.assertEqual(counters["devices"]["disk0"]["values"]["answer"],
                         42)
        self.assertIn("disk0:\n", self.ok("counters"))
        self.ok("reboot")
        self.ok("power-button")
        self.assertEqual(json.loads(self.ok("--json", "info"))["state"],
                         "SHUTDOWN")
        self.ok("delete")
        rc, _, err = self.ctl("info")
        self.assertEqual(rc, 1)
        self.assertIn("no VM has been created", err)

    def test_usage_errors(self):
        for args in (["create", "--kernel", "/k", "--bogus"],
                     ["create", "--kernel", "/k", "--memory", "size=12Q"],
                     ["create", "--kernel", "/k", "--log-level", "debug"],
                     ["create", "--kernel", "/k", "--exit-stats"],
                     ["add-disk", "readonly=on"],
                     ["add-vsock", "cid=x,socket=/s"],
                     ["pause", "extra"],
                     ["no-such-command"]):
            rc, out, err = self.ctl(*args)
            self.assertEqual(rc, 2, (args, err))
            self.assertEqual(out, "")
            self.assertTrue(err.startswith("bulkhead-ctl: "), err)
        rc, _, err = self.ctl("ping", socket=False)
        self.assertEqual(rc, 2)
        self.assertIn("--api-socket is required", err)
        rc, _, _ = self.ctl("--timeout", "0", "ping")
        self.assertEqual(rc, 2)

    def test_no_server(self):
        rc, out, err = self.ctl("--api-socket",
                                os.path.join(self.tmp.name, "none.sock"),
                                "ping", socket=False)
        self.assertEqual(rc, 3)
        self.assertIn("No such file or directory", err)

    def test_zz_shutdown_vmm(self):
        self.ok("shutdown-vmm")
        self.assertEqual(self.proc.wait(10), 0)
        # Removed by the server on its way out.
        self.assertFalse(os.path.exists(self.path))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--ctl", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
