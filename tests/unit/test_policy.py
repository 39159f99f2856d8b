#!/usr/bin/python3
"""bulkhead --print-policy: every child prints its allow-list; none allows
opening files, executing, forking or sockets; mmap and mprotect never with
PROT_EXEC; the runner's ioctl only with its KVM requests; and the counts
are the ones docs/SECURITY.md gives.

In a sanitizer build (SANITIZE not empty) each list also has the rules the
sanitizer runtime needs, marked "(sanitizer builds only)": sigaltstack
allowed, open and readlink failing with EACCES. Those, and no others, must
be there, and the counts of docs/SECURITY.md are without them. In any other
build no line may carry that mark.

Usage: test_policy.py BULKHEAD SECURITY_MD [SANITIZE]
"""
import re
import subprocess
import sys

FORBIDDEN = {"open", "openat", "openat2", "creat", "execve", "execveat",
             "fork", "vfork", "clone", "clone3", "socket", "ptrace",
             "connect", "bind", "mount", "unshare", "setns", "kill"}
# What common/sandbox.c adds in sanitizer builds, and only there.
SANITIZER_ONLY = {"sigaltstack (sanitizer builds only)",
                  "open, fails with EACCES (sanitizer builds only)",
                  "readlink, fails with EACCES (sanitizer builds only)"}
SANITIZER_MARK = " (sanitizer builds only)"
PROCS = {"vcpu": "bulkhead-vcpu", "blk": "bulkhead-dev-blk",
         "console": "bulkhead-dev-console", "rng": "bulkhead-dev-rng"}


def fail(msg):
    print(f"test_policy: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    bulkhead, security_md = sys.argv[1:3]
    sanitize = len(sys.argv) > 3 and sys.argv[3] != ""
    doc = open(security_md).read()
    for key, binary in PROCS.items():
        p = subprocess.run([bulkhead, "--print-policy", key],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            fail(f"--print-policy {key}: status {p.returncode}: {p.stderr}")
        lines = p.stdout.strip().split("\n")
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
        ioctl = [r for r in rules if r.startswith("ioctl")]
        if key == "vcpu":
            if len(ioctl) != 1 or not ioctl[0].startswith("ioctl, only "):
                fail(f"vcpu: ioctl not limited by request: {ioctl}")
            reqs = ioctl[0][len("ioctl, only "):].split(", ")
            if not all(r.startswith("KVM_") for r in reqs) or len(reqs) != 7:
                fail(f"vcpu: ioctl requests {reqs}")
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


if __name__ == "__main__":
    main()
