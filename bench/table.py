#!/usr/bin/env python3
"""Prints bench/run.sh's results as one table (Markdown), with the ratios of each curfew target
(curfew, curfew-bp) to direct and to the other proxies (nghttpx, HAProxy, nginx) in every
scenario, then checks the targets of issue 7 and issue 16. With --endpoints FILE (the endpoint-set
section's results), the endpoint-set tables and the targets of issue 18."""
import argparse
import json

# Row order: the references first, then curfew's targets.
TARGETS = ("direct", "nghttpx", "haproxy", "nginx", "curfew", "curfew-bp")
PEERS = ("nghttpx", "haproxy", "nginx")
# Ratio rows: each curfew target against these (curfew-bp: as before, direct and nginx only).
RATIO_REFS = {"curfew": ("direct",) + PEERS,
              "curfew-bp": ("direct", "nginx")}
IDLE_NOTES = {"nginx": "master + worker", "nghttpx": "main + worker process",
              "haproxy": "one process", "curfew": ""}

CODE_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 4: "DEADLINE_EXCEEDED", 8: "RESOURCE_EXHAUSTED",
              12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="?")
    ap.add_argument("--endpoints", default="")
    # TARGET=KB: a proxy's RSS once started, before any call (repeatable).
    ap.add_argument("--idle-kb", action="append", default=[])
    # TARGET=KB: its RSS idle again after all the load cases (repeatable).
    ap.add_argument("--after-kb", action="append", default=[])
    ap.add_argument("--h2load", default="")
    ap.add_argument("--pinned", default="1")
    ap.add_argument("--load", default="")
    a = ap.parse_args()
    if a.endpoints:
        endpoint_tables(a.endpoints, a.pinned, a.load)
    if not a.results:
        return
    idle_kb = {k: int(v) for k, v in (x.split("=", 1) for x in a.idle_kb)}
    after_kb = {k: int(v) for k, v in (x.split("=", 1) for x in a.after_kb)}

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
    cancel_rows = []
    for sc in order:
        group = by[sc]
        if sc.startswith("cancel lag"):
            facts["cancel"] = group
            for t in TARGETS:
                res = group.get(t)
                if res is None:
                    continue
                if "error" in res or "na" in res:
                    cancel_rows.append([t, "–", "", "", "", "", res.get("error") or res.get("na")])
                    continue
                cancel_rows.append([t, fmt(res["cancels"]), fmt(res["observed"]),
                                    fmt(res["lag_p50_us"]), fmt(res["lag_p90_us"]),
                                    fmt(res["lag_p99_us"]), fmt(res["lag_max_us"])])
            continue
        if "idle streams" in sc:
            for t in TARGETS:
                res = group.get(t)
                if not res:
                    continue
                if "na" in res:
                    out.append([sc, t, "n/a", "", "", "", "", "", "", res["na"]])
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
        def fan_missing(res):  # a curfew built without fan-out answers UNIMPLEMENTED
            return (sc.startswith("fan-out") and not res.get("ok") and
                    any(int(c) == 12 for c in res.get("codes", {})))
        for t in TARGETS:
            res = group.get(t)
            if res is None:
                continue
            if "na" in res:
                out.append([sc, t, "n/a", "", "", "", "", "", "", res["na"]])
                continue
            if "error" in res:
                out.append([sc, t, "–", "", "", "", "", "", "", res["error"]])
                continue
            if t.startswith("curfew") and fan_missing(res):
                out.append([sc, t, "n/a (fan-out not built)", "", "", "", "", "", "", notes_of(res)])
                continue
            proxy = t != "direct"
            out.append([sc, t, fmt(res["rps"]), fmt(res["p50_us"]), fmt(res["p90_us"]),
                        fmt(res["p99_us"]), fmt(res["p999_us"]),
                        fmt(res["proxy_cpu_s_per_1k"], 3) if proxy else "–",
                        fmt(res["proxy_hwm_kb"] / 1024, 1) if proxy else "–", notes_of(res)])
        facts[sc] = group
        for name, refs in RATIO_REFS.items():
            mine = group.get(name)
            if not mine or "error" in mine or "na" in mine or fan_missing(mine):
                continue
            for ref in refs:
                r = group.get(ref)
                if not r or "error" in r or "na" in r:
                    continue
                proxy = ref != "direct"
                out.append([sc, f"{name}/{ref}", ratio(mine["rps"], r["rps"]),
                            ratio(mine["p50_us"], r["p50_us"]), ratio(mine["p90_us"], r["p90_us"]),
                            ratio(mine["p99_us"], r["p99_us"]), ratio(mine["p999_us"], r["p999_us"]),
                            ratio(mine["proxy_cpu_s_per_1k"], r["proxy_cpu_s_per_1k"]) if proxy else "–",
                            ratio(mine["proxy_hwm_kb"], r["proxy_hwm_kb"]) if proxy else "–", ""])
    for t in TARGETS:
        if t not in idle_kb:
            continue
        notes = [IDLE_NOTES.get(t, "")]
        if t in after_kb:
            notes.append(f"after all cases, idle again: {after_kb[t] / 1024:.1f} MB")
        out.append(["idle (no calls yet)", t, "–", "", "", "", "", "", fmt(idle_kb[t] / 1024, 1),
                    "; ".join(n for n in notes if n)])

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

    if cancel_rows:
        print()
        print("Cancel lag (mode cancel, c=8: the caller cancels a held call 5 ms in; µs until the "
              "upstream's gRPC server sees the cancellation, CLOCK_MONOTONIC on both sides):")
        print()
        print("| target | cancels | observed | p50 µs | p90 µs | p99 µs | max µs |")
        print("|---|---|---|---|---|---|---|")
        for r in cancel_rows:
            print("| " + " | ".join(str(c) for c in r) + " |")
        print()

    if a.h2load:
        try:
            h2 = dict(line.split() for line in open(a.h2load) if line.strip())
        except (OSError, ValueError):
            h2 = {}
        if h2:
            print("h2load (second opinion, unary, 1 connection x 64 streams): " +
                  ", ".join(f"{t} {h2[t]} req/s" for t in TARGETS if t in h2))

    # ---- targets (issue 7) ----
    print()
    print("Targets:")
    def verdict(ok):
        return "MET" if ok else "MISSED"
    def usable(res):
        return bool(res) and "error" not in res and "na" not in res

    g64 = facts.get("unary c=64", {})
    if usable(g64.get("curfew")) and usable(g64.get("nginx")):
        c, n = g64["curfew"], g64["nginx"]
        r = c["rps"] / n["rps"] if n["rps"] else 0
        print(f"  throughput at c=64 >= 1.3x nginx: {r:.2f}x ({c['rps']:,.0f} vs {n['rps']:,.0f} calls/s) {verdict(r >= 1.3)}")
        if n["proxy_cpu_s_per_1k"]:
            rc = c["proxy_cpu_s_per_1k"] / n["proxy_cpu_s_per_1k"]
            print(f"  CPU per call <= 0.7x nginx: {rc:.2f}x ({c['proxy_cpu_s_per_1k'] * 1000:.1f} vs "
                  f"{n['proxy_cpu_s_per_1k'] * 1000:.1f} µs CPU/call) {verdict(rc <= 0.7)}")
    g1 = facts.get("unary c=1", {})
    if usable(g1.get("curfew")) and usable(g1.get("direct")):
        added = g1["curfew"]["p50_us"] - g1["direct"]["p50_us"]
        print(f"  added median latency at c=1 <= 100 µs: +{added:.0f} µs {verdict(added <= 100)}")
        bp = g1.get("curfew-bp")
        if bp and "error" not in bp:
            added_bp = bp["p50_us"] - g1["direct"]["p50_us"]
            print(f"    with busy_poll 0.05ms (curfew-bp): +{added_bp:.0f} µs {verdict(added_bp <= 100)}")
    if "curfew" in idle_kb:
        idle_mb = idle_kb["curfew"] / 1024
        again = (f" (idle again after all the load: {after_kb['curfew'] / 1024:.1f} MB, the allocator "
                 "keeps what the peak took)" if "curfew" in after_kb else "")
        print(f"  idle RSS <= 20 MB: {idle_mb:.1f} MB {verdict(idle_mb <= 20)}{again}")
    if "curfew_per_stream" in facts:
        per = facts["curfew_per_stream"] / 1024
        print(f"  <= 4 KiB per idle stream: {per:.2f} KiB {verdict(per <= 4)}")

    # ---- issue 16: cancel lag p99 within 0.5 ms of direct; c=1 p50 no higher than the peers' best ----
    cl = facts.get("cancel", {})
    if usable(cl.get("curfew")) and usable(cl.get("direct")):
        d = cl["curfew"]["lag_p99_us"] - cl["direct"]["lag_p99_us"]
        print(f"  curfew: cancel lag p99 within 0.5 ms of direct: {cl['curfew']['lag_p99_us']:.0f} vs "
              f"{cl['direct']['lag_p99_us']:.0f} µs (+{d:.0f}) {verdict(d <= 500)}")
    # Each with both clients: the project's grpc++ load generator, and grpc-go (bench_goload).
    for client, suffix in (("", ""), (" (grpc-go)", " (grpc-go)")):
        c1 = facts.get("unary c=1" + suffix, {})
        if usable(c1.get("curfew")):
            peers = [(c1[p]["p50_us"], p) for p in PEERS if usable(c1.get(p))]
            if peers:
                best, who = min(peers)
                print(f"  curfew{client}: c=1 p50 no higher than the best peer's ({who}): "
                      f"{c1['curfew']['p50_us']:.0f} vs {best:.0f} µs "
                      f"{verdict(c1['curfew']['p50_us'] <= best)}")
        c64 = facts.get("unary c=64" + suffix, {})
        mine = c64.get("curfew")
        if not usable(mine):
            continue
        ha = c64.get("haproxy")
        if usable(ha) and ha["rps"]:
            q = mine["rps"] / ha["rps"]
            print(f"  curfew{client}: calls/s at c=64 >= HAProxy's: {q:.2f}x ({mine['rps']:,.0f} vs "
                  f"{ha['rps']:,.0f}) {verdict(q >= 1.0)}")
        if not mine["proxy_cpu_s_per_1k"]:
            continue
        us = mine["proxy_cpu_s_per_1k"] * 1000
        for ref, limit, what in (("haproxy", 1.0, "<= HAProxy's"), ("nghttpx", 1.5, "within 1.5x nghttpx's")):
            r = c64.get(ref)
            if not usable(r) or not r["proxy_cpu_s_per_1k"]:
                continue
            q = mine["proxy_cpu_s_per_1k"] / r["proxy_cpu_s_per_1k"]
            print(f"  curfew{client}: CPU per call at c=64 {what}: {q:.2f}x ({us:.1f} vs "
                  f"{r['proxy_cpu_s_per_1k'] * 1000:.1f} µs CPU/call) {verdict(q <= limit)}")


def endpoint_tables(path, pinned, load):
    """Issue 18: a slow pod under round robin and peak-EWMA; a pod killed without and with retries."""
    rows = [json.loads(line) for line in open(path) if line.strip()]

    def verdict(ok):
        return "MET" if ok else "MISSED"

    def failures(res):
        return sum(n for c, n in res.get("codes", {}).items() if int(c) != 0)

    def codes_text(res):
        parts = [f"{CODE_NAMES.get(int(c), c)} {n}" for c, n in sorted(res.get("codes", {}).items(),
                                                                     key=lambda kv: int(kv[0]))
                 if int(c) != 0]
        if res.get("unfinished"):
            parts.append(f"unfinished {res['unfinished']}")
        return ", ".join(parts) or "none"

    def print_table(head, body):
        widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(head, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in body:
            print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")

    slow = {r["balancer"]: r for r in rows if r["scenario"] == "slow"}
    kill = {r["policy"]: r for r in rows if r["scenario"] == "kill"}
    print()
    where = ("Pinned: load generator and pods on CPU 0, curfew (workers: 1) on CPU 1."
             if pinned == "1" else "Not pinned.")
    print("Endpoint sets (issue 18): one upstream, three pods (127.0.0.2-4, one echo server each). "
          + where + (f" Load average after: {load}." if load else ""))
    shares = {}
    if slow:
        print()
        slow_pod = next(iter(slow.values()))["slow"]
        pods = list(next(iter(slow.values()))["calls"].keys())
        head = ["slow pod, unary c=16", "calls/s", "p50 ms", "p99 ms"] + \
               [f"{p}{' (slow)' if p == slow_pod else ''}" for p in pods] + ["failed"]
        body = []
        for name in ("round_robin", "peak_ewma"):
            r = slow.get(name)
            if not r:
                continue
            res = r["result"]
            if "error" in res:
                body.append([name, "–", "", ""] + [""] * len(pods) + [res["error"]])
                continue
            total = sum(n for n in r["calls"].values() if n)
            cells = [f"{100.0 * (n or 0) / total:.1f}% ({n:,})" if total and n is not None else "?"
                     for n in r["calls"].values()]
            if total and r["calls"].get(slow_pod) is not None:
                shares[name] = r["calls"][slow_pod] / total
            body.append([f"balancer: {name}", f"{res['rps']:,.0f}", f"{res['p50_us'] / 1000:.2f}",
                         f"{res['p99_us'] / 1000:.2f}"] + cells + [codes_text(res)])
        print_table(head, body)
        print()
        print("Share: calls each pod's echo server accepted over the whole run (warm-up included); "
              "latency: calls completed in the measured window.")
    if kill:
        print()
        pod_ms = next(iter(kill.values())).get("pod_ms", 0)
        head = [f"1 pod of 3 killed, unary c=64, pods {pod_ms} ms/call", "calls/s", "p99 ms", "failed calls", "codes",
                "ejected (after the kill)", "failures (after the kill)"]
        body = []
        for name in ("none", "retry"):
            r = kill.get(name)
            if not r:
                continue
            res, k = r["result"], r["kill"]
            label = "no retry policy" if name == "none" else r["retry"]
            if "error" in res or "error" in k:
                body.append([label, "–", "", "", "", "", res.get("error") or k.get("error")])
                continue
            killed = k["killed_mono_s"]
            ej = k.get("ejected_mono_s")
            ejected = f"{(ej - killed) * 1000:.0f} ms" if ej else "not within 5 s"
            if "first_failure_mono_s" in res:
                seen = (f"{(res['first_failure_mono_s'] - killed) * 1000:.0f} .. "
                        f"{(res['last_failure_mono_s'] - killed) * 1000:.0f} ms")
            else:
                seen = "–"
            body.append([label, f"{res['rps']:,.0f}", f"{res['p99_us'] / 1000:.2f}",
                         f"{failures(res):,}", codes_text(res), ejected, seen])
        print_table(head, body)
        print()
        print("Failed calls: non-OK statuses the load generator saw in the run (the kill is halfway "
              "through the measured window); ejected: when /upstreams first listed the pod ejected.")

    print()
    print("Targets (issue 18):")
    if "peak_ewma" in shares:
        s = shares["peak_ewma"]
        print(f"  slow pod under 10% of the calls with peak-EWMA: {100 * s:.1f}% "
              f"(round robin: {100 * shares.get('round_robin', float('nan')):.1f}%) {verdict(s < 0.10)}")
    rr, pe = slow.get("round_robin", {}).get("result", {}), slow.get("peak_ewma", {}).get("result", {})
    if rr.get("p99_us") and pe.get("p99_us"):
        q = pe["p99_us"] / rr["p99_us"]
        print(f"  p99 with peak-EWMA at most half of round robin's: {pe['p99_us'] / 1000:.2f} vs "
              f"{rr['p99_us'] / 1000:.2f} ms ({q:.2f}x) {verdict(q <= 0.5)}")
    rt = kill.get("retry", {}).get("result", {})
    if "rps" in rt:
        n = failures(rt) + (rt.get("unfinished") or 0)
        print(f"  no caller sees a failure when 1 pod of 3 is killed, with retries: {n} failed "
              f"(without retries: {failures(kill.get('none', {}).get('result', {}))}) {verdict(n == 0)}")


if __name__ == "__main__":
    main()
