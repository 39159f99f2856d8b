#!/usr/bin/python3
"""The native benchmark section: block I/O through bulkhead-dev-blk against
the same I/O done directly, and instructions per request under callgrind.

Run by bench/run; prints the section's tables and writes its JSON.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

# Instruction counts: 4 KiB random reads, per process and queue depth.
COUNT_SPECS = [
    ("worker", 1),
    ("worker", 32),
    ("uring", 1),
    ("uring", 32),
    ("pread", 1),
]
TARGET_TITLES = {
    "worker": "bulkhead-dev-blk worker",
    "uring": "io_uring, one process",
    "pread": "pread, one process",
}


def stats(values):
    """Median, min, max and spread ((max - min) / median) of a list."""
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {
        "values": values,
        "median": med,
        "min": lo,
        "max": hi,
        "spread_pct": 100.0 * (hi - lo) / med if med else 0.0,
    }


def run(cmd, log, **kw):
    """Runs cmd with its output appended to log; raises on failure."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        sys.stderr.write(open(log).read()[-4000:])
        raise SystemExit("native: %s failed (exit %d), log in %s"
                         % (cmd[0], r.returncode, log))


# ---- timing -----------------------------------------------------------------

def timing(a, bb, tmp, log):
    raw = os.path.join(tmp, "time.json")
    run([bb, "time", "--dir", a.dir, "--size-mib", str(a.size_mib),
         "--runs", str(a.repeat), "--seconds", str(a.seconds),
         "--warmup", str(a.warmup), "--json", raw], log)
    with open(raw) as f:
        t = json.load(f)
    jobs = []
    for j in t["jobs"]:
        per_mib = j["bs"] >= (1 << 20)
        unit = "MiB/s" if per_mib else "IOPS"
        out = {k: j[k] for k in ("name", "rw", "pattern", "bs", "qd")}
        out["unit"] = unit
        out["targets"] = {}
        for name, tr in j["targets"].items():
            rates, cpu, kicks, calls = [], [], [], []
            for req, nbytes, ns, cpu_ns, nk, nc in tr["results"]:
                rates.append(nbytes / (1 << 20) / (ns / 1e9) if per_mib
                             else req / (ns / 1e9))
                cpu.append(cpu_ns / 1e3 / req if req else 0.0)
                kicks.append(nk / req if req else 0.0)
                calls.append(nc / req if req else 0.0)
            out["targets"][name] = {
                "qd": tr["qd"],
                "rate": stats(rates),
                "cpu_us_per_request": stats(cpu),
            }
            if name == "worker":
                out["targets"][name]["kicks_per_request"] = stats(kicks)
                out["targets"][name]["interrupts_per_request"] = stats(calls)
        ts = out["targets"]
        if "worker" in ts and "uring" in ts:
            # Runs interleave the targets: pair each worker run with the
            # io_uring run next to it.
            pairs = [100.0 * w / u for w, u in
                     zip(ts["worker"]["rate"]["values"],
                         ts["uring"]["rate"]["values"]) if u]
            out["worker_pct_of_uring"] = stats(pairs)
            out["worker_pct_of_uring"]["of_medians"] = (
                100.0 * ts["worker"]["rate"]["median"] /
                ts["uring"]["rate"]["median"])
        jobs.append(out)
    return {"image": t["image"], "runs": t["runs"], "seconds": t["seconds"],
            "jobs": jobs}


# ---- instruction counts -------------------------------------------------------

FN_LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*?)\s+\[(.*)\]\s*$")


def totals(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit("native: no totals in " + path)


def per_function(path):
    """Self instructions by function, from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no",
                          "--threshold=100", path], capture_output=True,
                         text=True, check=True).stdout
    fns = {}
    for line in out.splitlines():
        m = FN_LINE.match(line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2).split(":")[-1]
            obj = os.path.basename(m.group(3))
            key = "%s (%s)" % (name, obj)
            fns[key] = fns.get(key, 0) + int(m.group(1).replace(",", ""))
    return fns


def count_once(a, bb, tool, worker, tmp, log, target, qd, n, tag):
    """One `count` run of n requests under tool ("callgrind" or "strace"),
    which sees the worker process for the worker target, else blk_bench
    itself. Returns the tool's output file."""
    if tool == "callgrind":
        out = os.path.join(tmp, "cg-%s.out" % tag)
        pre = [a.valgrind, "--tool=callgrind", "--callgrind-out-file=" + out]
    else:
        out = os.path.join(tmp, "st-%s.txt" % tag)
        pre = [a.strace, "-f", "-c", "-o", out]
    cmd = [bb, "count", "--target", target, "--image", a.cg_image,
           "--requests", str(n), "--qd", str(qd), "--timeout-ms", "120000"]
    if target == "worker":
        # The driver runs natively and spawns the worker with an empty
        # environment, so the tool comes in through a wrapper script.
        wrap = os.path.join(tmp, "wrap-%s-%s.sh" % (tool, tag))
        with open(wrap, "w") as f:
            f.write("#!/bin/sh\nexec %s \"$@\"\n"
                    % " ".join(shlex.quote(x) for x in pre + [worker]))
        os.chmod(wrap, 0o755)
        cmd += ["--worker", wrap, "--log-level", "info"]
    else:
        cmd = pre + cmd
    before = os.path.getsize(log) if os.path.exists(log) else 0
    run(cmd, log)
    if target == "worker":
        with open(log) as f:
            f.seek(before)
            text = f.read()
        # The figure is only the worker's if it used io_uring as it does
        # on its own.
        if "io_uring refused" in text or ", io_uring" not in text:
            raise SystemExit("native: the worker under %s did not use "
                             "io_uring; log in %s" % (tool, log))
    return out


def syscall_counts(path):
    """Calls by system call from `strace -c` output."""
    calls = {}
    with open(path) as f:
        for line in f:
            tok = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(tok) in (5, 6) and tok[3].isdigit() and tok[-1] != "total":
                calls[tok[-1]] = int(tok[3])
    return calls


def per_request(a, bb, tool, worker, tmp, log):
    """(X(2N) - X(N)) / N for every count spec, X the tool's total; with
    callgrind also the worker's instructions by function at queue depth 1,
    with strace the calls by name."""
    n = a.cg_requests
    rows = []
    breakdown = None
    for target, qd in COUNT_SPECS:
        per_req, by_name = [], []
        for rep in range(a.cg_repeat):
            tag = "%s-qd%d-%d" % (target, qd, rep)
            f1 = count_once(a, bb, tool, worker, tmp, log, target, qd, n,
                            tag + "-n")
            f2 = count_once(a, bb, tool, worker, tmp, log, target, qd,
                            2 * n, tag + "-2n")
            if tool == "strace":
                c1, c2 = syscall_counts(f1), syscall_counts(f2)
                diff = {k: (c2.get(k, 0) - c1.get(k, 0)) / n
                        for k in set(c1) | set(c2)}
                by_name.append(diff)
                per_req.append(sum(diff.values()))
                continue
            per_req.append((totals(f2) - totals(f1)) / n)
            if target == "worker" and qd == 1 and rep == 0:
                p1, p2 = per_function(f1), per_function(f2)
                diff = {k: (p2.get(k, 0) - p1.get(k, 0)) / n
                        for k in set(p1) | set(p2)}
                top = sorted(diff.items(), key=lambda kv: -kv[1])[:12]
                breakdown = [{"function": k, "instructions": v}
                             for k, v in top if v >= 1]
        row = {"target": target, "qd": qd}
        row.update(stats(per_req))
        if by_name:
            names = set().union(*by_name)
            med = {k: statistics.median(d.get(k, 0) for d in by_name)
                   for k in names}
            row["by_syscall"] = {k: v for k, v in
                                 sorted(med.items(), key=lambda kv: -kv[1])
                                 if v >= 0.005}
        rows.append(row)
    res = {"requests": n, "repeats": a.cg_repeat, "rows": rows}
    if breakdown:
        res["worker_qd1_by_function"] = breakdown
    return res


# ---- tables -------------------------------------------------------------------

def fmt_rate(v, unit):
    if unit == "IOPS":
        return "%.1fk" % (v / 1e3)
    return "%.0f" % v


def fmt_stat(s, f):
    return "%s [%s-%s]" % (f(s["median"]), f(s["min"]), f(s["max"]))


def print_tables(sec):
    t = sec["io"]
    im = t["image"]
    print("Native block I/O: 4 KiB random and 1 MiB sequential requests on a "
          "%d MiB image in %s (%s)" % (im["size_mib"], im["dir"], im["fs"]))
    print("%d runs of %gs each; median [min-max]; rates in IOPS (4 KiB) or "
          "MiB/s (1 MiB)" % (t["runs"], t["seconds"]))
    hdr = "%-16s %3s  %-26s %-26s %-16s %-26s" % (
        "test", "qd", "worker (bulkhead-dev-blk)", "io_uring direct",
        "worker/io_uring", "pread direct (qd 1)")
    print(hdr)
    print("-" * len(hdr))
    for j in t["jobs"]:
        ts = j["targets"]

        def cell(name):
            if name not in ts:
                return "-"
            return fmt_stat(ts[name]["rate"],
                            lambda v: fmt_rate(v, j["unit"]))
        pct = j.get("worker_pct_of_uring")
        pcts = ("%.0f%% [%.0f-%.0f]" % (pct["of_medians"], pct["min"],
                                       pct["max"]) if pct else "-")
        print("%-16s %3d  %-26s %-26s %-16s %-26s" % (
            j["name"], j["qd"], cell("worker"), cell("uring"), pcts,
            cell("pread")))
    print()
    print("CPU time per request, all threads of the process doing the I/O "
          "(us, median [min-max]);")
    print("the worker's kicks and interrupts per request (median), as the "
          "driver saw them")
    hdr = "%-16s %3s  %-22s %-22s %-22s %-12s %-12s" % (
        "test", "qd", "worker", "io_uring direct", "pread direct",
        "kicks/req", "irqs/req")
    print(hdr)
    print("-" * len(hdr))
    for j in t["jobs"]:
        ts = j["targets"]

        def cpu(name):
            if name not in ts:
                return "-"
            return fmt_stat(ts[name]["cpu_us_per_request"],
                            lambda v: "%.2f" % v)

        def per_req(what):
            if "worker" not in ts:
                return "-"
            return "%.3f" % ts["worker"][what]["median"]
        print("%-16s %3d  %-22s %-22s %-22s %-12s %-12s" % (
            j["name"], j["qd"], cpu("worker"), cpu("uring"), cpu("pread"),
            per_req("kicks_per_request"), per_req("interrupts_per_request")))
    ins = sec["instructions"]
    print()
    print("Instructions per 4 KiB random read, user space (callgrind; "
          "(I(2N) - I(N)) / N, N = %d, %d repeats)" % (ins["requests"],
                                                     ins["repeats"]))
    hdr = "%-26s %3s  %-28s %s" % ("process", "qd", "median [min-max]",
                                   "spread")
    print(hdr)
    print("-" * len(hdr))
    for r in ins["rows"]:
        print("%-26s %3d  %-28s %.1f%%" % (
            TARGET_TITLES[r["target"]], r["qd"],
            fmt_stat(r, lambda v: "%.0f" % v), r["spread_pct"]))
    sc = sec["syscalls"]
    print()
    print("System calls per 4 KiB random read (strace -f -c on the production "
          "worker; (C(2N) - C(N)) / N, N = %d, %d repeats)"
          % (sc["requests"], sc["repeats"]))
    hdr = "%-26s %3s  %-22s %s" % ("process", "qd", "median [min-max]",
                                   "by call (median)")
    print(hdr)
    print("-" * len(hdr))
    for r in sc["rows"]:
        print("%-26s %3d  %-22s %s" % (
            TARGET_TITLES[r["target"]], r["qd"],
            fmt_stat(r, lambda v: "%.2f" % v),
            ", ".join("%s %.2f" % kv for kv in r["by_syscall"].items())))
    if ins.get("worker_qd1_by_function"):
        print()
        print("Worker at qd 1, instructions per request by function (self):")
        for e in ins["worker_qd1_by_function"]:
            print("  %7.0f  %s" % (e["instructions"], e["function"]))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--dir", default="/dev/shm",
                   help="tmpfs directory for the images")
    a = p.parse_args()
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    a.seconds, a.warmup, a.size_mib = 2.0, 0.3, 256
    a.cg_requests, a.cg_repeat = 2000, 3
    if a.quick:
        a.seconds, a.warmup, a.size_mib = 0.25, 0.05, 64
        a.cg_requests, a.cg_repeat = 300, 2
    # The tables follow the progress lines on stderr in order.
    sys.stdout.reconfigure(line_buffering=True)
    a.valgrind = shutil.which("valgrind")
    a.strace = shutil.which("strace")
    if not a.valgrind or not a.strace:
        raise SystemExit("native: valgrind and strace are needed for the "
                         "counts per request (apt-get install valgrind "
                         "strace)")
    bb = os.path.join(a.build_dir, "bench", "blk_bench")
    worker = os.path.join(a.build_dir, "bin", "bulkhead-dev-blk")
    nosandbox = os.path.join(a.build_dir, "bench", "bench-dev-blk-nosandbox")
    for f in (bb, worker, nosandbox):
        if not os.access(f, os.X_OK):
            raise SystemExit("native: %s is not built" % f)

    tmp = tempfile.mkdtemp(prefix="bh-bench-native-")
    log = os.path.join(tmp, "native.log")
    keep = False
    try:
        sys.stderr.write("native: timing block I/O (%d runs)\n" % a.repeat)
        io = timing(a, bb, tmp, log)
        # A smaller image for callgrind: its size does not enter the
        # per-request count.
        fd, a.cg_image = tempfile.mkstemp(prefix="bh-bench-cg-",
                                          dir=a.dir)
        with os.fdopen(fd, "wb") as f:
            for _ in range(64):
                f.write(os.urandom(1 << 20))
        sys.stderr.write("native: counting instructions under callgrind\n")
        ins = per_request(a, bb, "callgrind", nosandbox, tmp, log)
        # strace gets along with seccomp: the production worker.
        sys.stderr.write("native: counting system calls under strace\n")
        sc = per_request(a, bb, "strace", worker, tmp, log)
    except SystemExit:
        keep = True
        raise
    finally:
        if getattr(a, "cg_image", None):
            os.unlink(a.cg_image)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sec = {
        "io": io,
        "instructions": ins,
        "syscalls": sc,
        "notes": [
            "worker: bulkhead-dev-blk (sandboxed, io_uring) driven by "
            "bh_vdriver: one queue of 256, indirect descriptors, EVENT_IDX",
            "instructions: bench-dev-blk-nosandbox, the same code with "
            "the namespace and seccomp calls stood in for at link time",
            "system calls: the production bulkhead-dev-blk under strace",
        ],
    }
    with open(a.out, "w") as f:
        json.dump(sec, f, indent=1)
    print_tables(sec)


if __name__ == "__main__":
    main()
