#!/usr/bin/python3
"""send-migration and receive-migration without KVM: two copies of bulkhead
with real device workers (a disk, an rng) and bh-standin-runner as their
vCPU runner in its "migrate" mode, whose guest keeps writing a generation
number into 16 MiB of guest RAM and logs each page it writes in the dirty
bitmap, as KVM would; a restored stand-in checks that every page holds the
generation written last ("RAM at generation N, consistent").

Checked: a migration over unix (RAM copied in passes), with local=on (the
memfd passed) and over TCP on 127.0.0.1: the source exits 0, the
destination runs with the devices and its RAM consistent, migration-status
on both sides; downtime=1 does not converge and the source runs on; a disk
path that does not open at the destination is refused before any memory,
naming it; abandon-migration on the source; a hostile source (garbage,
another version, a config that does not decode, memory outside RAM, an fd
that is no memfd, a MEMFD unasked) makes the destination refuse by name and
exit 1; a hostile destination (a refusal, garbage, a closed connection)
leaves the source running with its fds as before; bad requests.

Usage: test_migration_api.py --bulkhead PATH --standin PATH --rng PATH
                             --ctl PATH --kernel BZIMAGE
"""
import argparse
import array
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ARGS = None
WAIT_S = 30
MIB = 1 << 20
RAM = 256 * MIB

START, CONFIG, MEMORY, MEMFD, STATE, COMPLETE, ABANDON, RESPONSE = range(1, 9)


def varint(n):
    out = b""
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    """A protobuf field: an int as a varint, bytes or str length-delimited."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def frame(t, payload=b"", version=1):
    return b"BHMG" + struct.pack("<HHQ", version, t, len(payload)) + payload


def mig_start(local=False, ram=RAM, version=1):
    return frame(START, field(1, version) + field(2, int(local)) +
                 field(3, ram) + field(4, 4096))


def vm_config(kernel, disk=None):
    c = field(2, field(1, kernel)) + field(4, field(1, RAM))
    if disk:
        c += field(7, field(1, disk))
    return frame(CONFIG, c)


def read_frame(s, limit=WAIT_S):
    s.settimeout(limit)
    hdr = b""
    while len(hdr) < 16:
        b = s.recv(16 - len(hdr))
        if not b:
            return None
        hdr += b
    magic, version, t, n = struct.unpack("<4sHHQ", hdr)
    body = b""
    while len(body) < n:
        b = s.recv(n - len(body))
        if not b:
            return None
        body += b
    return t, body


class Migration(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bh-migration-")
        d = self.tmp.name
        shutil.copy2(ARGS.bulkhead, os.path.join(d, "bulkhead"))
        os.symlink(ARGS.standin, os.path.join(d, "bulkhead-vcpu"))
        for kind in ("blk", "console", "net", "pmem", "rng", "vsock"):
            os.symlink(os.path.join(os.path.dirname(ARGS.rng),
                                    f"bulkhead-dev-{kind}"),
                       os.path.join(d, f"bulkhead-dev-{kind}"))
        self.procs = []
        self.disk = os.path.join(d, "disk.img")
        with open(self.disk, "wb") as f:
            f.write(b"migration disk\n")
            f.truncate(MIB)

    def tearDown(self):
        reports = []
        for p, err in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            text = self.log(err)
            if os.environ.get("BH_TEST_LOG"):
                print(text, file=sys.stderr)
            # A sanitizer build's report fails the test.
            reports += [line for line in text.splitlines()
                        if "AddressSanitizer" in line or
                        "runtime error:" in line or
                        "LeakSanitizer" in line]
            err.close()
        self.tmp.cleanup()
        self.assertEqual(reports, [])

    def bulkhead(self, name, *opts):
        sock = os.path.join(self.tmp.name, f"{name}.sock")
        err = open(os.path.join(self.tmp.name, f"{name}.err"), "w+")
        p = subprocess.Popen([os.path.join(self.tmp.name, "bulkhead"),
                              "--name", "migrate", "--api-socket",
                              f"path={sock}"] + list(opts),
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        self.procs.append((p, err))
        deadline = time.monotonic() + WAIT_S
        while self.ctl(sock, "ping", timeout=5)[0] != 0:
            if p.poll() is not None or time.monotonic() > deadline:
                self.fail(f"{name} did not come up:\n{self.log(err)}")
            time.sleep(0.05)
        return p, sock, err

    def source(self, name="src"):
        p, sock, err = self.bulkhead(
            name, "--kernel", ARGS.kernel, "--memory", f"size={RAM}",
            "--rng", "", "--serial", "off", "--disk", f"path={self.disk}")
        self.wait_log(err, "now migrate", p)
        return p, sock, err

    @staticmethod
    def log(err):
        err.seek(0)
        return err.read()

    def wait_log(self, err, text, proc, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(err):
                return
            if proc.poll() is not None and text not in self.log(err):
                break
            time.sleep(0.05)
        self.fail(f"no {text!r} in the log:\n{self.log(err)}")

    def ctl(self, sock, *cmd, timeout=WAIT_S):
        p = subprocess.run([ARGS.ctl, "--api-socket", sock, "--json",
                            "--timeout", str(timeout)] + list(cmd),
                           capture_output=True, text=True,
                           timeout=timeout * 2 + 5)
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            out = p.stdout
        return p.returncode, out, p.stderr

    def ctl_bg(self, sock, *cmd):
        p = subprocess.Popen([ARGS.ctl, "--api-socket", sock, "--json",
                              "--timeout", "120"] + list(cmd),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        return p

    def bg_result(self, p, timeout=120):
        out, err = p.communicate(timeout=timeout)
        try:
            return p.returncode, json.loads(out) if out.strip() else None
        except ValueError:
            return p.returncode, out + err

    def state(self, sock):
        rc, out, err = self.ctl(sock, "info")
        self.assertEqual(rc, 0, err)
        return out["state"]

    def fdlist(self, pid):
        out = []
        for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
            try:
                out.append(f"{fd}:{os.readlink(f'/proc/{pid}/fd/{fd}')}")
            except OSError:
                pass
        return out

    def nfds(self, pid):
        n = len(os.listdir(f"/proc/{pid}/fd"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.2)
            m = len(os.listdir(f"/proc/{pid}/fd"))
            if m == n:
                break
            n = m
        return n

    def receiver(self, name, url):
        p, sock, err = self.bulkhead(name)
        recv = self.ctl_bg(sock, "receive-migration", url)
        if url.startswith("unix:"):
            deadline = time.monotonic() + WAIT_S
            while not os.path.exists(url[5:]):
                if time.monotonic() > deadline or recv.poll() is not None:
                    self.fail(f"{url} never appeared:\n{self.log(err)}")
                time.sleep(0.05)
        else:
            self.wait_log(err, "listening on", p)
        return p, sock, err, recv

    def migrate_ok(self, url, opts=""):
        src, ssock, serr = self.source()
        dst, dsock, derr, recv = self.receiver("dst", url)
        rc, out, err = self.ctl(ssock, "send-migration", url + opts,
                                timeout=120)
        self.assertEqual(rc, 0, f"{err}\nsource:\n{self.log(serr)}\n"
                         f"destination:\n{self.log(derr)}")
        st = out.get("status", out)
        self.assertEqual(st["phase"], "done")
        self.assertEqual(st["role"], "send")
        self.assertEqual(src.wait(WAIT_S), 0, self.log(serr))
        rrc, rout = self.bg_result(recv)
        self.assertEqual(rrc, 0, f"{rout}\n{self.log(derr)}")
        self.assertIn("RAM at generation", self.log(derr))
        self.assertNotIn("RAM BAD", self.log(derr))
        self.assertEqual(self.state(dsock), "RUNNING")
        rc, info, _ = self.ctl(dsock, "info")
        ids = sorted(d["id"] for d in info.get("devices", []))
        self.assertEqual(ids, ["disk0", "rng0"])
        rc, ms, _ = self.ctl(dsock, "migration-status")
        self.assertEqual(ms.get("status", ms)["role"], "receive")
        self.assertEqual(ms.get("status", ms)["phase"], "done")
        # The destination runs on and ends as any VMM.
        rc, _, err = self.ctl(dsock, "shutdown-vmm")
        self.assertEqual(rc, 0, err)
        self.assertEqual(dst.wait(WAIT_S), 0)
        return st, self.log(derr)

    def test_unix(self):
        st, dlog = self.migrate_ok(
            f"unix:{self.tmp.name}/mig.sock", ",downtime=30000")
        self.assertFalse(st.get("local", False))
        self.assertGreater(int(st["pages_sent"]), 4096)
        self.assertGreater(int(st["bytes_sent"]), 16 * MIB)
        # The socket file went once the source connected.
        self.assertFalse(os.path.exists(f"{self.tmp.name}/mig.sock"))

    def test_local(self):
        st, dlog = self.migrate_ok(f"unix:{self.tmp.name}/mig.sock",
                                   ",local=on")
        self.assertTrue(st["local"])
        self.assertEqual(int(st.get("pages_sent", 0)), 0)

    def test_tcp(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        st, dlog = self.migrate_ok(f"tcp:127.0.0.1:{port}",
                                   ",downtime=30000")
        self.assertGreater(int(st["pages_sent"]), 4096)

    def test_paused_source(self):
        """A paused VM arrives paused, and resumes there."""
        src, ssock, serr = self.source()
        rc, _, err = self.ctl(ssock, "pause")
        self.assertEqual(rc, 0, err)
        url = f"unix:{self.tmp.name}/mig.sock"
        dst, dsock, derr, recv = self.receiver("dst", url)
        rc, out, err = self.ctl(ssock, "send-migration", url, timeout=120)
        self.assertEqual(rc, 0, f"{err}\n{self.log(serr)}\n{self.log(derr)}")
        self.assertEqual(src.wait(WAIT_S), 0)
        self.assertEqual(self.bg_result(recv)[0], 0)
        self.assertEqual(self.state(dsock), "PAUSED")
        rc, _, err = self.ctl(dsock, "resume")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.state(dsock), "RUNNING")
        self.assertIn("RAM at generation", self.log(derr))

    def test_no_convergence(self):
        src, ssock, serr = self.source()
        url = f"unix:{self.tmp.name}/mig.sock"
        dst, dsock, derr, recv = self.receiver("dst", url)
        rc, out, err = self.ctl(ssock, "send-migration", url + ",downtime=1",
                                timeout=120)
        self.assertEqual(rc, 1, out)
        self.assertIn("did not converge", out["error"]["message"])
        self.assertIn("5 dirty passes", out["error"]["message"])
        self.assertEqual(self.state(ssock), "RUNNING")
        rc, ms, _ = self.ctl(ssock, "migration-status")
        self.assertEqual(ms.get("status", ms)["phase"], "failed")
        self.assertIn("did not converge", ms.get("status", ms)["error"])
        self.assertEqual(dst.wait(WAIT_S), 1)
        rrc, rout = self.bg_result(recv)
        self.assertEqual(rrc, 1)
        self.assertIn("the source gave up", str(rout))
        # The source can be sent again once this one failed.
        self.assertIsNone(src.poll())

    def test_disk_missing_at_destination(self):
        src, ssock, serr = self.source()
        os.rename(self.disk, self.disk + ".away")
        url = f"unix:{self.tmp.name}/mig.sock"
        dst, dsock, derr, recv = self.receiver("dst", url)
        rc, out, err = self.ctl(ssock, "send-migration", url, timeout=60)
        self.assertEqual(rc, 1, out)
        msg = out["error"]["message"]
        self.assertIn("the destination refused", msg)
        self.assertIn("disk.img", msg)
        rc, ms, _ = self.ctl(ssock, "migration-status")
        self.assertEqual(int(ms.get("status", ms).get("pages_sent", 0)), 0)
        self.assertEqual(self.state(ssock), "RUNNING")
        self.assertEqual(dst.wait(WAIT_S), 1)
        os.rename(self.disk + ".away", self.disk)

    def test_abandon_and_busy(self):
        src, ssock, serr = self.source()
        rc, out, _ = self.ctl(ssock, "abandon-migration")
        self.assertEqual(rc, 1)
        self.assertEqual(out["error"]["code"], "NOT_FOUND")
        rc, ms, _ = self.ctl(ssock, "migration-status")
        self.assertEqual(ms.get("status", ms)["phase"], "none")
        fds0 = self.nfds(src.pid)
        # A destination that takes START and CONFIG, then reads nothing.
        path = f"{self.tmp.name}/slow.sock"
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(1)
        held = []

        def slow():
            c, _ = ls.accept()
            held.append(c)
            for _ in range(2):
                if read_frame(c) is None:
                    return
                c.sendall(frame(RESPONSE, field(1, 1)))
        t = threading.Thread(target=slow, daemon=True)
        t.start()
        send = self.ctl_bg(ssock, "send-migration", f"unix:{path}")
        deadline = time.monotonic() + WAIT_S
        while True:
            rc, ms, _ = self.ctl(ssock, "migration-status")
            if ms.get("status", ms)["phase"] == "memory":
                break
            self.assertLess(time.monotonic(), deadline, ms)
            time.sleep(0.05)
        # The VM takes no other change meanwhile.
        rc, out, _ = self.ctl(ssock, "pause")
        self.assertEqual(rc, 1)
        self.assertEqual(out["error"]["code"], "BUSY")
        rc, out, err = self.ctl(ssock, "abandon-migration")
        self.assertEqual(rc, 0, err)
        rc, out = self.bg_result(send)
        self.assertEqual(rc, 1)
        self.assertIn("abandoned through the API", str(out))
        self.assertEqual(self.state(ssock), "RUNNING")
        t.join(5)
        for c in held:
            c.close()
        ls.close()
        self.assertLessEqual(self.nfds(src.pid), fds0, self.fdlist(src.pid))
        rc, out, err = self.ctl(ssock, "pause")
        self.assertEqual(rc, 0, err)

    def hostile_destination(self, answer):
        src, ssock, serr = self.source()
        fds0 = self.nfds(src.pid)
        path = f"{self.tmp.name}/evil.sock"
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(1)

        def serve():
            c, _ = ls.accept()
            read_frame(c)
            if answer:
                c.sendall(answer)
            c.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        rc, out, err = self.ctl(ssock, "send-migration", f"unix:{path}",
                                timeout=60)
        t.join(5)
        ls.close()
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.state(ssock), "RUNNING")
        self.assertLessEqual(self.nfds(src.pid), fds0, self.fdlist(src.pid))
        # Its terminal input is still there (a migration once closed fd 0).
        self.assertEqual(os.readlink(f"/proc/{src.pid}/fd/0"), "/dev/null")
        return out["error"]["message"]

    def test_hostile_destination(self):
        self.assertIn("the destination refused: no room here",
                      self.hostile_destination(
                          frame(RESPONSE, field(1, 0) +
                                field(2, "no room here"))))

    def test_hostile_destination_garbage(self):
        self.assertIn("not a bulkhead migration stream",
                      self.hostile_destination(b"HTTP/1.1 400 Bad\r\n\r\n"))

    def test_hostile_destination_gone(self):
        self.assertIn("the connection closed",
                      self.hostile_destination(None))

    def hostile_source(self, frames, want, fd=None, local=False):
        url = f"unix:{self.tmp.name}/mig.sock"
        dst, dsock, derr, recv = self.receiver("dst", url)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(url[5:])
        answers = []
        for f in frames:
            if isinstance(f, tuple):
                c.sendmsg([f[0]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", [f[1]]))])
            else:
                try:
                    c.sendall(f)
                except OSError:
                    break
            if f[0:4] == b"BHMG" or isinstance(f, tuple):
                t = struct.unpack("<H", (f[0] if isinstance(f, tuple)
                                         else f)[6:8])[0]
                if t in (START, CONFIG, MEMFD):
                    a = read_frame(c)
                    answers.append(a)
                    if a is None or a[0] != RESPONSE or a[1][:2] != b"\x08\x01":
                        break
        self.assertEqual(dst.wait(WAIT_S), 1, self.log(derr))
        c.close()
        rrc, rout = self.bg_result(recv)
        self.assertEqual(rrc, 1)
        self.assertIn(want, str(rout))
        self.assertIn(want, self.log(derr))
        self.assertNotIn("RUNNING", str(self.ctl(dsock, "info")[1]))
        return str(rout)

    def test_hostile_source_garbage(self):
        self.hostile_source([b"GET / HTTP/1.1\r\n\r\n"],
                            "not a bulkhead migration stream")

    def test_hostile_source_version(self):
        self.hostile_source([frame(START, b"", version=7)],
                            "migration stream version 7")

    def test_hostile_source_start(self):
        self.hostile_source([mig_start(ram=RAM + 1)], "START: version 1")

    def test_hostile_source_config(self):
        self.hostile_source([mig_start(), frame(CONFIG, b"\xff\xff\xff")],
                            "CONFIG is not a VM configuration")

    def test_hostile_source_config_mismatch(self):
        self.hostile_source([mig_start(ram=2 * RAM),
                             vm_config(ARGS.kernel)],
                            "START said")

    def test_hostile_source_memory_outside(self):
        self.hostile_source([mig_start(), vm_config(ARGS.kernel),
                             frame(MEMORY, struct.pack("<Q", RAM) +
                                   b"\0" * 4096)],
                            "inside the 268435456 bytes of guest RAM")

    def test_hostile_source_oversized(self):
        self.hostile_source([mig_start(), vm_config(ARGS.kernel),
                             b"BHMG" + struct.pack("<HHQ", 1, STATE,
                                                   1 << 40)],
                            "STATE message of 1099511627776 bytes")

    def test_hostile_source_memfd_unasked(self):
        r, w = os.pipe()
        try:
            self.hostile_source([mig_start(), vm_config(ARGS.kernel),
                                 (frame(MEMFD), r)],
                                "an unexpected MEMFD")
        finally:
            os.close(r)
            os.close(w)

    def test_hostile_source_not_a_memfd(self):
        r, w = os.pipe()
        try:
            self.hostile_source([mig_start(local=True),
                                 vm_config(ARGS.kernel),
                                 (frame(MEMFD), r)],
                                "is not a memfd")
        finally:
            os.close(r)
            os.close(w)

    def test_hostile_source_state_first(self):
        self.hostile_source([mig_start(), vm_config(ARGS.kernel),
                             frame(COMPLETE, b"")],
                            "a COMPLETE message in phase memory")

    def test_abandon_destination(self):
        """abandon-migration on the receiving side: the source is told
        with ABANDON, and the receiving bulkhead exits 1."""
        url = f"unix:{self.tmp.name}/mig.sock"
        dst, dsock, derr, recv = self.receiver("dst", url)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(url[5:])
        for f in (mig_start(), vm_config(ARGS.kernel)):
            c.sendall(f)
            a = read_frame(c)
            self.assertEqual(a[0], RESPONSE, self.log(derr))
        rc, out, err = self.ctl(dsock, "abandon-migration")
        self.assertEqual(rc, 0, err)
        a = read_frame(c)
        self.assertEqual(a[0], ABANDON)
        self.assertIn(b"abandoned through the API", a[1])
        self.assertEqual(dst.wait(WAIT_S), 1)
        rrc, rout = self.bg_result(recv)
        self.assertEqual(rrc, 1)
        c.close()

    def test_bad_requests(self):
        src, ssock, serr = self.source()
        for url, code, text in (
                ("ftp:x", "INVALID_ARGUMENT", "expected unix:/PATH"),
                ("tcp:127.0.0.1:6000,local=on", "INVALID_ARGUMENT",
                 "needs a unix: URL"),
                ("tcp:0.0.0.0:6000", "INVALID_ARGUMENT", "0.0.0.0"),
                (f"unix:{self.tmp.name}/none.sock", "HOST_ERROR", "")):
            rc, out, err = self.ctl(ssock, "send-migration", url)
            self.assertEqual(rc, 1, (url, out, err))
            self.assertEqual(out["error"]["code"], code, (url, out))
            self.assertIn(text, out["error"]["message"])
        rc, out, err = self.ctl(ssock, "receive-migration",
                                f"unix:{self.tmp.name}/r.sock")
        self.assertEqual(out["error"]["code"], "INVALID_STATE")
        rc, out, err = self.ctl(ssock, "send-migration",
                                f"unix:{self.tmp.name}/x.sock,downtime=0")
        self.assertEqual(rc, 2)
        self.assertIn("downtime=0", err)
        self.assertEqual(self.state(ssock), "RUNNING")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    for a in ("bulkhead", "standin", "rng", "ctl", "kernel"):
        p.add_argument("--" + a, required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
