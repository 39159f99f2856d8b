#!/usr/bin/python3
"""Who may use the API and for how long, from outside, with clients of
other users: idle clients are dropped, and the last place is kept for the
server's own user and root, against bh-api-test-server (the real
controller/api.c) with short limits; and bulkhead itself with --api-socket
allow-uid= and allow-gid=, on a socket it creates and on one it inherits
(socket activation), refusing everyone else with PERMISSION_DENIED.

Clients of another user are connected by a forked child that drops to
nobody and hands the connected socket back (SO_PEERCRED is the
connector's), so the test runs as root, as the test machines do; a run
without root fails.

Usage: test_access.py --server PATH --bulkhead PATH --pydir DIR_WITH_api_pb2
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
pb = None
ti = None  # test_interop, for its hand-framed Conn
NOBODY = 65534
WAIT_S = 20


def connect_as(path, uid, gid, groups=()):
    """A socket connected to path by a process of uid, gid and groups."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            socket.send_fds(child, [b"ok"], [s.fileno()])
            os._exit(0)
        except BaseException as e:  # reported by the parent
            try:
                child.sendall(repr(e).encode())
            finally:
                os._exit(1)
    child.close()
    msg, fds, _, _ = socket.recv_fds(parent, 4096, 1)
    os.waitpid(pid, 0)
    parent.close()
    if not fds:
        raise RuntimeError("connecting as uid %d: %s" % (uid, msg.decode()))
    return socket.socket(fileno=fds[0])


def conn_of(sock, hello=True):
    """A test_interop.Conn over an already connected socket."""
    c = ti.Conn.__new__(ti.Conn)
    c.sock = sock
    c.sock.settimeout(10)
    c.next_id = 0
    if hello:
        c.hello()
    return c


class Server:
    """bh-api-test-server on a socket that every user may connect to."""

    def __init__(self, *opts):
        self.tmp = tempfile.TemporaryDirectory()
        os.chmod(self.tmp.name, 0o755)
        self.path = os.path.join(self.tmp.name, "api.sock")
        self.log = open(os.path.join(self.tmp.name, "server.log"), "w+")
        self.proc = subprocess.Popen([ARGS.server, *opts, self.path],
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError("test server did not start: %r" % line)
        # The server makes its socket 0600; the test lets others in.
        os.chmod(self.path, 0o666)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.log.seek(0)
        log = self.log.read()
        self.log.close()
        self.tmp.cleanup()
        if os.environ.get("VERBOSE"):
            sys.stderr.write(log)
        return log


class Limits(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: clients of another user are made by "
                      "setuid")
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.close()

    def assertDropped(self, conn, code, text):
        resp = conn.recv_response()
        self.assertEqual(resp.id, 0)
        self.assertEqual(resp.error.code, code, resp)
        self.assertIn(text, resp.error.message)
        with self.assertRaises(ti.Closed):
            conn.recv_frame()
        conn.close()

    def test_idle_client_dropped(self):
        self.srv = Server("--idle-ms", "700")
        t0 = time.monotonic()
        idle = ti.Conn(self.srv.path)
        busy = ti.Conn(self.srv.path)
        # One ping every 200 ms keeps a client; the other says nothing.
        while time.monotonic() - t0 < 2.5:
            self.assertEqual(busy.call("ping").error.code, pb.ERROR_NONE)
            time.sleep(0.2)
        with self.assertRaises(ti.Closed):
            idle.recv_frame()
        idle.close()
        self.assertEqual(busy.call("ping").error.code, pb.ERROR_NONE)
        busy.close()
        self.assertIn("sent no request for 700 ms; dropping it",
                      self.srv.close())
        self.srv = None

    def test_owner_gets_the_last_place(self):
        # The default limit: 32 places, 31 of them for other users.
        self.srv = Server()
        others = [conn_of(connect_as(self.srv.path, NOBODY, NOBODY))
                  for _ in range(31)]
        late = conn_of(connect_as(self.srv.path, NOBODY, NOBODY),
                       hello=False)
        late.recv_frame()  # the server's hello
        self.assertDropped(late, pb.BUSY,
                           "too many clients (31, and the last place is "
                           "kept for the server's own user and root)")
        # Still connected, idle for far less than 60 s.
        for c in others[:3]:
            self.assertEqual(c.call("ping").error.code, pb.ERROR_NONE)
        # The server's owner (root here) gets in and can end it.
        owner = ti.Conn(self.srv.path)
        self.assertEqual(owner.call("ping").error.code, pb.ERROR_NONE)
        more = ti.Conn(self.srv.path, hello=False)
        more.recv_frame()
        self.assertDropped(more, pb.BUSY, "too many clients (32)")
        self.assertEqual(owner.call("shutdown_vmm").error.code,
                         pb.ERROR_NONE)
        self.assertEqual(self.srv.proc.wait(WAIT_S), 0)
        for c in others:
            c.close()
        owner.close()


class Bulkhead:
    """bulkhead with an API socket and no VM, and its stderr."""

    def __init__(self, api_arg, sock_path, pass_fds=()):
        self.tmp = tempfile.TemporaryDirectory()
        self.err = open(os.path.join(self.tmp.name, "stderr"), "w+")
        self.path = sock_path
        self.proc = subprocess.Popen(
            [ARGS.bulkhead, "--api-socket", api_arg, "--name", "t"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.err, pass_fds=pass_fds)
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                ti.Conn(sock_path).close()
                break
            except OSError:
                if (self.proc.poll() is not None or
                        time.monotonic() > deadline):
                    raise RuntimeError("bulkhead did not listen:\n" +
                                       self.stderr())
                time.sleep(0.05)
        os.chmod(sock_path, 0o666)

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()
        self.tmp.cleanup()


class Allow(unittest.TestCase):
    OTHER = 65533  # a uid of nobody's, allowed by allow-uid
    GROUP = 4242   # a group nobody is in, allowed by allow-gid

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: clients of another user are made by "
                      "setuid")
        self.tmp = tempfile.TemporaryDirectory()
        os.chmod(self.tmp.name, 0o755)
        self.vmm = None

    def tearDown(self):
        if self.vmm:
            self.vmm.close()
        self.tmp.cleanup()

    def client(self, uid, gid, groups=()):
        return conn_of(connect_as(self.vmm.path, uid, gid, groups))

    def check_rules(self):
        # Neither the uid nor a group listed: refused, and told why.
        c = conn_of(connect_as(self.vmm.path, NOBODY, NOBODY), hello=False)
        c.recv_frame()  # the server's hello comes first
        resp = c.recv_response()
        self.assertEqual(resp.id, 0)
        self.assertEqual(resp.error.code, pb.PERMISSION_DENIED, resp)
        self.assertIn("uid 65534 may not use this API", resp.error.message)
        with self.assertRaises(ti.Closed):
            c.recv_frame()
        c.close()
        # The uid listed, a supplementary group listed, and root.
        for c in (self.client(self.OTHER, NOBODY),
                  self.client(NOBODY, NOBODY, [self.GROUP]),
                  self.client(NOBODY, self.GROUP),
                  ti.Conn(self.vmm.path)):
            self.assertEqual(c.call("ping").error.code, pb.ERROR_NONE)
            c.close()
        self.assertIn("api: refused a client of uid 65534, gid 65534",
                      self.vmm.stderr())
        # The owner ends it.
        c = ti.Conn(self.vmm.path)
        self.assertEqual(c.call("shutdown_vmm").error.code, pb.ERROR_NONE)
        self.assertEqual(self.vmm.proc.wait(WAIT_S), 0, self.vmm.stderr())
        c.close()

    def test_path(self):
        sock = os.path.join(self.tmp.name, "api.sock")
        self.vmm = Bulkhead(f"path={sock},allow-uid=1:{self.OTHER},"
                            f"allow-gid={self.GROUP}", sock)
        self.check_rules()

    def test_socket_activation(self):
        # An inherited socket has whatever mode its creator gave it: the
        # lists are all that keeps others out.
        sock = os.path.join(self.tmp.name, "act.sock")
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(sock)
        lst.listen(8)
        fd = lst.fileno()
        self.vmm = Bulkhead(f"fd={fd},allow-uid={self.OTHER},"
                            f"allow-gid=7:{self.GROUP}", sock,
                            pass_fds=(fd,))
        lst.close()
        self.check_rules()

    def test_bad_list(self):
        p = subprocess.run([ARGS.bulkhead, "--api-socket",
                            "fd=3,allow-uid=nobody"],
                           capture_output=True, text=True, timeout=WAIT_S)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--api-socket: allow-uid=nobody: 'nobody' is not a "
                      "numeric id", p.stderr)


def main():
    global ARGS, pb, ti
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--pydir", required=True)
    ARGS, rest = ap.parse_known_args()
    sys.path.insert(0, ARGS.pydir)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import api_pb2
    except ImportError as e:
        sys.exit("cannot import the generated api_pb2 (%s): install "
                 "python3-protobuf (scripts/install-deps)" % e)
    import test_interop
    pb = api_pb2
    ti = test_interop
    ti.pb = pb
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
