#!/usr/bin/env python3
"""bench/report.py: turns the TSV written by bench/run.sh into the markdown report.

usage: report.py RESULTS.tsv [--mode M] [--command CMD] [--machine TEXT] [--version=NAME=TEXT]...

Ratios are always "davit relative to the peer, higher is better for davit":
requests/s and MiB/s are davit / peer; times are peer / davit.
"""
import argparse
import csv
import datetime
import sys

RATE = [
    ("get4k", "GET 4 KiB file"),
    ("propfind0", "PROPFIND Depth 0, file, allprop"),
    ("propfind1_allprop", "PROPFIND Depth 1, 1,000 entries, allprop"),
    ("propfind1_prop3", "PROPFIND Depth 1, 1,000 entries, 3 props"),
    ("propfind1_win32", "PROPFIND Depth 1, 1,000 entries with Windows' dead properties, allprop"),
    ("put64k", "PUT new 64 KiB files"),
]
ONESHOT = [
    ("propfind_inf", "PROPFIND Depth infinity (total)"),
    ("copy_tree1000", "COPY 1,000-file tree"),
    ("move_tree1000", "MOVE 1,000-file tree"),
    ("move_tree10k", "MOVE 10,000-file tree"),
    ("delete_tree1000", "DELETE 1,000-file tree"),
    ("get_big", "GET big file"),
    ("put_big", "PUT big file"),
]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt_int(v):
    return f"{v:,.0f}" if v is not None else "n/a"


def mib(kib):
    k = num(kib)
    return f"{k / 1024:.1f}" if k else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--duration", default="?")
    ap.add_argument("--inf-total", type=int, default=0)
    ap.add_argument("--big-mib", type=int, default=0)
    ap.add_argument("--reps", default="1")
    ap.add_argument("--elapsed", default="?")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--machine", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--version", action="append", default=[])
    a = ap.parse_args()

    rows = list(csv.DictReader(open(a.tsv, newline=""), delimiter="\t"))
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    res = {(r["server"], r["workload"], r["conc"]): r for r in rows}
    concs = sorted({r["conc"] for r in rows if r["kind"] == "rate"}, key=int)
    # davit on its other backend and the object store measured directly are not peers.
    OURS = ("davit", "davit-pg", "s3-direct")
    peers = [s for s in servers if s not in OURS]
    out = []
    w = out.append

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f"Run: {now}, mode `{a.mode}`, {a.duration} s per request-rate point "
      f"(wrk, 2 threads; 1 thread at 1 connection), one-shot workloads median of {a.reps}, "
      f"{a.elapsed} s in all.  ")
    w(f"Machine: {a.machine}; load average at the end: {a.load}.  ")
    w(f"Command: `{a.command}`")
    w("")
    if a.version:
        w("| server | version |")
        w("|---|---|")
        for v in a.version:
            name, _, text = v.partition("=")
            w(f"| {name} | {text} |")
        w("")

    def cell_rate(s, wl, c):
        r = res.get((s, wl, c))
        if not r:
            return "—"
        if r["note"]:
            return r["note"]
        v = num(r["value"])
        if not v:
            txt = f"none completed in {a.duration} s"
        else:
            txt = f"{v:,.0f} ({r['p50_ms']} / {r['p99_ms']})" if v >= 10 else \
                f"{v:.1f} ({r['p50_ms']} / {r['p99_ms']})"
        if r.get("cpu_us"):
            txt += f" {r['cpu_us']} µs"
        if r["errors"] not in ("", "0"):
            txt += f" **{r['errors']} errors**"
        return txt

    w("### Request rate: req/s (p50 / p99 latency in ms) and the server's CPU time per "
      "request, peak RSS of the server")
    w("")
    for wl, title in RATE:
        w(f"**{title}**")
        w("")
        w("| server | " + " | ".join(f"{c} conn" for c in concs) + " | peak RSS MiB |")
        w("|---|" + "---:|" * (len(concs) + 1))
        for s in servers:
            if not any((s, w_, c) in res for w_, _ in RATE for c in concs):
                continue
            rss = [num(res[(s, wl, c)]["rss_kib"]) for c in concs
                   if (s, wl, c) in res and num(res[(s, wl, c)]["rss_kib"])]
            w(f"| {s} | " + " | ".join(cell_rate(s, wl, c) for c in concs)
              + f" | {mib(max(rss) * 1 if rss else None)} |")
        w("")

    w(f"### One-shot workloads (Depth infinity over {a.inf_total:,} files, "
      f"{a.big_mib} MiB transfers)")
    w("")
    w("| server | Depth ∞ TTFB ms | Depth ∞ total ms | Depth ∞ peak MiB | COPY ms | MOVE ms "
      "| MOVE 10k ms | DELETE ms | GET MiB/s | GET peak MiB | PUT MiB/s | PUT peak MiB |")
    w("|---|" + "---:|" * 11)
    for s in servers:
        def g(wl, field="value"):
            r = res.get((s, wl, "1"))
            if not r:
                return "—"
            if r["note"] and not r["value"]:
                return r["note"]
            v = r[field]
            if field == "rss_kib":
                return mib(v)
            return (v or "n/a") + (f" ({r['note']})" if r["note"] and field == "value" else "")
        w(f"| {s} | {g('propfind_inf', 'ttfb_ms')} | {g('propfind_inf')} "
          f"| {g('propfind_inf', 'rss_kib')} | {g('copy_tree1000')} | {g('move_tree1000')} "
          f"| {g('move_tree10k')} | {g('delete_tree1000')} | {g('get_big')} | {g('get_big', 'rss_kib')} "
          f"| {g('put_big')} | {g('put_big', 'rss_kib')} |")
    w("")

    def ratio(wl, c, peer):
        d, p = res.get(("davit", wl, c)), res.get((peer, wl, c))
        if not d or not p:
            return None
        dv, pv = num(d["value"]), num(p["value"])
        if not dv or not pv:
            if d["kind"] == "rate" and dv and pv == 0.0:
                return float("inf")  # the peer completed no request in the run
            return None
        return pv / dv if d["kind"] == "time" else dv / pv

    def fr(x):
        if x == float("inf"):
            return "∞ (peer: none)"
        return f"{x:.2f}x" if x is not None else "n/a"

    def yes(b):
        return "n/a" if b is None else ("yes" if b else "**no**")

    def lowest(wl, c, among):
        """The peer davit is least ahead of (or most behind), and that ratio; None without results."""
        rs = [(p, ratio(wl, c, p)) for p in among]
        rs = [(p, r) for p, r in rs if r is not None]
        return min(rs, key=lambda x: x[1]) if rs else None

    if "davit" in servers and peers:
        w("### davit relative to each peer (higher is better for davit: req/s and MiB/s "
          "davit/peer, times peer/davit)")
        w("")
        w("| workload | conn | " + " | ".join(peers) + " |")
        w("|---|---:|" + "---:|" * len(peers))
        for wl, title in RATE:
            for c in concs:
                w(f"| {title} | {c} | " + " | ".join(fr(ratio(wl, c, p)) for p in peers) + " |")
        for wl, title in ONESHOT:
            w(f"| {title} | 1 | " + " | ".join(fr(ratio(wl, "1", p)) for p in peers) + " |")
        w("")

    # ---- issue 6 targets
    if "davit" in servers:
        w("### Issue 6 targets")
        w("")
        w("| target | measured | met |")
        w("|---|---|---|")

        def vs_nginx(wl, title, need):
            for c in concs:
                r = ratio(wl, c, "nginx") if "nginx" in servers else None
                w(f"| {title}, {c} conn: ≥ {need}x nginx | {fr(r)} | "
                  f"{yes(None if r is None else r >= need)} |")

        for wl, title in RATE[1:4]:
            vs_nginx(wl, title, 1.5)
        vs_nginx("get4k", "GET 4 KiB", 0.9)
        def ahead_of_others(c):
            worst = lowest("get4k", c, [p for p in peers if p != "nginx"])
            if worst:
                w(f"| GET 4 KiB, {c} conn: ahead of every other peer | lowest {fr(worst[1])} "
                  f"({worst[0]}) | {yes(worst[1] > 1.0)} |")

        for c in concs:
            ahead_of_others(c)

        def vs_best(wl, title, c):
            worst = lowest(wl, c, peers)
            if not worst:
                w(f"| {title}: ≥ best peer | no peer result | n/a |")
                return
            w(f"| {title}: ≥ best peer | {fr(worst[1])} of {worst[0]} | {yes(worst[1] >= 1.0)} |")

        for c in concs:
            vs_best("put64k", f"PUT 64 KiB, {c} conn", c)
        vs_best("get_big", f"GET {a.big_mib} MiB", "1")
        vs_best("put_big", f"PUT {a.big_mib} MiB", "1")
        d = res.get(("davit", "propfind_inf", "1"))
        ap_ = res.get(("apache", "propfind_inf", "1"))
        if d and num(d["value"]):
            if ap_ and num(ap_["value"]):
                r = num(d["value"]) / num(ap_["value"])
                w(f"| Depth ∞: ≤ 0.5x Apache's time | {r:.2f}x ({d['value']} vs {ap_['value']} ms) "
                  f"| {yes(r <= 0.5)} |")
            else:
                w("| Depth ∞: ≤ 0.5x Apache's time | no Apache result | n/a |")
            t = num(d["ttfb_ms"])
            w(f"| Depth ∞: first byte < 100 ms | {d['ttfb_ms']} ms | {yes(t is not None and t < 100)} |")
            m = num(d["rss_kib"])
            w(f"| Depth ∞: peak memory < 100 MiB | {mib(d['rss_kib'])} MiB | "
              f"{yes(m is not None and m < 100 * 1024)} |")
        else:
            w(f"| Depth ∞ targets | davit: {d['note'] if d else 'no result'} | **no** |")
        for wl in ("get_big", "put_big"):
            r = res.get(("davit", wl, "1"))
            m = num(r["rss_kib"]) if r else None
            w(f"| {wl.replace('_big', '').upper()} {a.big_mib} MiB: peak server memory < 50 MiB "
              f"| {mib(m)} MiB | {yes(None if m is None else m < 50 * 1024)} |")
        w("")

    # ---- issue 17 targets: small requests, at the concurrencies the issue names
    if "davit" in servers and peers:
        w("### Issue 17 targets (at 1, 16 and 64 connections)")
        w("")
        w("| target | measured | met |")
        w("|---|---|---|")

        c17 = [c for c in concs if c in ("1", "16", "64")]
        for wl, title, peer, need in (
            ("get4k", "GET 4 KiB", "nginx", 1.1),
            ("propfind0", "PROPFIND Depth 0", "nginx", 1.5),
            ("propfind1_allprop", "PROPFIND Depth 1, allprop", "nginx", 1.5),
            ("propfind1_prop3", "PROPFIND Depth 1, 3 props", "nginx", 1.5),
            ("propfind1_win32", "PROPFIND Depth 1, Windows' dead properties", "apache", 3.0),
        ):
            for c in c17:
                r = ratio(wl, c, peer) if peer in servers else None
                w(f"| {title}, {c} conn: ≥ {need}x {peer} | {fr(r)} | "
                  f"{yes(None if r is None else r >= need)} |")
        for c in c17:
            ahead_of_others(c)
        for c in c17:
            vs_best("put64k", f"PUT 64 KiB, {c} conn", c)
        d = res.get(("davit", "propfind_inf", "1"))
        t = num(d["ttfb_ms"]) if d else None
        w(f"| Depth ∞: first byte < 50 ms | {d['ttfb_ms'] if d else 'no result'} ms "
          f"| {yes(None if t is None else t < 50)} |")
        for wl, title in RATE:
            ms = [num(res[("davit", wl, c)]["rss_kib"]) for c in c17 if ("davit", wl, c) in res]
            ms = [m for m in ms if m]
            if ms:
                m = max(ms)
                w(f"| {title}: peak memory < 30 MiB (up to 64 conn) | {mib(m)} MiB "
                  f"| {yes(m < 30 * 1024)} |")
        w("")

    # ---- issue 16 targets: davit on PostgreSQL + S3
    if "davit-pg" in servers:
        w("### Issue 16 targets (davit-pg: PostgreSQL + Garage on this machine)")
        w("")
        imp = res.get(("davit-pg", "import", "1"))
        if imp:
            w(f"Data set loaded by `davit import` in {imp['value']} ms: {imp['note']}.")
            w("")
        w("| target | measured | met |")
        w("|---|---|---|")

        def yes16(b):
            return "n/a" if b is None else ("yes" if b else "**no**")

        def rel(a_, b_, wl, c):
            x, y = res.get((a_, wl, c)), res.get((b_, wl, c))
            xv, yv = (num(x["value"]) if x else None), (num(y["value"]) if y else None)
            if not xv or not yv:
                return None
            return yv / xv if x["kind"] == "time" else xv / yv

        for wl, title in RATE[2:4]:
            for c in concs:
                r = rel("davit-pg", "nginx", wl, c) if "nginx" in servers else None
                w(f"| {title}, {c} conn: davit-pg ≥ nginx on the local disk | {fr(r)} "
                  f"| {yes16(None if r is None else r >= 1.0)} |")
        for wl, title in (RATE[0], RATE[4]):
            for c in concs:
                r = rel("davit-pg", "davit", wl, c)
                w(f"| {title}, {c} conn: davit-pg beside davit (directory) | {fr(r)} | reported |")
        for wl, title in (("get_big", "GET"), ("put_big", "PUT")):
            r = rel("davit-pg", "s3-direct", wl, "1")
            w(f"| {title} {a.big_mib} MiB: ≥ 0.8x Garage direct | {fr(r)} "
              f"| {yes16(None if r is None else r >= 0.8)} |")
            d = res.get(("davit-pg", wl, "1"))
            m = num(d["rss_kib"]) if d else None
            w(f"| {title} {a.big_mib} MiB: davit-pg peak RSS < 100 MiB | {mib(m)} MiB "
              f"| {yes16(None if m is None else m < 100 * 1024)} |")
        d = res.get(("davit-pg", "move_tree10k", "1"))
        t = num(d["value"]) if d else None
        w(f"| MOVE of a 10,000-member collection < 100 ms | "
          f"{(d['value'] or d['note']) if d else 'no result'} ms | {yes16(None if t is None else t < 100)} |")
        w("")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
