#!/usr/bin/python3
"""Interop test of the management API: a Python client that frames its
messages itself (no Bulkhead C code on this side) and encodes them with code
that protoc generated from proto/api.proto, against bh-api-test-server.

Usage: test_interop.py --server PATH --pydir DIR_WITH_api_pb2
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

# The frame header of every Bulkhead socket, host byte order:
# uint32 body length, uint16 type, uint8 fd count, uint8 flags.
HDR = struct.Struct("=IHBB")
MAX_FRAME = 1024 * 1024

ARGS = None
pb = None  # api_pb2, imported once the path is known


class Closed(Exception):
    """The server ended the connection."""


class Conn:
    """One API connection, framed by hand."""

    def __init__(self, path, hello=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.next_id = 0
        if hello:
            self.hello()

    def close(self):
        self.sock.close()

    def send_frame(self, ftype, body, nfds=0, flags=0):
        self.sock.sendall(HDR.pack(len(body), ftype, nfds, flags) + body)

    def _read(self, n):
        data = b""
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed()
            data += chunk
        return data

    def recv_frame(self):
        length, ftype, nfds, flags = HDR.unpack(self._read(HDR.size))
        assert nfds == 0 and flags == 0, (nfds, flags)
        assert length <= MAX_FRAME, length
        return ftype, self._read(length)

    def recv_response(self):
        ftype, body = self.recv_frame()
        assert ftype == pb.FRAME_RESPONSE, ftype
        resp = pb.Response()
        resp.ParseFromString(body)
        return resp

    def hello(self, version=1):
        self.send_frame(pb.FRAME_HELLO,
                        pb.Hello(version=version,
                                 role="test_interop").SerializeToString())
        ftype, body = self.recv_frame()
        assert ftype == pb.FRAME_HELLO, ftype
        h = pb.Hello()
        h.ParseFromString(body)
        self.server_hello = h
        return h

    def call(self, op, msg=None):
        self.next_id += 1
        req = pb.Request(id=self.next_id)
        getattr(req, op).CopyFrom(msg if msg is not None
                                  else getattr(req, op).__class__())
        self.send_frame(pb.FRAME_REQUEST, req.SerializeToString())
        resp = self.recv_response()
        assert resp.id == self.next_id, (resp.id, self.next_id)
        return resp


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7f, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def make_config():
    c = pb.VmConfig(name="web1")
    c.payload.kernel = "/boot/vmlinuz"
    c.payload.initramfs = "/boot/initrd.img"
    c.payload.cmdline = "console=ttyS0 root=/dev/vda \u00e9t\u00e9"
    c.cpus.boot = 2
    c.memory.size = 1 << 30
    c.serial.mode = pb.CONSOLE_MODE_FILE
    c.serial.path = "/var/log/web1.serial"
    d = c.disks.add()
    d.path = "/var/lib/vm/root.img"
    d.readonly = True
    d.num_queues = 2
    d.queue_size = 128
    d.id = "root"
    d.serial = "SER123"
    d = c.disks.add()
    d.path = "/var/lib/vm/data,1.img"
    d.direct = True
    c.rng.src = ""
    return c


class ApiInterop(unittest.TestCase):
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
        cls.log.seek(0)
        log = cls.log.read()
        cls.log.close()
        cls.tmp.cleanup()
        if os.environ.get("VERBOSE"):
            sys.stderr.write(log)

    def setUp(self):
        self.assertIsNone(self.proc.poll(), "the server has died")
        self.c = Conn(self.path)
        resp = self.c.call("delete")
        self.assertEqual(resp.error.code, pb.ERROR_NONE, resp)

    def tearDown(self):
        self.c.close()
        self.assertIsNone(self.proc.poll(), "the server has died")

    def assertError(self, resp, code, text=None):
        self.assertEqual(resp.error.code, code, resp)
        self.assertEqual(resp.WhichOneof("result"), None, resp)
        if text is not None:
            self.assertIn(text, resp.error.message)

    def test_handshake(self):
        h = self.c.server_hello
        self.assertEqual(h.version, pb.API_VERSION_CURRENT)
        self.assertEqual(h.role, "bulkhead-api")

    def test_ping(self):
        resp = self.c.call("ping")
        self.assertEqual(resp.error.code, pb.ERROR_NONE)
        self.assertEqual(resp.WhichOneof("result"), "ping")
        p = resp.ping
        self.assertEqual(p.api_version, 1)
        self.assertEqual(p.pid, self.proc.pid)
        self.assertTrue(p.version)
        for op in ("ping", "create", "delete", "boot", "shutdown", "reboot",
                   "power-button", "pause", "resume", "info", "counters",
                   "shutdown-vmm"):
            self.assertIn(op, p.operations)
        for op in ("snapshot", "restore", "resize", "add-disk", "add-net",
                   "send-migration"):
            self.assertNotIn(op, p.operations)

    def test_create_info_round_trip(self):
        sent = make_config()
        resp = self.c.call("create", pb.CreateRequest(config=sent))
        self.assertEqual(resp.error.code, pb.ERROR_NONE, resp)
        self.assertEqual(resp.WhichOneof("result"), "create")

        resp = self.c.call("info")
        self.assertEqual(resp.error.code, pb.ERROR_NONE, resp)
        info = resp.info.info
        self.assertEqual(info.state, pb.CREATED)
        self.assertEqual(info.memory_actual_size, 1 << 30)
        # What was sent comes back, with the defaults spelled out.
        want = make_config()
        want.console.mode = pb.CONSOLE_MODE_OFF
        want.serial.max_size = 64 << 20
        want.serial.on_full = pb.OUTPUT_FULL_TRUNCATE
        want.disks[1].num_queues = 1
        want.disks[1].queue_size = 256
        want.disks[1].id = "disk1"
        want.rng.src = "/dev/urandom"
        want.restart_devices.enabled = False
        want.restart_devices.max = 3
        self.assertEqual(info.config, want)
        self.assertEqual([(d.id, d.type, d.pci_address)
                          for d in info.devices],
                         [("root", "virtio-blk", ""),
                          ("disk1", "virtio-blk", ""),
                          ("rng0", "virtio-rng", "")])

    def test_create_defaults(self):
        c = pb.VmConfig()
        c.payload.kernel = "/k"
        self.assertEqual(self.c.call("create", pb.CreateRequest(config=c))
                         .error.code, pb.ERROR_NONE)
        cfg = self.c.call("info").info.info.config
        self.assertEqual(cfg.name, "vm")
        self.assertEqual(cfg.cpus.boot, 1)
        self.assertEqual(cfg.memory.size, 512 << 20)
        self.assertEqual(cfg.serial.mode, pb.CONSOLE_MODE_TTY)
        self.assertEqual(cfg.console.mode, pb.CONSOLE_MODE_OFF)
        self.assertEqual(len(cfg.disks), 0)
        self.assertFalse(cfg.HasField("rng"))
        self.assertFalse(cfg.restart_devices.enabled)
        self.assertEqual(cfg.restart_devices.max, 3)

    def test_create_net_vsock(self):
        c = make_config()
        n = c.net.add()
        n.tap = "bh0"
        n.ip = "192.168.249.1"
        n.mac = "52:54:00:12:34:56"
        n.mtu = 9000
        n = c.net.add()
        n.tap = "bh1"
        n.num_queues = 4
        n.id = "lan"
        c.vsock.cid = 3
        c.vsock.socket = "/run/bulkhead/web1.vsock"
        resp = self.c.call("create", pb.CreateRequest(config=c))
        self.assertEqual(resp.error.code, pb.ERROR_NONE, resp)
        info = self.c.call("info").info.info
        got = info.config
        self.assertEqual(len(got.net), 2)
        # The defaults are spelled out; an unset mac stays empty.
        self.assertEqual(got.net[0], pb.NetConfig(
            tap="bh0", ip="192.168.249.1", mask="255.255.255.0",
            mac="52:54:00:12:34:56", num_queues=2, queue_size=256,
            id="net0", mtu=9000))
        self.assertEqual(got.net[1], pb.NetConfig(
            tap="bh1", num_queues=4, queue_size=256, id="lan", mtu=1500))
        self.assertEqual(got.vsock, pb.VsockConfig(
            cid=3, socket="/run/bulkhead/web1.vsock", id="vsock0"))
        self.assertEqual([(d.id, d.type) for d in info.devices],
                         [("root", "virtio-blk"), ("disk1", "virtio-blk"),
                          ("net0", "virtio-net"), ("lan", "virtio-net"),
                          ("vsock0", "virtio-vsock"),
                          ("rng0", "virtio-rng")])

    def test_create_refused_net_vsock(self):
        def net(**kw):
            def change(c):
                n = c.net.add()
                n.tap = "bh0"
                for k, v in kw.items():
                    setattr(n, k, v)
            return change

        def vsock(**kw):
            def change(c):
                c.vsock.cid = 3
                c.vsock.socket = "/run/v.sock"
                for k, v in kw.items():
                    setattr(c.vsock, k, v)
            return change

        cases = [
            (net(tap=""), "net[0].tap: required (the API cannot pass file "
             "descriptors: fd= is for the command line only)"),
            (net(tap="a/b"), "net[0].tap: a/b: not an interface name"),
            (net(mac="52:54:00:zz:34:56"),
             "net[0].mac: 52:54:00:zz:34:56: not a MAC address"),
            (net(mac="01:00:5e:00:00:01"), "a multicast address"),
            (net(ip="10.0.0.1", mask="255.0.255.0"),
             "net[0].mask: 255.0.255.0: not a contiguous netmask"),
            (net(mask="255.255.255.0"), "net[0].mask: needs ip"),
            (net(num_queues=3), "net[0].num_queues: 3 is odd"),
            (net(queue_size=32), "net[0].queue_size: 32 is out of range"),
            (net(mtu=67), "net[0].mtu: 67 is out of range 68..65535"),
            (net(id="root"), "net[0].id: 'root' is used by disks[0]"),
            (vsock(cid=2), "vsock.cid: 2 is out of range 3..4294967294"),
            (vsock(socket=""), "vsock.socket: required"),
            (vsock(socket="/" + "s" * 107), "vsock.socket:"),
            (vsock(id="rng0"), "vsock.id: 'rng0' is the rng's id"),
        ]
        for change, msg in cases:
            c = make_config()
            change(c)
            resp = self.c.call("create", pb.CreateRequest(config=c))
            self.assertError(resp, pb.INVALID_ARGUMENT, msg)
        self.assertError(self.c.call("info"), pb.INVALID_STATE,
                         "info: no VM has been created")

    def test_create_refused_fields(self):
        cases = [
            (lambda c: c.ClearField("payload"), "payload.kernel"),
            (lambda c: setattr(c.memory, "size", 1000), "memory.size"),
            (lambda c: setattr(c.cpus, "boot", 0), "cpus.boot"),
            (lambda c: setattr(c.disks[0], "queue_size", 100),
             "disks[0].queue_size"),
            (lambda c: setattr(c, "name", "a b"), "name"),
            (lambda c: setattr(c.restart_devices, "max", 101),
             "restart_devices.max"),
            (lambda c: setattr(c.serial, "max_size", 4095),
             "serial.max_size"),
            (lambda c: setattr(c.serial, "on_full", 7), "serial.on_full"),
            (lambda c: (setattr(c.console, "mode", pb.CONSOLE_MODE_TTY),
                        setattr(c.serial, "mode", pb.CONSOLE_MODE_OFF),
                        c.serial.ClearField("path"),
                        setattr(c.console, "on_full", pb.OUTPUT_FULL_STOP)),
             "console.on_full"),
        ]
        for change, field in cases:
            c = make_config()
            change(c)
            resp = self.c.call("create", pb.CreateRequest(config=c))
            self.assertError(resp, pb.INVALID_ARGUMENT, field)
        # Nothing was created by the refused requests.
        self.assertError(self.c.call("info"), pb.INVALID_STATE,
                         "info: no VM has been created")

    def test_lifecycle_and_states(self):
        self.assertError(self.c.call("pause"), pb.INVALID_STATE,
                         "pause: no VM has been created (state: NotCreated)")
        self.assertEqual(self.c.call("create", pb.CreateRequest(
            config=make_config())).error.code, pb.ERROR_NONE)
        self.assertError(self.c.call("pause"), pb.INVALID_STATE,
                         "pause: the VM is not running (state: Created)")
        self.assertError(self.c.call("create", pb.CreateRequest(
            config=make_config())), pb.INVALID_STATE,
            "create: a VM already exists (state: Created)")
        # boot answers from the event loop, after a while.
        self.assertEqual(self.c.call("boot").error.code, pb.ERROR_NONE)
        info = self.c.call("info").info.info
        self.assertEqual(info.state, pb.RUNNING)
        self.assertEqual(info.devices[0].pci_address, "0000:00:01.0")
        self.assertError(self.c.call("resume"), pb.INVALID_STATE,
                         "resume: the VM is not paused (state: Running)")
        self.assertEqual(self.c.call("pause").error.code, pb.ERROR_NONE)
        self.assertEqual(self.c.call("info").info.info.state, pb.PAUSED)
        self.assertEqual(self.c.call("resume").error.code, pb.ERROR_NONE)
        counters = self.c.call("counters").counters
        self.assertEqual(counters.devices["root"].values["answer"], 42)
        self.assertEqual(self.c.call("shutdown").error.code, pb.ERROR_NONE)
        self.assertEqual(self.c.call("info").info.info.state, pb.SHUTDOWN)
        self.assertEqual(self.c.call("boot").error.code, pb.ERROR_NONE)
        self.assertEqual(self.c.call("delete").error.code, pb.ERROR_NONE)
        self.assertError(self.c.call("info"), pb.INVALID_STATE)

    def test_not_supported_yet(self):
        resp = self.c.call("snapshot",
                           pb.SnapshotRequest(destination_url="file:///x"))
        self.assertError(resp, pb.NOT_SUPPORTED_YET, "snapshot:")
        resp = self.c.call("add_net", pb.AddNetRequest())
        self.assertError(resp, pb.NOT_SUPPORTED_YET, "add-net:")

    def test_request_without_operation(self):
        self.c.send_frame(pb.FRAME_REQUEST,
                          pb.Request(id=77).SerializeToString())
        self.assertError(self.c.recv_response(), pb.INVALID_ARGUMENT)
        # An operation from a newer API: an unknown field number.
        body = pb.Request(id=78).SerializeToString() + b"\xd2\x0f\x00"
        self.c.send_frame(pb.FRAME_REQUEST, body)
        resp = self.c.recv_response()
        self.assertEqual(resp.id, 78)
        self.assertError(resp, pb.NOT_SUPPORTED_YET)
        self.assertEqual(self.c.call("ping").error.code, pb.ERROR_NONE)

    def test_garbage_body_keeps_connection(self):
        self.c.send_frame(pb.FRAME_REQUEST, b"\xff\xff\xff\xff")
        resp = self.c.recv_response()
        self.assertEqual(resp.id, 0)
        self.assertError(resp, pb.PROTOCOL)
        self.assertEqual(self.c.call("ping").error.code, pb.ERROR_NONE)

    def expect_dropped(self, conn, code):
        resp = conn.recv_response()
        self.assertEqual(resp.id, 0)
        self.assertError(resp, code)
        with self.assertRaises(Closed):
            conn.recv_frame()
        conn.close()

    def test_garbage_bytes(self):
        g = Conn(self.path)
        g.sock.sendall(b"\x00garbage that is no header at all\xff" * 8)
        self.expect_dropped(g, pb.PROTOCOL)
        # The server lives on and serves the others.
        self.assertEqual(self.c.call("ping").error.code, pb.ERROR_NONE)
        self.assertEqual(Conn(self.path).call("ping").error.code,
                         pb.ERROR_NONE)

    def test_oversized_frame(self):
        g = Conn(self.path)
        g.sock.sendall(HDR.pack(MAX_FRAME + 1, pb.FRAME_REQUEST, 0, 0))
        self.expect_dropped(g, pb.PROTOCOL)
        self.assertEqual(self.c.call("ping").error.code, pb.ERROR_NONE)

    def test_largest_frame_is_read(self):
        # A body of exactly the limit is framing-wise fine: the request
        # is read whole, padded with an unknown field.
        req = pb.Request(id=5, ping=pb.PingRequest()).SerializeToString()
        tag = varint((999 << 3) | 2)
        pad = MAX_FRAME - len(req) - len(tag) - 3
        self.assertEqual(len(varint(pad)), 3)
        body = req + tag + varint(pad) + b"\0" * pad
        self.assertEqual(len(body), MAX_FRAME)
        self.c.send_frame(pb.FRAME_REQUEST, body)
        resp = self.c.recv_response()
        self.assertEqual(resp.id, 5)
        self.assertEqual(resp.error.code, pb.ERROR_NONE, resp)

    def test_no_hello_first(self):
        g = Conn(self.path, hello=False)
        ftype, _ = g.recv_frame()
        self.assertEqual(ftype, pb.FRAME_HELLO)
        g.send_frame(pb.FRAME_REQUEST, pb.Request(
            id=1, ping=pb.PingRequest()).SerializeToString())
        self.expect_dropped(g, pb.PROTOCOL)

    def test_wrong_version(self):
        g = Conn(self.path, hello=False)
        g.send_frame(pb.FRAME_HELLO,
                     pb.Hello(version=2, role="future").SerializeToString())
        ftype, _ = g.recv_frame()
        self.assertEqual(ftype, pb.FRAME_HELLO)
        self.expect_dropped(g, pb.UNSUPPORTED_VERSION)

    def test_fds_refused(self):
        g = Conn(self.path)
        r, w = os.pipe()
        try:
            socket.send_fds(g.sock, [HDR.pack(0, pb.FRAME_REQUEST, 1, 0)],
                            [r])
        finally:
            os.close(r)
            os.close(w)
        self.expect_dropped(g, pb.PROTOCOL)
        self.assertEqual(self.c.call("ping").error.code, pb.ERROR_NONE)

    def test_unknown_frame_type(self):
        g = Conn(self.path)
        g.send_frame(300, b"")
        self.expect_dropped(g, pb.PROTOCOL)

    def test_truncated_frame_then_close(self):
        g = Conn(self.path)
        g.sock.sendall(HDR.pack(100, pb.FRAME_REQUEST, 0, 0) + b"abc")
        g.close()
        time.sleep(0.1)
        self.assertEqual(self.c.call("ping").error.code, pb.ERROR_NONE)

    def test_pipelined_requests_answered_in_order_of_completion(self):
        self.assertEqual(self.c.call("create", pb.CreateRequest(
            config=make_config())).error.code, pb.ERROR_NONE)
        boot = pb.Request(id=100, boot=pb.BootRequest())
        ping = pb.Request(id=101, ping=pb.PingRequest())
        again = pb.Request(id=102, pause=pb.PauseRequest())
        for r in (boot, ping, again):
            self.c.send_frame(pb.FRAME_REQUEST, r.SerializeToString())
        got = {}
        for _ in range(3):
            resp = self.c.recv_response()
            got[resp.id] = resp
        # ping does not wait for the boot; the pause came while the VM
        # was still booting (Created), so it is refused.
        self.assertEqual(got[101].error.code, pb.ERROR_NONE)
        self.assertEqual(got[100].error.code, pb.ERROR_NONE)
        self.assertError(got[102], pb.INVALID_STATE)


def main():
    global ARGS, pb
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--pydir", required=True)
    ARGS, rest = ap.parse_known_args()
    sys.path.insert(0, ARGS.pydir)
    try:
        import api_pb2
    except ImportError as e:
        sys.exit("cannot import the generated api_pb2 (%s): install "
                 "python3-protobuf (scripts/install-deps)" % e)
    pb = api_pb2
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
