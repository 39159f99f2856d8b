#!/usr/bin/python3
"""bulkhead --print-policy: every child prints its allow-list; none allows
opening files, executing, forking or sockets; mmap and mprotect never with
PROT_EXEC; the runner's ioctl only with its KVM requests; the controller
starts no process and has no io_uring; the launcher, which starts them,
allows every call of every child's list; the binder has exactly its few
calls, and it alone may bind and listen; and the counts are the ones
docs/SECURITY.md gives.

In a sanitizer build (SANITIZE not empty) each list also has the rules the
sanitizer runtime needs, marked "(sanitizer builds only)": sigaltstack and
sched_getaffinity allowed, open and readlink failing with EACCES. Those,
and no others, must be there, and the counts of docs/SECURITY.md are
without them. In any other build no line may carry that mark.

Usage: test_policy.py BULKHEAD SECURITY_MD [SANITIZE]
"""
import os
import re
import subprocess
import sys

FORBIDDEN = {"open", "openat", "openat2", "creat", "execve", "execveat",
             "fork", "vfork", "clone", "clone3", "socket", "ptrace",
             "connect", "bind", "listen", "mount", "unshare", "setns",
             "kill", "tkill",
             "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal"}
# The only signals a child may send: the runner's, to its own threads.
RUNNER_TGKILL = "tgkill, only to its own process "
# What common/sandbox.c adds in sanitizer builds, and only there.
SANITIZER_ONLY = {"sched_getaffinity (sanitizer builds only)",
                  "sigaltstack (sanitizer builds only)",
                  "open, fails with EACCES (sanitizer builds only)",
                  "readlink, fails with EACCES (sanitizer builds only)"}
SANITIZER_MARK = " (sanitizer builds only)"
PROCS = {"vcpu": "bulkhead-vcpu", "blk": "bulkhead-dev-blk",
         "console": "bulkhead-dev-console", "rng": "bulkhead-dev-rng",
         "net": "bulkhead-dev-net", "vsock": "bulkhead-dev-vsock",
         "pmem": "bulkhead-dev-pmem"}
# Children bulkhead --print-policy does not list: their own --print-policy,
# found beside bulkhead, is checked the same way.
DIRECT = {}


def fail(msg):
    print(f"test_policy: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def child_policy(bulkhead, key):
    """A child's allow-list, through bulkhead or from the child itself."""
    if key in DIRECT:
        cmd = [os.path.join(os.path.dirname(bulkhead), DIRECT[key]),
               "--print-policy"]
    else:
        cmd = [bulkhead, "--print-policy", key]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        fail(f"--print-policy {key}: status {p.returncode}: {p.stderr}")
    return p.stdout.strip().split("\n")


def main():
    bulkhead, security_md = sys.argv[1:3]
    sanitize = len(sys.argv) > 3 and sys.argv[3] != ""
    doc = open(security_md).read()
    for key, binary in list(PROCS.items()) + list(DIRECT.items()):
        lines = child_policy(bulkhead, key)
        if lines[0] != f"{binary}: seccomp allow-list":
            fail(f"{key}: first line {lines[0]!r}")
        m = re.fullmatch(r"(\d+) system calls; any other kills the process",
                         lines[-1])
        if not m:
            fail(f"{key}: last line {lines[-1]!r}")
        rules = lines[1:-1]
        if int(m.group(1)) != len(rules):
            fail(f"{key}: says {m.group(1)}, lists {len(rules)}")
        san = {r for r in rules if r.endswith(SANITIZER_MARK)}
        if sanitize and san != SANITIZER_ONLY:
            fail(f"{key}: sanitizer build, its extra rules are "
                 f"{sorted(san)}, not {sorted(SANITIZER_ONLY)}")
        if not sanitize and san:
            fail(f"{key}: has {sorted(san)} outside a sanitizer build")
        rules = [r for r in rules if r not in san]
        names = {r.split()[0].rstrip(",") for r in rules}
        if len(names) != len(rules):
            fail(f"{key}: a system call listed twice")
        bad = names & FORBIDDEN
        if bad:
            fail(f"{key}: allows {sorted(bad)}")
        for call in ("mmap", "mprotect"):
            if f"{call} (never with PROT_EXEC)" not in rules:
                fail(f"{key}: {call} is not limited to no PROT_EXEC")
        tgkill = [r for r in rules if r.split()[0].rstrip(",") == "tgkill"]
        if key == "vcpu" and (len(tgkill) != 1 or
                              not tgkill[0].startswith(RUNNER_TGKILL)):
            fail(f"vcpu: tgkill not limited to its own process: {tgkill}")
        if key != "vcpu" and tgkill:
            fail(f"{key}: allows tgkill")
        ioctl = [r for r in rules if r.startswith("ioctl")]
        if key == "vcpu":
            if len(ioctl) != 1 or not ioctl[0].startswith("ioctl, only "):
                fail(f"vcpu: ioctl not limited by request: {ioctl}")
            reqs = ioctl[0][len("ioctl, only "):].split(", ")
            # Running the VM, and the get/set pairs of snapshots: never
            # one that creates or configures a VM or vCPU (those are
            # issued before the filter).
            snap = [f"KVM_{d}_{w}" for w in
                    ("REGS", "SREGS", "XSAVE", "XCRS", "MSRS", "LAPIC",
                     "VCPU_EVENTS", "MP_STATE", "DEBUGREGS", "IRQCHIP",
                     "PIT2", "CLOCK") for d in ("GET", "SET")]
            # KVM_GET_DIRTY_LOG: live migration's passes read the log of
            # the pages the vCPUs wrote (KVM_SET_USER_MEMORY_REGION turns
            # it on and off).
            want = {"KVM_RUN", "KVM_IRQ_LINE", "KVM_IOEVENTFD", "KVM_IRQFD",
                    "KVM_SET_GSI_ROUTING", "KVM_SIGNAL_MSI",
                    "KVM_SET_USER_MEMORY_REGION",
                    "KVM_GET_DIRTY_LOG"} | set(snap)
            if set(reqs) != want or len(reqs) != len(want):
                fail(f"vcpu: ioctl requests {sorted(set(reqs) ^ want)} "
                     f"differ from the expected list")
        elif key == "net":
            # The TAP's offloads, and nothing else.
            if ioctl != ["ioctl, only TUNSETOFFLOAD"]:
                fail(f"net: ioctl not limited to TUNSETOFFLOAD: {ioctl}")
        elif ioctl:
            fail(f"{key}: allows ioctl")
        # The table row of this process in docs/SECURITY.md.
        row = re.search(r"^\| `" + re.escape(binary) + r"`[^|]*\| (\d+)",
                        doc, re.M)
        if not row or int(row.group(1)) != len(rules):
            fail(f"docs/SECURITY.md gives {binary} "
                 f"{row.group(1) if row else 'no row'}, it has {len(rules)}")
        print(f"{binary}: {len(rules)} system calls"
              + (f", and {len(san)} rules for the sanitizer runtime"
                 if san else ""))
    p = subprocess.run([bulkhead, "--print-policy", "nosuch"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 2 or "nosuch" not in p.stderr:
        fail(f"--print-policy nosuch: status {p.returncode}: {p.stderr}")
    check_controller(bulkhead, doc)


# The controller's list (bulkhead --print-policy controller): none of the
# calls that reach into other processes or the kernel's configuration, and,
# since the launcher starts its children, none that starts a process or
# sets one up (execve, clone, namespaces, mount, capabilities, seccomp) and
# no io_uring, whose operations no filter sees; mmap and mprotect never
# executable; ioctl, socket, socketpair, kill and tgkill limited by
# argument, no other call that sends a signal.
CTL_FORBIDDEN = {"ptrace", "process_vm_readv", "process_vm_writev",
                 "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
                 "keyctl", "add_key", "request_key", "userfaultfd",
                 "init_module", "finit_module", "delete_module", "setns",
                 "bind", "listen", "open_by_handle_at",
                 "name_to_handle_at", "reboot", "swapon", "swapoff", "iopl",
                 "ioperm", "pidfd_getfd", "setuid", "setgid", "setresuid",
                 "setresgid", "setgroups", "mknod", "mknodat", "acct",
                 "settimeofday", "clock_settime", "adjtimex", "syslog",
                 "quotactl", "fanotify_init", "move_mount", "fsopen",
                 "fsmount", "open_tree", "execveat", "vfork", "fork",
                 "io_uring_setup", "io_uring_enter", "io_uring_register",
                 "execve", "clone", "clone3", "unshare", "mount", "umount2",
                 "pivot_root", "chroot", "capset", "prctl", "seccomp",
                 "landlock_create_ruleset", "landlock_restrict_self",
                 "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
                 "pidfd_send_signal"}
# Limited by argument: how each one's line begins.
CTL_LIMITED = {"ioctl": "ioctl, only ",
               "socket": "socket, only AF_UNIX",
               "socketpair": "socketpair, only AF_UNIX",
               "kill": "kill, only SIGKILL, and only to one process",
               "tgkill": "tgkill, only SIGUSR1 (the vCPU runner's kick) or "
                         "SIGABRT",
               "mmap": "mmap (never with PROT_EXEC)",
               "mprotect": "mprotect (never with PROT_EXEC)"}
CTL_IOCTLS = {"TCGETS", "TCSETS", "BLKGETSIZE64", "TUNSETIFF", "TUNGETIFF",
              "TUNSETVNETHDRSZ"}
CTL_SANITIZER_MARK = " (sanitizer builds only)"

# The launcher's list (bulkhead --print-policy launcher): what starting the
# children takes, and every call a child's list allows, since a child's
# filter stacks on the launcher's, which it inherits across execve; still
# nothing that reaches into other processes, makes a socket or signals.
LAUNCHER_FORBIDDEN = (CTL_FORBIDDEN - {
    "io_uring_setup", "io_uring_enter", "io_uring_register", "execve",
    "clone", "clone3", "unshare", "mount", "umount2", "pivot_root", "chroot",
    "capset", "prctl", "seccomp", "landlock_create_ruleset",
    "landlock_restrict_self"}) | {"socket", "socketpair", "accept4", "kill",
                                  "wait4", "waitid", "memfd_create",
                                  "unlink", "connect"}
LAUNCHER_LIMITED = {"ioctl": "ioctl, only ", "prctl": "prctl, only PR_",
                    "mount": "mount, only with flags MS_",
                    "mmap": "mmap (PROT_EXEC only without PROT_WRITE",
                    "mprotect": "mprotect (never with PROT_EXEC)"}
LAUNCHER_IOCTLS = {"BLKSSZGET", "TUNSETOFFLOAD"}

# The binder's list (bulkhead --print-policy binder): exactly these, with
# socket limited to the one kind of stream socket it makes (unix, or TCP
# over IPv4 or IPv6), setsockopt to SO_REUSEADDR and getsockopt to
# SO_ERROR. The only list with bind and listen (the others forbid both,
# above), and the only one with a socket that is not AF_UNIX.
BINDER_CALLS = {"bind", "brk", "clock_gettime", "close", "connect", "exit",
                "exit_group", "getsockname", "getsockopt", "listen", "mmap",
                "mprotect", "munmap", "poll", "recvmsg", "rt_sigreturn",
                "sendmsg", "setsockopt", "socket", "write"}
BINDER_FORBIDDEN = (CTL_FORBIDDEN - {"bind", "listen"}) | {
    "openat", "openat2", "creat", "unlink", "unlinkat", "rename",
    "renameat2", "accept", "accept4", "socketpair", "read", "sendto",
    "recvfrom", "kill", "tgkill", "wait4", "waitid", "memfd_create",
    "ioctl"}
BINDER_LIMITED = {"socket": "socket, only AF_UNIX, AF_INET or AF_INET6, "
                            "of type SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK "
                            "and protocol 0",
                  "setsockopt": "setsockopt, only level SOL_SOCKET and "
                                "option SO_REUSEADDR",
                  "getsockopt": "getsockopt, only level SOL_SOCKET and "
                                "option SO_ERROR",
                  "mmap": "mmap (never with PROT_EXEC)",
                  "mprotect": "mprotect (never with PROT_EXEC)"}


def print_policy(bulkhead, key):
    p = subprocess.run([bulkhead, "--print-policy", key],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        fail(f"--print-policy {key}: status {p.returncode}: {p.stderr}")
    return p.stdout.strip().split("\n")


def check_list(bulkhead, doc, key, title, row_name, forbidden, limited,
               ioctls, children):
    """Checks one of bulkhead's own lists; returns its system calls."""
    sanitize = len(sys.argv) > 3 and sys.argv[3] != ""
    lines = print_policy(bulkhead, key)
    if lines[0] != f"{title}: seccomp allow-list":
        fail(f"{key}: first line {lines[0]!r}")
    m = re.fullmatch(r"(\d+) system calls; any other kills the process",
                     lines[-1])
    rules = lines[1:-1]
    if not m or int(m.group(1)) != len(rules):
        fail(f"{key}: last line {lines[-1]!r}, {len(rules)} rules")
    names = {r.split()[0].rstrip(",") for r in rules}
    if len(names) != len(rules):
        fail(f"{key}: a system call listed twice")
    san = [r for r in rules if r.endswith(CTL_SANITIZER_MARK)]
    # Enforced where the build says which it is (a third argument).
    if san and len(sys.argv) > 3 and not sanitize:
        fail(f"{key}: allows {san} outside a sanitizer build")
    bad = names & forbidden
    if bad:
        fail(f"{key}: allows {sorted(bad)}")
    for call, start in limited.items():
        mine = [r for r in rules if r.split()[0].rstrip(",") == call]
        if len(mine) != 1 or not mine[0].startswith(start):
            fail(f"{key}: {call} is not limited as expected: {mine}")
    ioctl = [r for r in rules if r.startswith("ioctl")]
    if ioctls and len(ioctl) != 1:
        fail(f"{key}: ioctl rules {ioctl}")
    odd = [r for line in ioctl for r in line[len("ioctl, only "):].split(", ")
           if r not in ioctls and not (children and r.startswith("KVM_"))]
    if odd:
        fail(f"{key}: ioctl requests {odd}")
    missing = children - names
    if missing:
        fail(f"{key}: its filter would kill a child for {sorted(missing)}")
    production = len(rules) - len(san)
    row = re.search(r"^\| `bulkhead` \(" + row_name + r"\) \| (\d+)", doc,
                    re.M)
    if not row or int(row.group(1)) != production:
        fail(f"docs/SECURITY.md gives bulkhead ({row_name}) "
             f"{row.group(1) if row else 'no row'}, it has {production}")
    print(f"bulkhead ({row_name}): {production} system calls"
          + (f" and {len(san)} for the sanitizer runtime" if san else "")
          + (", every child's among them" if children else ""))
    return names


def check_controller(bulkhead, doc):
    children = set()
    for key in list(PROCS) + list(DIRECT):
        children |= {r.split()[0].rstrip(",")
                     for r in child_policy(bulkhead, key)[1:-1]}
    check_list(bulkhead, doc, "controller", "bulkhead", "controller",
               CTL_FORBIDDEN, CTL_LIMITED, CTL_IOCTLS, set())
    check_list(bulkhead, doc, "launcher", "bulkhead (launcher)", "launcher",
               LAUNCHER_FORBIDDEN, LAUNCHER_LIMITED, LAUNCHER_IOCTLS,
               children)
    # The launcher's filter stays on its children: every ioctl request a
    # child's own list allows must pass the launcher's too, or the child
    # is killed the first time it issues it.
    def ioctl_requests(lines):
        return {r for line in lines if line.startswith("ioctl, only ")
                for r in line[len("ioctl, only "):].split(", ")}
    launcher_reqs = ioctl_requests(print_policy(bulkhead, "launcher"))
    for key in list(PROCS) + list(DIRECT):
        lacking = ioctl_requests(child_policy(bulkhead, key)) - launcher_reqs
        if lacking:
            fail(f"launcher: its filter would kill {key} for the ioctl "
                 f"requests {sorted(lacking)}")
    names = check_list(bulkhead, doc, "binder", "bulkhead (binder)",
                       "binder", BINDER_FORBIDDEN, BINDER_LIMITED, set(),
                       set())
    # In sanitizer builds the runtime's calls come on top (marked, and
    # checked by check_list).
    if len(sys.argv) > 3 and sys.argv[3] != "":
        names -= {"open", "sigaltstack", "sched_getaffinity"}
    if names != BINDER_CALLS:
        fail(f"binder: allows {sorted(names - BINDER_CALLS)} beyond its "
             f"calls, lacks {sorted(BINDER_CALLS - names)}")
    # --print-policy all: every list once, the binder's among them.
    all_lines = print_policy(bulkhead, "all")
    for title in ("bulkhead", "bulkhead (launcher)", "bulkhead (binder)"):
        if all_lines.count(f"{title}: seccomp allow-list") != 1:
            fail(f"--print-policy all: {title}'s list is not there once")


if __name__ == "__main__":
    main()
