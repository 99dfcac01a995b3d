#!/usr/bin/env python3
"""Checks the Grafana dashboard: valid JSON, the panels the issue asks for, unique panel ids,
every query names only metrics documented in docs/metrics.md (so a renamed metric cannot leave
a dashboard panel silently empty), every query uses the data source variable.

usage: check_dashboard.py DASHBOARD.json METRICS.md
"""
import json
import re
import sys

REQUIRED_PANELS = {
    "timeouts by cause": "curfew_timeouts_total",
    "cancellations by cause": "curfew_cancellations_total",
    "fan-out failures": "curfew_fanout_failures_total",
    "latency p50 / p99": "curfew_request_duration_seconds_bucket",
    "in flight by route": "curfew_inflight_requests",
}


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def main(dashboard_path, metrics_md_path):
    errors = []
    with open(dashboard_path, encoding="utf-8") as f:
        dashboard = json.load(f)
    documented = set(re.findall(r"`((?:curfew|process)_[a-z_]+)", open(metrics_md_path, encoding="utf-8").read()))
    if not documented:
        errors.append(f"{metrics_md_path}: no metric names found")

    all_panels = list(panels(dashboard.get("panels", [])))
    ids = [p.get("id") for p in all_panels]
    if len(ids) != len(set(ids)):
        errors.append("panel ids are not unique")
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        errors.append("no 'datasource' template variable")

    queries = 0
    for p in all_panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", "?")
        if "gridPos" not in p:
            errors.append(f"panel '{title}': no gridPos")
        if not p.get("targets"):
            errors.append(f"panel '{title}': no queries")
        for t in p.get("targets", []):
            queries += 1
            expr = t.get("expr", "")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"panel '{title}': query {t.get('refId')} does not use ${{datasource}}")
            for name in re.findall(r"\b((?:curfew|process)_[a-z_]+)", expr):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                if name not in documented and base not in documented:
                    errors.append(f"panel '{title}': {name} is not in {metrics_md_path}")
            for var in re.findall(r"\$(\w+)", expr):
                if var not in variables and not var.startswith("__"):
                    errors.append(f"panel '{title}': unknown variable ${var}")
    titles = {p.get("title", "").lower(): p for p in all_panels}
    for wanted, metric in REQUIRED_PANELS.items():
        match = [p for t, p in titles.items() if wanted in t]
        if not match:
            errors.append(f"no panel titled like '{wanted}'")
        elif not any(metric in t.get("expr", "") for p in match for t in p.get("targets", [])):
            errors.append(f"panel '{wanted}' does not query {metric}")
    if queries < 10:
        errors.append(f"only {queries} queries")

    for e in errors:
        print(f"{dashboard_path}: {e}")
    if not errors:
        print(f"{dashboard_path}: OK ({len(all_panels)} panels, {queries} queries)")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
