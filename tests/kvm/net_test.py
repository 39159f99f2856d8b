#!/usr/bin/env python3
"""Network tests of bulkhead: virtio-net on a TAP and virtio-vsock, each
case one guest, run where /dev/kvm works (tests/kvm/kvm-host provides one).

usage: net_test.py CASE --bulkhead B --bulkhead-ctl C --kernel K
                   --initramfs I --crash-kernel X --guest-tool T --log DIR

The test moves itself into a network namespace of its own first (the TAP,
its address and every host-side socket live there), so it touches none of
the host's interfaces.

Cases:
- net: --net with 2 queue pairs (the guest's driver asked for both:
  bh-guest-tool channels) and ip=, --vsock. 100 pings each
  way with none lost; TCP_MB MiB (BH_NET_TEST_TCP_MB, default 256) over
  TCP each way, sha256 checked at the receiving end; both queue pairs carry traffic (per-queue counters from the
  API); VSOCK_CONNS vsock connections at once in each direction (host to a
  guest listener through CONNECT, guest to <socket>_PORT), VSOCK_MB MiB
  (BH_NET_TEST_VSOCK_MB, default 64) each way in all, checked at the receiving end; a connection to a port
  with no listener is refused both ways; the counters of both devices.
- netkill: 1 vCPU, one queue pair, --restart-devices on. kill -9 of the
  net worker during a TCP transfer (64 MiB, or TCP_MB if less): a new worker takes the TAP over and the transfer completes
  intact. kill -9 of the vsock worker during transfers: the guest's
  connections end (reset or end of stream, never a hang) and new ones work.
- nethotplug: --api-socket and no net or vsock device at boot. add-net of
  a TAP the test made and addressed beforehand (the VMM cannot create or
  address one once sandboxed): the answer names net0, virtio-net and a PCI
  address, the guest finds a new ethN with the MAC given without a rescan,
  HOT_PINGS pings each way with none lost, HOT_TCP_MB MiB over TCP each way
  with sha256 checked, net0's counters show them. add-vsock
  cid=3,socket=DIR/hot.sock: the answer as above, the socket made, the
  guest's vsock driver bound, HOT_VSOCK_CONNS connections in each direction
  with their data checked. remove-device of both: the guest's ethN and
  vsock device go, hot.sock goes, the workers end and the controller's and
  the runner's fd counts are back where they were before add-net.

bh-guest-tool (tests/kvm/guest-tool.c) makes the data on both sides.
"""

import argparse
import ctypes
import hashlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import boot_test as bt
from boot_test import Fail

CASES = ("net", "netkill", "nethotplug")
MIB = 1024 * 1024
TCP_MB = int(os.environ.get("BH_NET_TEST_TCP_MB", "256"))
KILL_MB = min(64, TCP_MB)  # the transfer a net worker is killed in
VSOCK_MB = int(os.environ.get("BH_NET_TEST_VSOCK_MB", "64"))
VSOCK_CONNS = 32
PINGS = 100
HOST_IP = "192.168.249.1"
GUEST_IP = "192.168.249.2"
MAC = "52:54:00:12:34:56"
CID = 3
TAP = "bh0"
XFER_S = int(os.environ.get("BH_NET_TEST_XFER_S", "600"))  # one transfer
CLONE_NEWNET = 0x40000000
# nethotplug: small transfers; it is the devices' coming and going that is
# tested.
HOT_TAP = "bhhot0"
HOT_MAC = "52:54:00:12:34:57"
HOT_PINGS = 20
HOT_TCP_MB = 4
HOT_VSOCK_CONNS = 4
HOT_VSOCK_PER = 256 * 1024  # bytes on each vsock connection
DEVICE_WAIT_S = 30   # for the guest to see a device come or go
REMOVE_S = 40        # remove-device: the VMM's 10 s and the guest's eject
FDS_WAIT_S = 10      # for the fd counts to settle after the removals
VSOCK_DRIVER = "/sys/bus/virtio/drivers/vmw_vsock_virtio_transport"
PCI_ADDR_RE = re.compile(r"0000:00:[0-9a-f]{2}\.0")


def sh(cmd, step):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise Fail(f"{step}: {' '.join(cmd)}: status {p.returncode}: "
                   f"{p.stderr.strip()}")
    return p.stdout


def own_netns():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise Fail(f"unshare(CLONE_NEWNET): {os.strerror(e)}")
    sh(["ip", "link", "set", "lo", "up"], "the namespace's loopback")


def expected(tool, nbytes, seed):
    """sha256 and FNV-1a of the pattern, from the same tool the guest has."""
    p = subprocess.Popen([tool, "gen", str(nbytes), str(seed)],
                         stdout=subprocess.PIPE)
    h = hashlib.sha256()
    while True:
        b = p.stdout.read(MIB)
        if not b:
            break
        h.update(b)
    if p.wait() != 0:
        raise Fail(f"{tool} gen failed")
    fnv = sh([tool, "fnv", str(nbytes), str(seed)], "the pattern's FNV")
    return h.hexdigest(), fnv.strip()


class Receiver(threading.Thread):
    """Accepts n connections on a listening socket; reads each to its end
    (after sending `hello` if given) and records (bytes, sha256)."""

    def __init__(self, srv, n, hello=None):
        super().__init__(daemon=True)
        self.srv, self.n, self.hello = srv, n, hello
        self.results = []
        self.error = None

    def one(self, c):
        h = hashlib.sha256()
        total = 0
        with c:
            if self.hello:
                c.sendall(self.hello)
            while True:
                b = c.recv(MIB)
                if not b:
                    break
                h.update(b)
                total += len(b)
        self.results.append((total, h.hexdigest()))

    def run(self):
        try:
            for _ in range(self.n):
                c, _ = self.srv.accept()
                self.one(c)
        except OSError as e:
            self.error = str(e)


class Sender(threading.Thread):
    """Accepts connections and sends each one the tool's pattern for the
    seed the peer writes first (a line), or `seed` when given; then closes.
    """

    def __init__(self, srv, n, tool, nbytes, seed=None):
        super().__init__(daemon=True)
        self.srv, self.n, self.tool = srv, n, tool
        self.nbytes, self.seed = nbytes, seed
        self.sent = 0
        self.error = None
        self.threads = []

    def one(self, c):
        try:
            with c:
                seed = self.seed
                if seed is None:
                    line = b""
                    while not line.endswith(b"\n") and len(line) < 32:
                        b = c.recv(1)
                        if not b:
                            raise OSError("no seed line")
                        line += b
                    seed = int(line)
                p = subprocess.Popen([self.tool, "gen", str(self.nbytes),
                                      str(seed)], stdout=subprocess.PIPE)
                while True:
                    b = p.stdout.read(256 * 1024)
                    if not b:
                        break
                    c.sendall(b)
                p.wait()
                self.sent += 1
        except OSError as e:
            self.error = str(e)

    def run(self):
        try:
            for _ in range(self.n):
                c, _ = self.srv.accept()
                t = threading.Thread(target=self.one, args=(c,), daemon=True)
                t.start()
                self.threads.append(t)
            for t in self.threads:
                t.join()
        except OSError as e:
            self.error = str(e)


def tcp_listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST_IP, port))
    s.listen(64)
    return s


def net_argv(args, sock_dir, restart=False, pairs=2):
    # One vCPU: two stall in the emulated host of one CPU (guest_net_up
    # asks the driver for every pair instead).
    a = bt.argv(args, cpus=1)
    a += ["--net", f"tap={TAP},mac={MAC},ip={HOST_IP},mask=255.255.255.0,"
                   f"num_queues={2 * pairs}",
          "--vsock", f"cid={CID},socket={sock_dir}/vsock.sock",
          "--api-socket", f"path={sock_dir}/api.sock"]
    if restart:
        a += ["--restart-devices", "on"]
    return a


def guest_net_up(vm, pairs, iface="eth0", mac=MAC):
    if pairs > 1:
        # Linux takes one pair per vCPU by default: ask for all of them
        # (the driver's VQ_PAIRS_SET on the control queue).
        got = vm.value("CHANNELS", f"bh-guest-tool channels {iface} {pairs}",
                       f"ethtool -L {iface} combined {pairs} in the guest")
        if got != f"channels {pairs} of {pairs}":
            raise Fail(f"the guest's channels: {got!r}")
    got = vm.value("NETUP", f"ip link set {iface} up && ip addr add "
                   f"{GUEST_IP}/24 dev {iface} && cat /sys/class/net/{iface}/"
                   f"address && echo ok", f"the guest's {iface} up")
    if mac not in got or "ok" not in got:
        raise Fail(f"the guest's {iface}: {got!r} (wanted MAC {mac})")


def wait_link(vm):
    """The first ping may wait for ARP: a few tries before the real test."""
    got = vm.value("WARM", f"ping -c 3 -W 5 {HOST_IP} >/dev/null 2>&1; "
                   "echo $?", "a first ping", limit=60)
    if got != "0":
        raise Fail("the guest cannot ping the host at all")


def pings(vm, n=PINGS):
    got = vm.value("PING", f"ping -c {n} -i 0.05 -W 5 {HOST_IP} 2>&1 | "
                   "grep 'packets transmitted'", f"{n} pings to the host",
                   limit=120)
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", got)
    if not m or m.group(1) != str(n) or m.group(2) != str(n):
        raise Fail(f"guest to host pings: {got!r}")
    p = subprocess.run(["/bin/busybox", "ping", "-c", str(n), "-i",
                        "0.05", "-W", "5", GUEST_IP], capture_output=True,
                       text=True, timeout=120)
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received",
                  p.stdout)
    if not m or m.group(1) != str(n) or m.group(2) != str(n):
        raise Fail(f"host to guest pings: {p.stdout.strip()!r}")
    return f"{n} pings each way, none lost"


def tcp_guest_to_host(args, vm, mb, port, seed, step, during=None):
    nbytes = mb * MIB
    want, _ = expected(args.guest_tool, nbytes, seed)
    srv = tcp_listener(port)
    r = Receiver(srv, 1)
    r.start()
    t = time.monotonic()
    start = len(vm.out)
    vm.send(f"bh-guest-tool tcp-send {HOST_IP} {port} {nbytes} {seed}; "
            f"echo TXDONE=$?\n", step)
    if during:
        during()
    vm.expect(re.compile(r"^TXDONE=(\d+)\n", re.M), start, XFER_S, step)
    r.join(60)
    srv.close()
    dt = time.monotonic() - t
    if r.error or not r.results:
        raise Fail(f"{step}: the host received nothing ({r.error})")
    got, sha = r.results[0]
    if got != nbytes or sha != want:
        raise Fail(f"{step}: the host received {got} bytes, sha256 {sha}, "
                   f"not {nbytes} bytes with {want}")
    return dt


def tcp_host_to_guest(args, vm, mb, port, seed, step):
    nbytes = mb * MIB
    want, _ = expected(args.guest_tool, nbytes, seed)
    srv = tcp_listener(port)
    s = Sender(srv, 1, args.guest_tool, nbytes, seed)
    s.start()
    t = time.monotonic()
    got = vm.value("RXSHA", f"nc {HOST_IP} {port} | sha256sum", step,
                   limit=XFER_S)
    dt = time.monotonic() - t
    s.join(60)
    srv.close()
    if not got.startswith(want):
        raise Fail(f"{step}: the guest's sha256 {got!r}, not {want}")
    return dt


def counters(args, sock):
    c = bt.ctl(args, sock, "counters")[1] or {}
    return c.get("devices", {})


def check_queue_counters(args, sock):
    devs = counters(args, sock)
    v = devs.get("net0", {}).get("values", {})
    for name in ("rx0_packets", "rx1_packets", "tx0_packets", "tx1_packets",
                 "rx0_bytes", "tx0_bytes"):
        if int(v.get(name, 0)) <= 0:
            raise Fail(f"counters: net0 {name} is {v.get(name)}: {v}")
    return v


def vsock_host_connect(path, port):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(XFER_S)
    c.connect(path)
    c.sendall(f"CONNECT {port}\n".encode())
    line = b""
    while not line.endswith(b"\n") and len(line) < 32:
        b = c.recv(1)
        if not b:
            break
        line += b
    return c, line.decode(errors="replace")


def vsock_from_host(args, vm, vsock_path, per, step, conns=VSOCK_CONNS):
    """`conns` host connections to a guest listener that sends each the
    pattern of its number: the host checks every byte."""
    start = len(vm.out)
    vm.send(f"bh-guest-tool vsock-serve 5000 {conns} {per} & "
            f"sleep 1\n", step)
    vm.expect(re.compile(r"^listening\n", re.M), start, 60,
              step + ": the guest's listener")
    results, errors = {}, []

    def one(i):
        try:
            c, ok = vsock_host_connect(vsock_path, 5000)
            with c:
                if not re.match(r"^OK \d+\n$", ok):
                    raise OSError(f"answer {ok!r}")
                c.sendall(f"{i}\n".encode())
                h = hashlib.sha256()
                total = 0
                while True:
                    b = c.recv(MIB)
                    if not b:
                        break
                    h.update(b)
                    total += len(b)
                results[i] = (total, h.hexdigest())
        except OSError as e:
            errors.append(f"connection {i}: {e}")

    t = time.monotonic()
    ths = [threading.Thread(target=one, args=(i,), daemon=True)
           for i in range(1, conns + 1)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(XFER_S)
    dt = time.monotonic() - t
    vm.expect(re.compile(rf"served {conns}\n"), start, 120,
              step + ": the guest's listener done")
    if errors:
        raise Fail(f"{step}: {errors[0]} ({len(errors)} failed)")
    for i in range(1, conns + 1):
        want, _ = expected(args.guest_tool, per, i)
        if results.get(i) != (per, want):
            raise Fail(f"{step}: connection {i} gave {results.get(i)}, not "
                       f"({per}, {want})")
    return dt


def vsock_from_guest(args, vm, vsock_path, per, step, conns=VSOCK_CONNS):
    """`conns` guest connections to <socket>_6000, each sent the pattern of
    its number by the host: the guest's tool checks every byte."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = f"{vsock_path}_6000"
    if os.path.exists(path):
        os.unlink(path)
    srv.bind(path)
    srv.listen(64)
    s = Sender(srv, conns, args.guest_tool, per)
    s.start()
    t = time.monotonic()
    start = len(vm.out)
    vm.send(f"bh-guest-tool vsock-sink 2 6000 {conns}; "
            f"echo SINKDONE=$?\n", step)
    m = vm.expect(re.compile(r"^SINKDONE=(\d+)\n", re.M), start, XFER_S,
                  step)
    dt = time.monotonic() - t
    s.join(60)
    srv.close()
    os.unlink(path)
    if m.group(1) != "0" or s.error:
        raise Fail(f"{step}: the guest's sink ended with {m.group(1)} "
                   f"({s.error})")
    got = dict((int(a), (int(b), c)) for a, b, c in re.findall(
        r"^conn (\d+) (\d+) ([0-9a-f]{16})$", vm.out[start:m.start()], re.M))
    for i in range(1, conns + 1):
        _, fnv = expected(args.guest_tool, per, i)
        if got.get(i) != (per, fnv):
            raise Fail(f"{step}: connection {i} in the guest: {got.get(i)}, "
                       f"not ({per}, {fnv})")
    return dt


def vsock_refused(vm, vsock_path):
    """No listener: the host's CONNECT is closed without OK, the guest's
    connect is refused."""
    c, ok = vsock_host_connect(vsock_path, 4999)
    with c:
        c.settimeout(30)
        rest = c.recv(64) if not ok else b""
    if ok.startswith("OK") or rest:
        raise Fail(f"vsock to a port without listener: answered {ok!r}")
    got = vm.value("REFUSED", "bh-guest-tool vsock-connect 2 4999 "
                   "</dev/null 2>&1; echo $?", "a guest connect to no one")
    if not got.endswith("1") or "connect" not in got:
        raise Fail(f"guest vsock connect to no listener: {got!r}")


def watch_counters(args, api, vm, every=30):
    """The devices' counters in ctl.log every `every` seconds while the VM
    runs: where a transfer stalls, they show which queue stopped."""
    def run():
        while vm.status is None:
            time.sleep(every)
            if vm.status is None and os.path.exists(api):
                try:
                    bt.ctl(args, api, "counters", check=False, limit=10)
                except Fail:
                    pass
    threading.Thread(target=run, daemon=True).start()


def shell_on_hvc0(args, a):
    """The guest's shell on hvc0 (--console tty), its serial console into
    serial.log, as every case here has them."""
    a[a.index("--cmdline") + 1] += " bulkhead.shell=hvc0"
    serial_log = os.path.join(args.log, "serial.log")
    a[a.index("--serial") + 1] = f"file={serial_log}"
    a += ["--console", "tty"]
    return a


def start(args, vm_factory, restart=False, pairs=2):
    own_netns()
    sock_dir = bt.socket_dir(args.log)
    a = shell_on_hvc0(args, net_argv(args, sock_dir, restart, pairs))
    vm = vm_factory(a)
    watch_counters(args, f"{sock_dir}/api.sock", vm)
    t_marker = bt.boot_to_prompt(vm)
    guest_net_up(vm, pairs)
    wait_link(vm)
    return vm, sock_dir, t_marker


def case_net(args, vm_factory):
    vm, sock_dir, t_marker = start(args, vm_factory)
    api = f"{sock_dir}/api.sock"
    vsock_path = f"{sock_dir}/vsock.sock"
    sandboxes = bt.check_sandboxes(vm, {"bulkhead-vcpu": 1,
                                        "bulkhead-dev-net": 1,
                                        "bulkhead-dev-vsock": 1,
                                        "bulkhead-dev-console": 1})
    ping = pings(vm)
    # Both directions on both queue pairs: the guest spreads its flows
    # over its transmit queues by hash, and the TAP over its queues.
    t_out = tcp_guest_to_host(args, vm, TCP_MB, 5001, 7, "TCP guest to host")
    t_in = tcp_host_to_guest(args, vm, TCP_MB, 5002, 8, "TCP host to guest")
    for port in range(5020, 5028):
        nbytes = 1 * MIB
        srv = tcp_listener(port)
        r = Receiver(srv, 1)
        r.start()
        vm.value(f"FLOW{port}", f"bh-guest-tool tcp-send {HOST_IP} {port} "
                 f"{nbytes} {port}; echo $?", f"TCP flow {port} out",
                 limit=300)
        r.join(60)
        srv.close()
        if not r.results or r.results[0][0] != nbytes:
            raise Fail(f"TCP flow {port} out: {r.results} ({r.error})")
    for port in range(5010, 5018):
        tcp_host_to_guest(args, vm, 1, port, port, f"TCP flow {port}")
    v = check_queue_counters(args, api)
    per = VSOCK_MB * MIB // VSOCK_CONNS
    vsock_refused(vm, vsock_path)
    t_vh = vsock_from_host(args, vm, vsock_path, per,
                           "vsock host to guest listener")
    t_vg = vsock_from_guest(args, vm, vsock_path, per,
                            "vsock guest to host listener")
    vs = counters(args, api).get("vsock0", {}).get("values", {})
    if int(vs.get("tx_bytes", 0)) < VSOCK_MB * MIB or \
            int(vs.get("rx_bytes", 0)) < VSOCK_MB * MIB:
        raise Fail(f"counters: vsock0 {vs}")
    finish(args, vm, sock_dir)
    mbs = lambda mb, t: mb / t if t > 0 else 0
    return (f"marker after {t_marker:.1f} s; {sandboxes}; {ping}; TCP "
            f"{TCP_MB} MiB guest to host in {t_out:.1f} s "
            f"({mbs(TCP_MB, t_out):.1f} MiB/s), host to guest in "
            f"{t_in:.1f} s ({mbs(TCP_MB, t_in):.1f} MiB/s), sha256 equal; "
            f"both queue pairs used (rx0 {v.get('rx0_packets')}, rx1 "
            f"{v.get('rx1_packets')}, tx0 {v.get('tx0_packets')}, tx1 "
            f"{v.get('tx1_packets')} packets); vsock {VSOCK_CONNS} "
            f"connections each way, {VSOCK_MB} MiB host<-guest listener in "
            f"{t_vh:.1f} s, {VSOCK_MB} MiB guest<-host listener in "
            f"{t_vg:.1f} s, checked; refused ports both ways")


def finish(args, vm, sock_dir):
    """poweroff in the guest, then shutdown-vmm (an API socket keeps the
    VMM up after its guest): exit 0, and the API and vsock sockets gone."""
    vm.send("poweroff -f\n", "poweroff")
    deadline = time.monotonic() + bt.POWEROFF_S
    while "guest powered off" not in vm.err:
        if vm.exited() or time.monotonic() > deadline:
            raise Fail("the guest did not power off")
        vm.pump(0.5)
    bt.ctl(args, f"{sock_dir}/api.sock", "shutdown-vmm")
    st = vm.wait_exit(bt.POWEROFF_S, "bulkhead to exit after shutdown-vmm")
    if st != 0:
        raise Fail(f"bulkhead exited with status {st}, not 0")
    left = [p for p in ("api.sock", "vsock.sock")
            if os.path.exists(os.path.join(sock_dir, p))]
    if left:
        raise Fail(f"left behind in {sock_dir}: {left}")


def kill_worker(name, step):
    pids = bt.pids_named(name)
    if len(pids) != 1:
        raise Fail(f"{step}: {len(pids)} {name} processes, not 1")
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def case_netkill(args, vm_factory):
    # One vCPU and one queue pair: the emulated host has one CPU (two vCPUs
    # on it make every transfer crawl), and the restart is what is tested.
    vm, sock_dir, t_marker = start(args, vm_factory, restart=True, pairs=1)
    vsock_path = f"{sock_dir}/vsock.sock"
    killed = {}

    api = f"{sock_dir}/api.sock"

    def kill_net():
        time.sleep(3)
        killed["net"] = kill_worker("bulkhead-dev-net", "kill -9 net")
        # What the new worker moves, for the log (ctl.log) if it stalls.
        for _ in range(3):
            time.sleep(10)
            bt.ctl(args, api, "counters", check=False)

    t = tcp_guest_to_host(args, vm, KILL_MB, 5101, 11,
                          "TCP through a net worker killed mid-way",
                          during=kill_net)
    if "device net0: restarted its worker" not in vm.err:
        raise Fail("no restart of the net worker in bulkhead's log")
    wait_link(vm)
    t2 = tcp_host_to_guest(args, vm, min(16, TCP_MB), 5102, 12,
                           "TCP after the restart")

    # vsock: the guest sinks 4 long connections; the worker dies mid-way.
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = f"{vsock_path}_6100"
    srv.bind(path)
    srv.listen(8)
    s = Sender(srv, 4, args.guest_tool, 256 * MIB)
    s.start()
    start_off = len(vm.out)
    vm.send("bh-guest-tool vsock-sink 2 6100 4; echo SINKDONE=$?\n",
            "vsock transfers")
    time.sleep(5)
    killed["vsock"] = kill_worker("bulkhead-dev-vsock", "kill -9 vsock")
    vm.expect(re.compile(r"^SINKDONE=(\d+)\n", re.M), start_off, 300,
              "the guest's vsock connections to end after the kill")
    srv.close()
    os.unlink(path)
    if "device vsock0: restarted its worker" not in vm.err:
        raise Fail("no restart of the vsock worker in bulkhead's log")
    # New connections work.
    per = 1 * MIB
    got = vsock_from_guest(args, vm, vsock_path, per,
                           "vsock after the restart")
    finish(args, vm, sock_dir)
    return (f"marker after {t_marker:.1f} s; net worker {killed['net']} "
            f"killed during {KILL_MB} MiB of TCP: restarted, the transfer "
            f"completed intact in {t:.1f} s, {min(16, TCP_MB)} MiB back "
            f"after; vsock worker "
            f"{killed['vsock']} killed during 4 transfers: the guest's "
            f"connections ended, {VSOCK_CONNS} new ones carried "
            f"{VSOCK_CONNS} MiB in {got:.1f} s")


def hot_tap():
    """The TAP for add-net, made and addressed here beforehand: the VMM,
    sandboxed by then, may attach to a TAP that has no owner, but neither
    create one nor set its address."""
    sh(["ip", "tuntap", "add", "dev", HOT_TAP, "mode", "tap", "vnet_hdr",
        "multi_queue"], "the TAP for add-net")
    sh(["ip", "addr", "add", f"{HOST_IP}/24", "dev", HOT_TAP],
       "the address of the TAP for add-net")
    sh(["ip", "link", "set", HOT_TAP, "up"], "the TAP for add-net up")


def add_device(args, api, op, spec, want_id, want_type):
    """op (add-net, add-vsock) of spec; the answer must name want_id,
    want_type and a PCI address, which is returned."""
    st, out = bt.ctl(args, api, op, spec, check=False, limit=bt.CTL_S)
    if st != 0:
        raise Fail(f"{op} {spec}: status {st}: {out}")
    out = out or {}
    if out.get("id") != want_id or out.get("type") != want_type or \
            not PCI_ADDR_RE.fullmatch(out.get("pci_address", "")):
        raise Fail(f"{op} answered {out}, not id {want_id}, {want_type} "
                   f"and a PCI address")
    return out["pci_address"]


def remove_device(args, api, dev_id):
    t = time.monotonic()
    st, out = bt.ctl(args, api, "remove-device", dev_id, check=False,
                     limit=REMOVE_S)
    if st != 0:
        raise Fail(f"remove-device {dev_id}: status {st}: {out}")
    return time.monotonic() - t


def device_ids(args, api):
    info = bt.ctl(args, api, "info")[1] or {}
    return {d.get("id") for d in info.get("devices", [])}


def wait_iface(vm, mac, step):
    """Has the guest wait (bounded) for an interface with this MAC, found
    by the driver on its own (no rescan); returns its name."""
    tries = DEVICE_WAIT_S * 10
    addrs = "/sys/class/net/*/address"
    got = vm.value(
        "HOT_IFACE",
        f"i=0; while ! grep -qx {mac} {addrs} 2>/dev/null && "
        f"[ $i -lt {tries} ]; do sleep 0.1; i=$((i+1)); done; "
        f"grep -lx {mac} {addrs} 2>/dev/null | cut -d/ -f5",
        step, DEVICE_WAIT_S + bt.COMMAND_S)
    if not re.fullmatch(r"eth[0-9]+", got):
        raise Fail(f"{step}: no ethN with MAC {mac} after {DEVICE_WAIT_S} s "
                   f"(got {got!r})")
    return got


def wait_iface_gone(vm, iface, step):
    tries = DEVICE_WAIT_S * 10
    got = vm.value(
        "IFACE_GONE",
        f"i=0; while [ -e /sys/class/net/{iface} ] && [ $i -lt {tries} ]; "
        f"do sleep 0.1; i=$((i+1)); done; "
        f"[ -e /sys/class/net/{iface} ] && echo still || echo gone",
        step, DEVICE_WAIT_S + bt.COMMAND_S)
    if got != "gone":
        raise Fail(f"{step}: /sys/class/net/{iface} still there after "
                   f"{DEVICE_WAIT_S} s ({got!r})")


def wait_vsock(vm, present, step):
    """Has the guest wait (bounded) until its vsock driver holds a device
    (present) or none."""
    tries = DEVICE_WAIT_S * 10
    count = f"ls {VSOCK_DRIVER} 2>/dev/null | grep -c '^virtio'"
    test = "-eq 0" if present else "-gt 0"
    got = vm.value(
        "VSOCK_DEVS",
        f"i=0; while [ $({count}) {test} ] && [ $i -lt {tries} ]; "
        f"do sleep 0.1; i=$((i+1)); done; {count}",
        step, DEVICE_WAIT_S + bt.COMMAND_S)
    want = "1" if present else "0"
    if got != want:
        raise Fail(f"{step}: {got!r} devices in {VSOCK_DRIVER} after "
                   f"{DEVICE_WAIT_S} s, not {want}")


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def case_nethotplug(args, vm_factory):
    own_netns()
    hot_tap()
    sock_dir = bt.socket_dir(os.path.abspath(args.log))
    api = f"{sock_dir}/api.sock"
    hot_sock = f"{sock_dir}/hot.sock"
    if "," in hot_sock:
        raise Fail(f"{hot_sock}: a comma in the path cannot go into "
                   f"add-vsock")
    for p in (api, hot_sock):
        if os.path.lexists(p):
            os.unlink(p)
    # No net or vsock device at boot: both come through the API.
    a = shell_on_hvc0(args, bt.argv(args, cpus=1) +
                      ["--api-socket", f"path={api}"])
    vm = vm_factory(a)
    t_marker = bt.boot_to_prompt(vm)
    got = vm.value("IFACES", "ls /sys/class/net", "the guest's interfaces")
    if any(n.startswith("eth") for n in got.split()):
        raise Fail(f"the guest has the interfaces {got!r} before add-net: "
                   f"an ethN already")
    wait_vsock(vm, False, "no vsock device in the guest before add-vsock")
    pids = bt.pids_named("bulkhead-vcpu")
    if len(pids) != 1:
        raise Fail(f"{len(pids)} bulkhead-vcpu processes, not 1")
    runner = pids[0]
    # No watch_counters in this case: its API calls, at any moment, would
    # move the controller's fd count under this comparison.
    fds0 = (nfds(vm.proc.pid), nfds(runner))

    # A NIC on a TAP the test made: the guest finds it by itself, brings it
    # up and moves data through it.
    t = time.monotonic()
    net_addr = add_device(args, api, "add-net",
                          f"tap={HOT_TAP},mac={HOT_MAC}", "net0",
                          "virtio-net")
    iface = wait_iface(vm, HOT_MAC, "the hot-added NIC in the guest")
    t_net = time.monotonic() - t
    guest_net_up(vm, 1, iface, HOT_MAC)
    wait_link(vm)
    ping = pings(vm, HOT_PINGS)
    t_out = tcp_guest_to_host(args, vm, HOT_TCP_MB, 5201, 21,
                              "TCP guest to host on the hot-added NIC")
    t_in = tcp_host_to_guest(args, vm, HOT_TCP_MB, 5202, 22,
                             "TCP host to guest on the hot-added NIC")
    v = counters(args, api).get("net0", {}).get("values", {})
    for name in ("rx0_bytes", "tx0_bytes"):
        if int(v.get(name, 0)) < HOT_TCP_MB * MIB:
            raise Fail(f"counters: the hot-added net0 {name} is "
                       f"{v.get(name)}, less than the {HOT_TCP_MB} MiB each "
                       f"way: {v}")

    # A vsock device: its socket appears, and data goes both ways.
    t = time.monotonic()
    vs_addr = add_device(args, api, "add-vsock",
                         f"cid={CID},socket={hot_sock}", "vsock0",
                         "virtio-vsock")
    if vs_addr == net_addr:
        raise Fail(f"add-vsock answered {vs_addr}, net0's PCI address")
    try:
        if not stat.S_ISSOCK(os.lstat(hot_sock).st_mode):
            raise Fail(f"{hot_sock} after add-vsock is no socket")
    except FileNotFoundError:
        raise Fail(f"no {hot_sock} after add-vsock")
    wait_vsock(vm, True, "the hot-added vsock device in the guest")
    t_vsock = time.monotonic() - t
    ids = device_ids(args, api)
    if not {"net0", "vsock0"} <= ids:
        raise Fail(f"info lists the devices {sorted(ids)}, not net0 and "
                   f"vsock0 among them")
    sandboxes = bt.check_sandboxes(vm, {"bulkhead-vcpu": 1,
                                        "bulkhead-dev-net": 1,
                                        "bulkhead-dev-vsock": 1,
                                        "bulkhead-dev-console": 1})
    t_vh = vsock_from_host(args, vm, hot_sock, HOT_VSOCK_PER,
                           "vsock host to guest on the hot-added device",
                           HOT_VSOCK_CONNS)
    t_vg = vsock_from_guest(args, vm, hot_sock, HOT_VSOCK_PER,
                            "vsock guest to host on the hot-added device",
                            HOT_VSOCK_CONNS)

    # Both go: from the guest, the host and the VMM.
    t_rm_net = remove_device(args, api, "net0")
    wait_iface_gone(vm, iface, f"the guest's {iface} to go")
    t_rm_vs = remove_device(args, api, "vsock0")
    if os.path.lexists(hot_sock):
        raise Fail(f"{hot_sock} is still there after remove-device vsock0")
    wait_vsock(vm, False, "the guest's vsock device to go")
    if vm.value("ALIVE", "echo yes", "the guest after the removals") != "yes":
        raise Fail("the guest does not answer after the removals")
    deadline = time.monotonic() + FDS_WAIT_S
    while True:
        fds = (nfds(vm.proc.pid), nfds(runner))
        if fds == fds0 or time.monotonic() > deadline:
            break
        vm.pump(0.5)
    if fds != fds0:
        raise Fail(f"fds of the controller and the runner: {fds} after "
                   f"both removals, not {fds0} as before add-net")
    for name in ("bulkhead-dev-net", "bulkhead-dev-vsock"):
        if bt.pids_named(name):
            raise Fail(f"a {name} is still there after the removals")
    ids = device_ids(args, api)
    if ids & {"net0", "vsock0"}:
        raise Fail(f"info lists {sorted(ids)} after the removals")
    finish(args, vm, sock_dir)
    return (f"marker after {t_marker:.1f} s; add-net: net0 at {net_addr}, "
            f"the guest's {iface} (MAC {HOT_MAC}) {t_net:.1f} s later "
            f"without a rescan; {ping}; TCP {HOT_TCP_MB} MiB guest to host "
            f"in {t_out:.1f} s and host to guest in {t_in:.1f} s, sha256 "
            f"equal; add-vsock: vsock0 at {vs_addr}, its socket made, the "
            f"guest's driver bound {t_vsock:.1f} s after the call; "
            f"{sandboxes}; {HOT_VSOCK_CONNS} vsock connections each way, "
            f"{HOT_VSOCK_PER // 1024} KiB each, host to guest in "
            f"{t_vh:.1f} s, guest to host in {t_vg:.1f} s, checked; "
            f"remove-device net0 in {t_rm_net:.1f} s and vsock0 in "
            f"{t_rm_vs:.1f} s: {iface}, the guest's vsock device, hot.sock "
            f"and both workers gone, fds back to {fds0}")


def main():
    ap = argparse.ArgumentParser(description="bulkhead network tests")
    ap.add_argument("case", choices=CASES)
    ap.add_argument("--bulkhead", required=True)
    ap.add_argument("--bulkhead-ctl", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initramfs", required=True)
    ap.add_argument("--crash-kernel", required=True)
    ap.add_argument("--guest-tool", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    bt.case_net = case_net
    bt.case_netkill = case_netkill
    bt.case_nethotplug = case_nethotplug
    return bt.run_case(args, f"net_test {args.case}")


if __name__ == "__main__":
    sys.exit(main())
