#!/usr/bin/env python3
"""Prints bench/run.sh's results as one table (Markdown), with the ratios curfew/direct and
curfew/nginx of every scenario, then checks the targets of issue 7."""
import argparse
import json

CODE_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 4: "DEADLINE_EXCEEDED", 8: "RESOURCE_EXHAUSTED",
              12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--curfew-idle-kb", type=int, default=0)
    ap.add_argument("--curfew-after-kb", type=int, default=0)
    ap.add_argument("--nginx-idle-kb", type=int, default=0)
    ap.add_argument("--h2load", default="")
    ap.add_argument("--pinned", default="1")
    ap.add_argument("--load", default="")
    a = ap.parse_args()

    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    by = {}
    order = []
    for r in rows:
        if r["scenario"] not in by:
            order.append(r["scenario"])
            by[r["scenario"]] = {}
        by[r["scenario"]][r["target"]] = r["result"]

    head = ["scenario", "target", "calls/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs",
            "proxy CPU s/1k calls", "proxy peak RSS MB", "notes"]
    out = [head]

    def fmt(x, nd=0):
        return f"{x:,.{nd}f}" if isinstance(x, (int, float)) else str(x)

    def notes_of(res):
        codes = res.get("codes", {})
        total = sum(codes.values())
        parts = []
        for c, n in sorted(codes.items(), key=lambda kv: int(kv[0])):
            if int(c) != 0 and total:
                parts.append(f"{CODE_NAMES.get(int(c), c)} {100.0 * n / total:.1f}%")
        if res.get("dropped"):
            parts.append(f"dropped {res['dropped']}")
        if res.get("unfinished"):
            parts.append(f"unfinished {res['unfinished']}")
        return ", ".join(parts)

    def ratio(x, y, nd=2):
        if not isinstance(x, (int, float)) or not isinstance(y, (int, float)) or y == 0:
            return "–"
        return f"{x / y:.{nd}f}×"

    facts = {}
    for sc in order:
        group = by[sc]
        if "idle streams" in sc:
            for t in ("direct", "nginx", "curfew"):
                res = group.get(t)
                if not res:
                    continue
                if "error" in res:
                    out.append([sc, t, "–", "", "", "", "", "", "", res["error"]])
                    continue
                per = res["bytes_per_stream"]
                facts[f"{t}_per_stream"] = per
                label = "direct (upstream's own RSS)" if t == "direct" else t
                out.append([sc, label, "–", "", "", "", "", "", fmt(res["rss_with_streams_kb"] / 1024, 1),
                            f"{res['established']}/{res['streams']} open; RSS {res['rss_before_kb'] / 1024:.1f}"
                            f" → {res['rss_with_streams_kb'] / 1024:.1f} MB = {per / 1024:.2f} KiB/stream"])
            continue
        cur = group.get("curfew", {})
        fan_missing = (sc.startswith("fan-out") and not cur.get("ok") and
                       any(int(c) == 12 for c in cur.get("codes", {})))
        for t in ("direct", "nginx", "curfew", "curfew-bp"):
            res = group.get(t)
            if res is None:
                continue
            if "error" in res:
                out.append([sc, t, "–", "", "", "", "", "", "", res["error"]])
                continue
            if t == "curfew" and fan_missing:
                out.append([sc, t, "n/a (fan-out not built)", "", "", "", "", "", "", notes_of(res)])
                continue
            proxy = t != "direct"
            out.append([sc, t, fmt(res["rps"]), fmt(res["p50_us"]), fmt(res["p90_us"]),
                        fmt(res["p99_us"]), fmt(res["p999_us"]),
                        fmt(res["proxy_cpu_s_per_1k"], 3) if proxy else "–",
                        fmt(res["proxy_hwm_kb"] / 1024, 1) if proxy else "–", notes_of(res)])
        if fan_missing or "curfew" not in group or "error" in cur:
            continue
        for name in ("curfew", "curfew-bp"):
            mine = group.get(name)
            if not mine or "error" in mine:
                continue
            for ref in ("direct", "nginx"):
                r = group.get(ref)
                if not r or "error" in r:
                    continue
                proxy = ref != "direct"
                out.append([sc, f"{name}/{ref}", ratio(mine["rps"], r["rps"]),
                            ratio(mine["p50_us"], r["p50_us"]), ratio(mine["p90_us"], r["p90_us"]),
                            ratio(mine["p99_us"], r["p99_us"]), ratio(mine["p999_us"], r["p999_us"]),
                            ratio(mine["proxy_cpu_s_per_1k"], r["proxy_cpu_s_per_1k"]) if proxy else "–",
                            ratio(mine["proxy_hwm_kb"], r["proxy_hwm_kb"]) if proxy else "–", ""])
        facts[sc] = group
    out.append(["idle (no calls yet)", "curfew", "–", "", "", "", "", "", fmt(a.curfew_idle_kb / 1024, 1),
                f"after all cases, idle again: {a.curfew_after_kb / 1024:.1f} MB"])
    out.append(["idle (no calls yet)", "nginx", "–", "", "", "", "", "", fmt(a.nginx_idle_kb / 1024, 1),
                "master + worker"])

    widths = [max(len(str(r[i])) for r in out) for i in range(len(head))]
    def line(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print()
    print(line(out[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in out[1:]:
        print(line(r))
    print()
    print("Proxy CPU: utime+stime of the proxy process(es) over the measured window, from /proc/PID/stat, "
          "per 1,000 completed calls. Peak RSS: VmHWM, reset at the window's start. "
          + ("Pinned: client and upstream on CPU 0, proxy on CPU 1." if a.pinned == "1" else "Not pinned.")
          + (f" Load average before the run: {a.load}." if a.load else ""))

    if a.h2load:
        try:
            h2 = dict(line.split() for line in open(a.h2load) if line.strip())
        except (OSError, ValueError):
            h2 = {}
        if h2:
            print("h2load (second opinion, unary, 1 connection x 64 streams): " +
                  ", ".join(f"{t} {h2[t]} req/s" for t in ("direct", "nginx", "curfew") if t in h2))

    # ---- targets (issue 7) ----
    print()
    print("Targets:")
    def verdict(ok):
        return "MET" if ok else "MISSED"
    g64 = facts.get("unary c=64", {})
    if g64.get("curfew") and g64.get("nginx"):
        c, n = g64["curfew"], g64["nginx"]
        r = c["rps"] / n["rps"] if n["rps"] else 0
        print(f"  throughput at c=64 >= 1.3x nginx: {r:.2f}x ({c['rps']:,.0f} vs {n['rps']:,.0f} calls/s) {verdict(r >= 1.3)}")
        if n["proxy_cpu_s_per_1k"]:
            rc = c["proxy_cpu_s_per_1k"] / n["proxy_cpu_s_per_1k"]
            print(f"  CPU per call <= 0.7x nginx: {rc:.2f}x ({c['proxy_cpu_s_per_1k'] * 1000:.1f} vs "
                  f"{n['proxy_cpu_s_per_1k'] * 1000:.1f} µs CPU/call) {verdict(rc <= 0.7)}")
    g1 = facts.get("unary c=1", {})
    if g1.get("curfew") and g1.get("direct"):
        added = g1["curfew"]["p50_us"] - g1["direct"]["p50_us"]
        print(f"  added median latency at c=1 <= 100 µs: +{added:.0f} µs {verdict(added <= 100)}")
        bp = g1.get("curfew-bp")
        if bp and "error" not in bp:
            added_bp = bp["p50_us"] - g1["direct"]["p50_us"]
            print(f"    with busy_poll 0.05ms (curfew-bp): +{added_bp:.0f} µs {verdict(added_bp <= 100)}")
    idle_mb = a.curfew_idle_kb / 1024
    print(f"  idle RSS <= 20 MB: {idle_mb:.1f} MB {verdict(idle_mb <= 20)} (idle again after all the load: "
          f"{a.curfew_after_kb / 1024:.1f} MB, the allocator keeps what the peak took)")
    if "curfew_per_stream" in facts:
        per = facts["curfew_per_stream"] / 1024
        print(f"  <= 4 KiB per idle stream: {per:.2f} KiB {verdict(per <= 4)}")


if __name__ == "__main__":
    main()
