#!/usr/bin/python3
"""Merges the JSON of each benchmark section (bench/<section>/<section>.py)
into one results file, with what describes the machine and the tree."""
import argparse
import datetime
import json
import os
import platform
import subprocess


def first_line(path, prefix=""):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):].strip().strip('"')
    except OSError:
        pass
    return None


def git(top, *args):
    r = subprocess.run(["git", "-C", top] + list(args), capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def host(load_start):
    return {
        "cpus": os.cpu_count(),
        "cpu_model": first_line("/proc/cpuinfo", "model name\t: "),
        "kernel": platform.release(),
        "os": first_line("/etc/os-release", "PRETTY_NAME="),
        "kvm": os.access("/dev/kvm", os.R_OK | os.W_OK),
        # Other work on the machine shows here: the figures are only as
        # good as the machine was quiet.
        "load_average_at_start": [float(x) for x in load_start.split()],
        "load_average_at_end": list(os.getloadavg()),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--top", required=True, help="the source tree")
    p.add_argument("--options", default="", help="how bench/run was called")
    p.add_argument("--load-start", default="",
                   help="/proc/loadavg's first three fields at the start")
    p.add_argument("sections", nargs="+", help="NAME=FILE")
    a = p.parse_args()
    res = {
        "date": datetime.date.today().isoformat(),
        "time": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "commit": git(a.top, "rev-parse", "HEAD"),
        "tree_modified": bool(git(a.top, "status", "--porcelain",
                                  "--untracked-files=no")),
        "options": a.options,
        "host": host(a.load_start),
        "sections": {},
    }
    for s in a.sections:
        name, path = s.split("=", 1)
        with open(path) as f:
            res["sections"][name] = json.load(f)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
