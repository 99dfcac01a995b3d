#!/usr/bin/env python3
"""bench/stages.py: the latency budget of one unary call at c=1, stage by stage, from outside.

Reads `perf script` output of a system-wide `perf record -k CLOCK_MONOTONIC` of the socket
syscalls (enter and exit of read, recvmsg, recvfrom, readv, write, sendmsg, sendto, writev) taken
while one caller made unary calls one at a time (c=1) through a proxy, or directly. The caller,
the proxy and the upstream are told apart by PID (the process IDs given on the command line,
threads included). Calls are sequential, so each call is the chain of the first syscall of the
next hop after the previous one:

  a  caller sends the request         (first send by the caller after it received the last reply)
  b  proxy has read it                (first read returning bytes in the proxy after a)
  c  proxy sends it upstream          (first send by the proxy after b)
  d  upstream has read it             (first read returning bytes in the upstream after c)
  e  upstream sends the reply         (first send by the upstream after d)
  f  proxy has read the reply         (first read returning bytes in the proxy after e)
  g  proxy sends the reply            (first send by the proxy after f)
  h  caller has read the reply        (first read returning bytes in the caller after g)

Sends are timed at syscall entry (the bytes reach the peer's socket during the syscall), reads
at syscall exit (the bytes are in the process). Direct calls have no proxy: a, d, e, h.
a -> b, c -> d, e -> f and g -> h are hand-offs between processes (the kernel's loopback and the
scheduler waking the reader); b -> c and f -> g are the proxy's own work on the request and on
the reply. A chain is dropped when a hop is missing before the next request (a connection-level
frame such as a PING answered in between can break one); the count kept is printed.

Output: one JSON object: the median and p90 of each stage in microseconds, and the calls kept.

  stages.py CALLER_PID UPSTREAM_PID PROXY_PIDS|- < perf-script.txt     # one target
  stages.py --table RESULTS.jsonl    # lines {"target": T, "result": <the object above>}: a table
"""
import json
import re
import statistics
import sys

SENDS = {"write", "sendmsg", "sendto", "writev"}
READS = {"read", "recvmsg", "recvfrom", "readv"}
LINE = re.compile(
    r"^\s*\S.*?\s+(\d+)/(\d+)\s+\[\d+\]\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)$")


def parse(stream, roles):
    """Yields (time_us, role, 'send'|'read') for sends (at entry) and reads that returned bytes
    (at exit), of the processes in `roles` (pid -> role)."""
    pending = {}  # tid -> syscall name, for exits
    for line in stream:
        m = LINE.match(line)
        if not m:
            continue
        pid, tid, t, kind, name, args = m.groups()
        role = roles.get(int(pid))
        if role is None:
            continue
        t_us = float(t) * 1e6
        if kind == "enter":
            if name in SENDS:
                yield t_us, role, "send"
            elif name in READS:
                pending[tid] = name
        elif name in READS and pending.pop(tid, None) == name:
            ret = re.search(r"0x([0-9a-f]+)", args)
            if ret and not args.strip().startswith("0xffff") and int(ret.group(1), 16) > 0:
                yield t_us, role, "read"


def chains(events, proxied):
    """Cuts the event stream into calls: lists of hop times a..h (a, d, e, h when direct)."""
    hops = ([("caller", "send"), ("proxy", "read"), ("proxy", "send"), ("upstream", "read"),
             ("upstream", "send"), ("proxy", "read"), ("proxy", "send"), ("caller", "read")]
            if proxied else
            [("caller", "send"), ("upstream", "read"), ("upstream", "send"), ("caller", "read")])
    chain = []
    for t, role, what in events:
        if (role, what) == hops[0] and len(chain) != 0 and chain[-1][1] != len(hops) - 1:
            chain = []  # a new request before the last chain ended: drop it
        want = len(chain)
        if want < len(hops) and (role, what) == hops[want]:
            chain.append((t, want))
            if len(chain) == len(hops):
                yield [x[0] for x in chain]
                chain = []


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows = [r for r in rows if "stages" in r["result"]]
    if not rows:
        return
    names = ["caller -> proxy", "proxy: request", "proxy -> upstream", "upstream",
             "upstream -> proxy", "proxy: reply", "proxy -> caller"]
    direct = {"caller -> upstream": "proxy -> upstream", "upstream -> caller": "upstream -> proxy"}
    targets = [r["target"] for r in rows]
    cells = {}
    for r in rows:
        for name, v in r["result"]["stages"].items():
            cells[(direct.get(name, name), r["target"])] = f'{v["p50_us"]:.0f} ({v["p90_us"]:.0f})'
        v = r["result"]["send_to_reply"]
        cells[("send to reply", r["target"])] = f'**{v["p50_us"]:.0f}** ({v["p90_us"]:.0f})'
        cells[("calls traced", r["target"])] = str(r["result"]["calls"])
    print()
    print("One unary call at c=1, stage by stage (perf syscall trace): median (p90) µs")
    print("(direct: the caller's hand-off shows as proxy -> upstream, the reply's as upstream -> proxy)")
    print()
    print("| stage | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))
    for name in names + ["send to reply", "calls traced"]:
        print(f"| {name} | " + " | ".join(cells.get((name, t), "–") for t in targets) + " |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        table(sys.argv[2])
        return
    if len(sys.argv) < 4:
        sys.exit("usage: stages.py CALLER_PID UPSTREAM_PID PROXY_PID|- < perf-script.txt")
    roles = {int(sys.argv[1]): "caller", int(sys.argv[2]): "upstream"}
    proxied = sys.argv[3] != "-"
    if proxied:
        for p in sys.argv[3].split(","):
            roles[int(p)] = "proxy"
    names = (["caller -> proxy", "proxy: request", "proxy -> upstream", "upstream",
              "upstream -> proxy", "proxy: reply", "proxy -> caller"]
             if proxied else ["caller -> upstream", "upstream", "upstream -> caller"])
    stages = [[] for _ in names]
    totals = []
    for c in chains(parse(sys.stdin, roles), proxied):
        for i in range(len(names)):
            stages[i].append(c[i + 1] - c[i])
        totals.append(c[-1] - c[0])
    if not totals:
        print(json.dumps({"error": "no complete call found"}))
        return

    def pct(v, p):
        v = sorted(v)
        return round(v[min(len(v) - 1, int(p * len(v)))], 1)

    out = {"calls": len(totals), "stages": {}}
    for name, v in zip(names, stages):
        out["stages"][name] = {"p50_us": round(statistics.median(v), 1), "p90_us": pct(v, 0.9)}
    out["send_to_reply"] = {"p50_us": round(statistics.median(totals), 1), "p90_us": pct(totals, 0.9)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
