#!/usr/bin/env python3
"""measure.py: every comparison of bench/run, written to bench/out/raw/*.json.

bench/run installs the peers, builds cordon and the C tools, then runs this.
Each measurement interleaves the tools it compares (round r runs them in an
order rotated by r), so that drifts of the machine fall on every tool alike.
Any tool that fails stops the whole run with a message naming it: a partial
table is never written.

Adding a row: add the tool's command to the `rows` of the measurement it
belongs to (or a new measure_* function listed in MEASUREMENTS, as the TLS
interception and transparent-capture sections are), and describe it in
report.py's tables; report.py prints whatever rows the raw files hold.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import re
import select
import shlex
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402

FULL = dict(startup_iters=40, layers_iters=150, repos_iters=10, dl_bytes=1 << 30, dl_rounds=5,
            seq_n=1000, seq_rounds=3, conc_clients=100, conc_n=3000, conc_rounds=3,
            tunnels=1000, build_iters=5, cg_n=2000, cg_n_slow=200, perf=True, warmup=1,
            writes_n=2000, writes_iters=30, tls_dl_bytes=256 << 20, tls_seq_n=300,
            tls_seq_rounds=3, unix_n=2000, unix_iters=20)
QUICK = dict(startup_iters=5, layers_iters=10, repos_iters=1, dl_bytes=128 << 20, dl_rounds=1,
             seq_n=200, seq_rounds=1, conc_clients=100, conc_n=500, conc_rounds=1,
             tunnels=1000, build_iters=1, cg_n=200, cg_n_slow=20, perf=False, warmup=0,
             writes_n=2000, writes_iters=5, tls_dl_bytes=64 << 20, tls_seq_n=100,
             tls_seq_rounds=1, unix_n=500, unix_iters=3)


class Failed(Exception):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, a):
        self.top = a.top
        self.out = os.path.join(a.top, "bench", "out")
        self.raw = os.path.join(self.out, "raw")
        self.bin = os.path.join(self.out, "bin")
        self.fx = os.path.join(self.out, "fx")
        self.cordon = a.cordon
        self.node = a.node
        self.srt_cli = a.srt_cli
        self.quick = a.quick
        self.p = dict(QUICK if a.quick else FULL)
        if a.no_perf:
            self.p["perf"] = False
        if a.perf:
            self.p["perf"] = True
        os.makedirs(self.raw, exist_ok=True)
        os.makedirs(self.fx, exist_ok=True)
        self.server = None
        self.port = None
        self.notes = []
        self.durations = {}
        self.load_start = open("/proc/loadavg").read().split()[0]
        self.busy_start = self.busy_snapshot()

    # ---- helpers -----------------------------------------------------------

    @staticmethod
    def busy_snapshot(secs=1.0):
        """How busy the machine is without us: CPU use over `secs` and the
        processes using most of it (other work shows up as spread)."""
        def cpu():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return sum(v), v[3] + v[4]

        def procs():
            out = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/stat") as f:
                            st = f.read()
                    except OSError:
                        continue
                    comm = st[st.index("(") + 1:st.rindex(")")]
                    rest = st[st.rindex(")") + 2:].split()
                    out[d] = (comm, int(rest[11]) + int(rest[12]))
            return out

        t0, i0 = cpu()
        p0 = procs()
        time.sleep(secs)
        t1, i1 = cpu()
        p1 = procs()
        hz = os.sysconf("SC_CLK_TCK")
        use = {}
        for pid, (comm, ticks) in p1.items():
            if pid in p0:
                use[comm] = use.get(comm, 0) + (ticks - p0[pid][1]) / hz / secs * 100
        top = sorted(((c, round(u)) for c, u in use.items() if u >= 5), key=lambda x: -x[1])[:5]
        busy = 100 * (1 - (i1 - i0) / max(t1 - t0, 1)) * (os.cpu_count() or 1)
        return {"cpu_pct": round(busy), "top": top}

    def save(self, name, data):
        with open(os.path.join(self.raw, name + ".json"), "w") as f:
            json.dump(data, f, indent=1)

    def run(self, argv, what, cwd=None, timeout=600, input_=None, env=None):
        """Run argv, return stdout; stop everything if it fails."""
        try:
            r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=timeout, input=input_, env=env,
                               stdin=None if input_ is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failed(f"{what}: timed out after {timeout} s: {shlex.join(argv)}")
        if r.returncode != 0:
            raise Failed(f"{what}: exit status {r.returncode}: {shlex.join(argv)}\n{r.stderr.strip()}")
        return r.stdout

    def bwrap_argv(self, d):
        return ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                "--ro-bind", "/", "/", "--bind", d, d, "--dev", "/dev", "--proc", "/proc",
                "--tmpfs", "/tmp", "--chdir", d]

    def cordon_argv(self, cmd, extra=()):
        return [self.cordon, *extra, "--", *cmd]

    def srt_argv(self, shell, settings):
        return [self.node, self.srt_cli, "--settings", settings, "-c", shell]

    # srt starts the command once its two socat relays listen, or after
    # 0.3 s when they do not yet (RELAYS_LISTEN in linux-sandbox-utils.js);
    # on a busy machine the client then finds nothing on 127.0.0.1:3128
    # ("Connection refused"). The network rows measure the proxy, not that
    # race, so they wait until it answers (any answer); the client's own
    # numbers do not include the wait.
    SRT_READY = ('i=0; until curl -s -o /dev/null --max-time 5 "$HTTP_PROXY"; do '
                 'i=$((i+1)); [ $i -lt 200 ] || break; sleep 0.05; done; ')

    def srt_net_argv(self, shell, settings):
        return self.srt_argv(self.SRT_READY + shell, settings)

    def allow(self):
        return ["--allow-domain", f"127.0.0.1:{self.port}"]

    def timeit(self, rows, iters, warmup=None, cwd=None, cpu=None):
        """rows: [(name, dir or None, argv)]; returns {name: [seconds...]}, and
        fills cpu (when given) with {name: [cpu seconds...]}."""
        if warmup is None:
            warmup = self.p["warmup"]
        argv = [os.path.join(self.bin, "timeit"), "-n", str(iters), "-w", str(warmup)]
        if cwd:
            argv += ["-C", cwd]
        argv.append("--")
        for i, (name, d, cmd) in enumerate(rows):
            if i:
                argv.append(":::")
            argv += [f"{name}@{d}" if d else name, *cmd]
        out = self.run(argv, "timeit (" + ", ".join(r[0] for r in rows) + ")", timeout=1800)
        res = {r[0]: [] for r in rows}
        for line in out.splitlines():
            name, _, secs, cpus = line.split("\t")
            res[name].append(float(secs))
            if cpu is not None:
                cpu.setdefault(name, []).append(float(cpus))
        return res

    def rounds(self, rows, n, fn):
        """Run fn(row) for every row, n rounds, rotating the order."""
        res = {r[0]: [] for r in rows}
        for k in range(n):
            for j in range(len(rows)):
                row = rows[(k + j) % len(rows)]
                res[row[0]].append(fn(row))
        return res

    # ---- setup -------------------------------------------------------------

    def start_server(self):
        pf = os.path.join(self.out, "benchsrv.port")
        if os.path.exists(pf):
            os.unlink(pf)
        try:
            self.tls = fixtures.tls(self.fx)
        except RuntimeError as e:
            raise Failed(f"the test CA for the HTTPS rows: {e}")
        self.server = subprocess.Popen([os.path.join(self.bin, "benchsrv"), pf,
                                        self.tls["cert"], self.tls["key"]],
                                       stdin=subprocess.DEVNULL)
        for _ in range(100):
            ports = open(pf).read().split() if os.path.exists(pf) else []
            if len(ports) == 2:
                self.port, self.tls_port = int(ports[0]), int(ports[1])
                break
            time.sleep(0.02)
        else:
            raise Failed("benchsrv did not start")
        self.target = f"127.0.0.1:{self.port}"
        self.tls_target = f"127.0.0.1:{self.tls_port}"
        # srt's settings: the equivalent of cordon's default policy (same
        # denyRead list, the working directory writable), and the same plus
        # the loopback test server for the network rows.
        pol = json.loads(self.run([self.cordon, "--print-policy"], "cordon --print-policy",
                                  cwd=self.empty))
        self.pol = pol
        home = os.path.expanduser("~")
        deny = [("~" + p[len(home):]) if p.startswith(home + "/") else p
                for p in pol["filesystem"]["denyRead"]]
        base = {"network": {"allowedDomains": [], "deniedDomains": []},
                "filesystem": {"denyRead": deny, "allowRead": [], "allowWrite": ["."],
                               "denyWrite": []}}
        self.srt_default = os.path.join(self.out, "srt-settings-default.json")
        with open(self.srt_default, "w") as f:
            json.dump(base, f, indent=1)
        base["network"]["allowedDomains"] = [self.target]
        self.srt_net = os.path.join(self.out, "srt-settings-net.json")
        with open(self.srt_net, "w") as f:
            json.dump(base, f, indent=1)
        self.tls_settings(pol, base)

    def tls_settings(self, pol, srt_base):
        """Settings of the interception and capture rows. cordon's are its
        effective default policy (--print-policy, as the other rows run
        with) plus the network keys each row needs, so that its rows differ
        only in those; srt's are the network rows' settings with the HTTPS
        port allowed instead, with and without tlsTerminate. Both proxies
        trust the test CA for upstream TLS: cordon through
        network.upstreamCaFile, srt's Node through NODE_EXTRA_CA_CERTS."""
        def write(name, doc):
            path = os.path.join(self.out, name)
            with open(path, "w") as f:
                json.dump(doc, f, indent=1)
            return path

        def cordon(allowed, **net):
            doc = json.loads(json.dumps(pol))
            doc["network"]["allowedDomains"] = allowed
            doc["network"].update(net)
            return doc

        ca = self.tls["ca"]
        self.cordon_tls_connect = write(
            "cordon-settings-tls.json", cordon([self.tls_target], upstreamCaFile=ca))
        self.cordon_tls_intercept = write(
            "cordon-settings-tls-intercept.json",
            cordon([self.tls_target], upstreamCaFile=ca, tlsTerminate={}))
        # Capture needs a name (inside, 127.0.0.1 is the sandbox's own
        # loopback): bench.test stands for the host's 127.0.0.1
        # (network.hosts), and the IP entries let that loopback address
        # past the resolved-address guard, as the other rows' entries do.
        name = fixtures.TLS_NAME
        self.cap_host = f"{name}:{self.port}"
        self.cap_tls_host = f"{name}:{self.tls_port}"
        self.cordon_capture = write(
            "cordon-settings-capture.json",
            cordon([self.cap_host, self.cap_tls_host, self.target, self.tls_target],
                   hosts={name: "127.0.0.1"}, transparent=True))
        srt = json.loads(json.dumps(srt_base))
        srt["network"]["allowedDomains"] = [self.tls_target]
        self.srt_tls_connect = write("srt-settings-tls.json", srt)
        srt["network"]["tlsTerminate"] = {}
        self.srt_tls_intercept = write("srt-settings-tls-intercept.json", srt)
        self.srt_env = dict(os.environ, NODE_EXTRA_CA_CERTS=ca)

    def stop_server(self):
        if self.server and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(5)

    def preflight(self):
        """Every peer must run `true` before anything is measured."""
        e = self.empty
        checks = [("cordon", self.cordon_argv(["true"])),
                  ("cordon (test switches)",
                   self.cordon_argv(["true"], ["--test-disable-layer=seccomp,landlock"])),
                  ("bwrap", self.bwrap_argv(e) + ["true"]),
                  ("srt", self.srt_argv("true", self.srt_default))]
        for name, argv in checks:
            self.run(argv, f"preflight: {name} could not run `true`", cwd=e, timeout=60)
        # srt's TMPDIR inside is /tmp/claude, writable only when it exists
        # on the host (as it does wherever Claude Code has run): without it
        # the compiler has nowhere to write.
        os.makedirs("/tmp/claude", exist_ok=True)

    def meta(self, final=False):
        def first_line(argv):
            try:
                return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True).stdout.strip().splitlines()[0]
            except Exception:
                return "?"
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
        srt_pkg = os.path.join(os.path.dirname(os.path.dirname(self.srt_cli)), "package.json")
        with open(srt_pkg) as f:
            srt_version = json.load(f)["version"]
        git = os.environ.get("CORDON_BENCH_DESCRIBE")
        if git:
            git = "commit " + git
        else:
            git = "working tree at " + subprocess.run(
                ["git", "-C", self.top, "describe", "--always", "--dirty"],
                stdout=subprocess.PIPE, text=True).stdout.strip()
        settings_src = "embedded default policy"
        for p in (os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")),
                               "cordon", "settings.json"),
                  os.path.expanduser("~/.srt-settings.json")):
            if os.path.exists(p):
                settings_src = p
                self.notes.append(f"cordon's default-policy rows used {p}, found on this machine")
                break
        self.save("meta", {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "quick": self.quick, "params": self.p,
            "kernel": platform.release(), "cpu": cpu, "ncpu": os.cpu_count(),
            "mem_gib": round(mem_kib / 1048576, 1),
            "os": first_line(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
            "cordon": first_line([self.cordon, "-V"]) + f" ({git})",
            "cordon_settings": settings_src,
            "bwrap": first_line(["bwrap", "--version"]),
            "srt": srt_version, "node": first_line([self.node, "--version"]),
            "curl": first_line(["curl", "--version"]),
            "bwrap_cmd": shlex.join(self.bwrap_argv("$DIR") + ["true"]),
            "srt_cmd": shlex.join([os.path.relpath(self.node, self.top),
                                   os.path.relpath(self.srt_cli, self.top),
                                   "--settings", "SETTINGS", "-c", "true"]),
            "srt_settings_default": json.load(open(self.srt_default)),
            "port": self.port,
            "durations_s": self.durations,
            "nice": os.environ.get("CORDON_BENCH_NICE", "0"),
            "load": [self.load_start, open("/proc/loadavg").read().split()[0]],
            "busy": [self.busy_start, self.busy_snapshot() if final else None],
            "notes": self.notes,
        })

    # ---- measurements ------------------------------------------------------

    def measure_startup(self):
        e = self.empty
        rows = [
            ("bare", None, ["true"]),
            ("bwrap", None, self.bwrap_argv(e) + ["true"]),
            ("cordon", None, self.cordon_argv(["true"])),
            ("srt", None, self.srt_argv("true", self.srt_default)),
        ]
        n = self.p["startup_iters"]
        log(f"start-up of `true`: {len(rows)} tools x {n} interleaved runs")
        cpu = {}
        self.save("startup", {"iters": n, "samples": self.timeit(rows, n, cwd=e, cpu=cpu),
                              "cpu": cpu})

    def measure_layers(self):
        """The start-up cost of seccomp and Landlock: cordon with and without
        them (the test build's --test-disable-layer), many runs, so that the
        paired differences (runs of the same iteration are adjacent in time)
        stand out of the noise."""
        rows = [
            ("cordon", None, self.cordon_argv(["true"])),
            ("cordon, no seccomp", None,
             self.cordon_argv(["true"], ["--test-disable-layer=seccomp"])),
            ("cordon, no Landlock", None,
             self.cordon_argv(["true"], ["--test-disable-layer=landlock"])),
            ("cordon, neither", None,
             self.cordon_argv(["true"], ["--test-disable-layer=seccomp,landlock"])),
        ]
        n = self.p["layers_iters"]
        log(f"seccomp and Landlock: {len(rows)} variants x {n} interleaved runs")
        cpu = {}
        self.save("layers", {"iters": n, "samples": self.timeit(rows, n, cwd=self.empty, cpu=cpu),
                             "cpu": cpu})

    def measure_repos(self):
        r, e = self.repos, self.empty
        rows = [
            ("bare", r, ["true"]),
            ("bwrap", r, self.bwrap_argv(r) + ["true"]),
            ("cordon", r, self.cordon_argv(["true"])),
            ("cordon, empty dir", e, self.cordon_argv(["true"])),
            ("srt", r, self.srt_argv("true", self.srt_default)),
            ("srt, empty dir", e, self.srt_argv("true", self.srt_default)),
        ]
        n = self.p["repos_iters"]
        log(f"start-up in a directory of {fixtures.REPOS} git repositories: {n} interleaved runs")
        cpu = {}
        self.save("repos", {"iters": n, "repos": fixtures.REPOS,
                            "samples": self.timeit(rows, n, cpu=cpu), "cpu": cpu})

    def curl_w(self):
        return "%{http_code} %{size_download} %{speed_download}"

    def measure_download(self):
        size = self.p["dl_bytes"]
        url = f"http://{self.target}/big/{size}"
        w = self.curl_w()
        rows = [
            ("direct", ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", w, url]),
            ("cordon", self.cordon_argv(["curl", "-sS", "--noproxy", "", "-p", "-x",
                                         "http://127.0.0.1:3128", "-o", "/dev/null", "-w", w,
                                         url], self.allow())),
            ("srt", self.srt_net_argv(f"exec curl -sS --noproxy '' -p -x \"$HTTP_PROXY\" "
                                  f"-o /dev/null -w '{w}' {url}", self.srt_net)),
        ]

        def one(row):
            out = self.run(row[1], f"download through {row[0]}", cwd=self.empty).split()
            if out[0] != "200" or int(out[1]) != size:
                raise Failed(f"download through {row[0]}: status {out[0]}, {out[1]} bytes")
            return float(out[2])

        n = self.p["dl_rounds"]
        log(f"download of {size >> 20} MiB: {n} rounds of direct, cordon, srt")
        self.save("download", {"bytes": size, "rounds": n,
                               "bytes_per_s": self.rounds(rows, n, one)})

    def client_rows(self, what, args):
        cli = os.path.join(self.bin, "benchcli")
        tgt = self.target
        q = shlex.join
        return [
            ("direct", [cli, what, "-m", "direct", "-t", tgt, *args]),
            ("cordon, plain HTTP", self.cordon_argv(
                [cli, what, "-m", "http", "-t", tgt, "-x", "http://127.0.0.1:3128", *args],
                self.allow())),
            ("cordon, CONNECT", self.cordon_argv(
                [cli, what, "-m", "connect", "-t", tgt, "-x", "http://127.0.0.1:3128", *args],
                self.allow())),
            ("srt, plain HTTP", self.srt_net_argv(
                f"exec {q([cli, what, '-m', 'http', '-t', tgt])} -x \"$HTTP_PROXY\" {q(args)}",
                self.srt_net)),
            ("srt, CONNECT", self.srt_net_argv(
                f"exec {q([cli, what, '-m', 'connect', '-t', tgt])} -x \"$HTTP_PROXY\" {q(args)}",
                self.srt_net)),
        ]

    def measure_requests(self):
        n, k = self.p["seq_n"], self.p["seq_rounds"]
        rows = self.client_rows("seq", ["-n", str(n)])
        log(f"{n} sequential requests on new connections: {k} rounds of {len(rows)} clients")

        def one(row):
            out = self.run(row[1], f"sequential requests, {row[0]}", cwd=self.empty)
            v = [float(x) for x in out.split()]
            if len(v) != n:
                raise Failed(f"sequential requests, {row[0]}: {len(v)} of {n} answered")
            return v

        self.save("requests", {"n": n, "rounds": k, "latency_us": self.rounds(rows, k, one)})

    def measure_concurrent(self):
        c, n, k = self.p["conc_clients"], self.p["conc_n"], self.p["conc_rounds"]
        rows = self.client_rows("conc", ["-n", str(n), "-c", str(c)])
        log(f"{c} concurrent clients, {n} requests: {k} rounds of {len(rows)} clients")

        def one(row):
            out = self.run(row[1], f"concurrent clients, {row[0]}", cwd=self.empty).split()
            return {"requests": int(out[0]), "seconds": float(out[1]), "rps": float(out[2]),
                    "p50_us": float(out[3]), "p99_us": float(out[4])}

        self.save("concurrent", {"clients": c, "n": n, "rounds": k,
                                 "runs": self.rounds(rows, k, one)})

    # TLS interception and transparent capture -------------------------------

    PROXY = "http://127.0.0.1:3128"

    def check_issuer(self, what, name, issuer):
        """A row named "intercepted" must have been shown a certificate of
        the proxy's CA, every other HTTPS row the test server's own: a proxy
        that silently tunnelled (or intercepted) would measure something else."""
        if issuer is None:
            raise Failed(f"{what}, {name}: no certificate in the client's output")
        ours = fixtures.TLS_CA_CN in issuer
        if ("intercepted" in name) == ours:
            want = "the proxy's CA" if "intercepted" in name else fixtures.TLS_CA_CN
            raise Failed(f"{what}, {name}: the certificate was issued by {issuer!r}, "
                         f"expected {want}")

    def download_rounds(self, what, rows, size, n, startups):
        """rows: [(name, argv, env or None, https, start-up label or None)],
        each a curl writing curl_w() (and, for HTTPS, the certificate chain
        after it); startups: {label: (argv, env)}, the same sandbox running
        `true`, interleaved with the rows (one run per round). Returns
        ({name: [bytes per second...]}, {name: [CPU seconds...]}): the CPU
        time of every process the run started (curl, the sandbox's
        supervisor, proxy, init and relays, whoever reaps them; not the
        server), counted by `perf stat -e task-clock` (an inherited counter,
        as timeit's), less that of the same round's start-up run of its
        sandbox; no CPU when perf is missing."""
        cpu, boot = {}, {}
        extra = [(label, argv, env, None, None) for label, (argv, env) in startups.items()]
        tmp = os.path.join(self.raw, "task-clock.tmp")
        perf = shutil.which("perf")

        def one(row):
            name, argv, env, https, _ = row
            if perf:
                argv = [perf, "stat", "-x", ",", "-e", "task-clock", "-o", tmp, "--", *argv]
            out = self.run(argv, f"{what} through {name}" if https is not None else
                           f"{what}: start-up of {name}", cwd=self.empty, env=env)
            c = None
            if perf:
                with open(tmp) as f:
                    for ln in f:
                        v = ln.split(",")
                        if len(v) > 2 and v[2].startswith("task-clock") and v[0] not in (
                                "<not counted>", "<not supported>"):
                            c = float(v[0]) / 1000
                os.unlink(tmp)
            if https is None:
                boot.setdefault(name, []).append(c)
                return None
            cpu.setdefault(name, []).append(c)
            first, _, rest = out.partition("\n")
            f = first.split()
            if len(f) != 3 or f[0] != "200" or int(f[1]) != size:
                raise Failed(f"{what} through {name}: {first!r} ({size} bytes expected)")
            if https:
                m = re.search(r"^Issuer:\s*(.*)$", rest, re.M)
                self.check_issuer(what, name, m and m.group(1))
            return float(f[2])

        speed = self.rounds(rows + extra, n, one)
        for name, _, _, _, label in rows:
            if label:
                cpu[name] = [a - b if a is not None and b is not None else None
                             for a, b in zip(cpu[name], boot[label])]
        cpu = {k: v for k, v in cpu.items() if None not in v}
        return {r[0]: speed[r[0]] for r in rows}, cpu

    def seq_rounds(self, what, rows, n, k):
        """rows: [(name, argv, env or None)] of `benchcli seq`; returns
        ({name: [[latency us...] per round]}, {name: [[until-handshake us...]]}
        for the HTTPS rows)."""
        setup = {}

        def one(row):
            name, argv, env = row
            out = self.run(argv, f"{what}, {name}", cwd=self.empty, env=env)
            lines = out.splitlines()
            v = [ln.split() for ln in lines if not ln.startswith("#")]
            if len(v) != n:
                raise Failed(f"{what}, {name}: {len(v)} of {n} answered")
            if len(v[0]) > 1:
                iss = [ln[len("# issuer "):] for ln in lines if ln.startswith("# issuer ")]
                self.check_issuer(what, name, iss[0] if iss else None)
                setup.setdefault(name, []).append([float(x[1]) for x in v])
            return [float(x[0]) for x in v]

        return self.rounds(rows, k, one), setup

    def intercept_curl(self, url, ca):
        """curl argv fetching url through cordon's proxy (ca: the --cacert
        of a row that sees the server's own certificate), and the same as a
        shell string for srt."""
        w = self.curl_w() + "\n%{certs}"
        argv = ["curl", "-sS", "--noproxy", "", "-x", self.PROXY, "-o", "/dev/null", "-w", w]
        sh = f"exec curl -sS --noproxy '' -x \"$HTTP_PROXY\" -o /dev/null -w {shlex.quote(w)}"
        if ca:
            argv += ["--cacert", ca]
            sh += f" --cacert {shlex.quote(ca)}"
        return argv + [url], f"{sh} {url}"

    def measure_intercept_download(self):
        size = self.p["tls_dl_bytes"]
        url = f"https://{self.tls_target}/big/{size}"
        ca = self.tls["ca"]
        plain, plain_sh = self.intercept_curl(url, ca)
        mitm, mitm_sh = self.intercept_curl(url, None)
        cc, ci = ["-s", self.cordon_tls_connect], ["-s", self.cordon_tls_intercept]
        rows = [
            ("direct", ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w",
                        self.curl_w() + "\n%{certs}", "--cacert", ca, url], None, True, None),
            ("cordon, CONNECT", self.cordon_argv(plain, cc), None, True, "cordon"),
            ("cordon, intercepted", self.cordon_argv(mitm, ci), None, True, "cordon, tls"),
            ("srt, CONNECT", self.srt_net_argv(plain_sh, self.srt_tls_connect), self.srt_env,
             True, "srt"),
            ("srt, intercepted", self.srt_net_argv(mitm_sh, self.srt_tls_intercept),
             self.srt_env, True, "srt, tls"),
        ]
        startups = {
            "cordon": (self.cordon_argv(["true"], cc), None),
            "cordon, tls": (self.cordon_argv(["true"], ci), None),
            "srt": (self.srt_net_argv("true", self.srt_tls_connect), self.srt_env),
            "srt, tls": (self.srt_net_argv("true", self.srt_tls_intercept), self.srt_env),
        }
        n = self.p["dl_rounds"]
        log(f"HTTPS download of {size >> 20} MiB, tunnelled and intercepted: {n} rounds of "
            f"{len(rows)} paths")
        res, cpu = self.download_rounds("HTTPS download", rows, size, n, startups)
        self.save("intercept_download", {"bytes": size, "rounds": n, "bytes_per_s": res,
                                         "cpu_s": cpu})

    def measure_intercept_requests(self):
        n, k = self.p["tls_seq_n"], self.p["tls_seq_rounds"]
        cli = os.path.join(self.bin, "benchcli")
        ca = self.tls["ca"]
        tgt = self.tls_target
        q = shlex.join

        def inside(mode, trusted):
            args = [cli, "seq", "-m", mode, "-t", tgt, "-s", "-n", str(n)]
            return args + (["-k", ca] if trusted else [])

        rows = [
            ("direct, HTTP", [cli, "seq", "-m", "direct", "-t", self.target, "-n", str(n)], None),
            ("direct", inside("direct", True), None),
            ("cordon, CONNECT", self.cordon_argv(inside("connect", True) + ["-x", self.PROXY],
                                                 ["-s", self.cordon_tls_connect]), None),
            ("cordon, intercepted", self.cordon_argv(inside("connect", False) + ["-x", self.PROXY],
                                                     ["-s", self.cordon_tls_intercept]), None),
            ("srt, CONNECT", self.srt_net_argv(
                f"exec {q(inside('connect', True))} -x \"$HTTP_PROXY\"", self.srt_tls_connect),
             self.srt_env),
            ("srt, intercepted", self.srt_net_argv(
                f"exec {q(inside('connect', False))} -x \"$HTTP_PROXY\"", self.srt_tls_intercept),
             self.srt_env),
        ]
        log(f"{n} sequential HTTPS requests, tunnelled and intercepted: {k} rounds of "
            f"{len(rows)} clients")
        lat, setup = self.seq_rounds("sequential HTTPS requests", rows, n, k)
        self.save("intercept_requests", {"n": n, "rounds": k, "latency_us": lat,
                                         "setup_us": setup})

    def srt_capture_probe(self):
        """srt has no transparent capture: a program that ignores its proxy
        variables has no network at all. Show it (on the address srt's
        settings allow, the most favourable case) rather than assume it; if
        it ever connects, this section of the report would be wrong."""
        url = f"http://{self.target}/small"
        cmd = f"curl -sS --noproxy '*' --max-time 20 -o /dev/null {url}"
        r = subprocess.run(self.srt_argv(cmd, self.srt_net), cwd=self.empty, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("curl:")]
        if r.returncode == 0 or not err:
            raise Failed(f"srt transparent probe: expected curl to fail without the proxy, got "
                         f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
        return {"supported": False, "exit": r.returncode,
                "command": cmd.replace(str(self.port), "PORT"),
                "error": err[0].replace(str(self.port), "PORT")}

    def capture_rows(self, http, https):
        """The paths of the transparent-capture sections, for plain HTTP and
        for HTTPS: direct on the host, from inside cordon through the proxy
        named in HTTP_PROXY, and captured (the client ignores the proxy and
        dials bench.test, which cordon's DNS answers). http(mode) and
        https(mode) give the command for mode direct, proxy or transparent."""
        st = ["-s", self.cordon_capture]
        return [
            ("direct", http("direct")),
            ("cordon, proxy", self.cordon_argv(http("proxy"), st)),
            ("cordon, transparent", self.cordon_argv(http("transparent"), st)),
            ("direct, HTTPS", https("direct")),
            ("cordon, proxy, HTTPS", self.cordon_argv(https("proxy"), st)),
            ("cordon, transparent, HTTPS", self.cordon_argv(https("transparent"), st)),
        ]

    def measure_transparent_download(self):
        size = self.p["tls_dl_bytes"]
        ca = self.tls["ca"]
        how = {"direct": ["--noproxy", "*", "--resolve", "HOSTPORT:127.0.0.1"],
               "proxy": ["--noproxy", "", "-x", self.PROXY],
               "transparent": ["--noproxy", "*"]}

        def curl(hostport, https):
            w = self.curl_w() + ("\n%{certs}" if https else "")
            url = f"{'https' if https else 'http'}://{hostport}/big/{size}"

            def make(mode):
                return (["curl", "-sS", "-o", "/dev/null", "-w", w] +
                        [x.replace("HOSTPORT", hostport) for x in how[mode]] +
                        (["--cacert", ca] if https else []) + [url])
            return make

        rows = [(name, argv, None, "HTTPS" in name, "cordon" if name.startswith("cordon") else None)
                for name, argv in self.capture_rows(curl(self.cap_host, False),
                                                    curl(self.cap_tls_host, True))]
        startups = {"cordon": (self.cordon_argv(["true"], ["-s", self.cordon_capture]), None)}
        n = self.p["dl_rounds"]
        log(f"download of {size >> 20} MiB, explicit proxy and transparent capture: {n} rounds "
            f"of {len(rows)} paths")
        res, cpu = self.download_rounds("download", rows, size, n, startups)
        self.save("transparent_download", {"bytes": size, "rounds": n, "bytes_per_s": res,
                                           "cpu_s": cpu, "srt": self.srt_capture_probe()})

    def measure_transparent_requests(self):
        n, k = self.p["seq_n"], self.p["seq_rounds"]
        cli = os.path.join(self.bin, "benchcli")
        ca = self.tls["ca"]

        def seq(hostport, https):
            how = {"direct": ["-m", "direct", "-r", "127.0.0.1"],
                   "proxy": ["-m", "connect" if https else "http", "-x", self.PROXY],
                   "transparent": ["-m", "direct"]}

            def make(mode):
                return ([cli, "seq", "-t", hostport, *how[mode], "-n", str(n)] +
                        (["-s", "-k", ca] if https else []))
            return make

        rows = [(name, argv, None) for name, argv in
                self.capture_rows(seq(self.cap_host, False), seq(self.cap_tls_host, True))]
        log(f"{n} sequential requests, explicit proxy and transparent capture: {k} rounds of "
            f"{len(rows)} clients")
        lat, setup = self.seq_rounds("sequential requests", rows, n, k)
        self.save("transparent_requests", {"n": n, "rounds": k, "latency_us": lat,
                                           "setup_us": setup, "srt": self.srt_capture_probe()})

    # memory ----------------------------------------------------------------

    @staticmethod
    def proc_tree(root):
        kids = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            rest = s[s.rindex(")") + 2:].split()
            kids.setdefault(int(rest[1]), []).append(int(d))
        out, todo = [], [root]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    @staticmethod
    def status_kib(pid, key):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def memprobe(self, root, exclude):
        hwm = self.status_kib(root, "VmHWM")
        rss = self.status_kib(root, "VmRSS")
        pss, nproc = 0, 0
        for pid in self.proc_tree(root):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                if comm in exclude:
                    continue
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1])
                nproc += 1
            except OSError:
                continue
        return {"root_hwm_kib": hwm, "root_rss_kib": rss, "tree_pss_kib": pss,
                "tree_procs": nproc}

    def hold(self, name, argv, expect):
        p = subprocess.Popen(argv, cwd=self.empty, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        buf = b""
        deadline = time.time() + 180
        while b"\n" not in buf:
            left = deadline - time.time()
            r, _, _ = select.select([p.stdout], [], [], max(left, 0))
            chunk = os.read(p.stdout.fileno(), 4096) if r else b""
            if not chunk:
                p.kill()
                err = p.stderr.read().decode(errors="replace").strip()
                raise Failed(f"memory, {name}: never became ready: {shlex.join(argv)}\n{err}")
            buf += chunk
        if not buf.startswith(expect.encode()):
            p.kill()
            raise Failed(f"memory, {name}: unexpected output {buf!r}")
        time.sleep(0.5)
        probe = self.memprobe(p.pid, {"benchcli", "cat"})
        p.stdin.close()
        rc = p.wait(120)
        err = p.stderr.read().decode(errors="replace").strip()
        if rc != 0:
            raise Failed(f"memory, {name}: exit status {rc}\n{err}")
        return probe

    def measure_memory(self):
        t = self.p["tunnels"]
        cli = os.path.join(self.bin, "benchcli")
        idle = "echo ready; exec cat >/dev/null"
        rows = [
            ("cordon, idle", self.cordon_argv(["sh", "-c", idle], self.allow()), "ready"),
            (f"cordon, {t} tunnels", self.cordon_argv(
                [cli, "hold", "-t", self.target, "-x", "http://127.0.0.1:3128", "-n", str(t)],
                self.allow()), "ready"),
            ("srt, idle", self.srt_argv(idle, self.srt_net), "ready"),
            (f"srt, {t} tunnels", self.srt_net_argv(
                f"exec {shlex.join([cli, 'hold', '-t', self.target])} -x \"$HTTP_PROXY\" "
                f"-n {t}", self.srt_net), "ready"),
        ]
        log(f"peak memory: idle and with {t} open CONNECT tunnels")
        res = {}
        for name, argv, expect in rows:
            res[name] = self.hold(name, argv, expect)
        self.save("memory", {"tunnels": t, "results": res})

    def measure_build(self):
        d = self.cproj
        make = ["make", "-s", "-B", "-j2"]
        rows = [
            ("bare", None, make),
            ("bwrap", None, self.bwrap_argv(d) + make),
            ("cordon", None, self.cordon_argv(make)),
            ("srt", None, self.srt_argv(shlex.join(make), self.srt_default)),
        ]
        n = self.p["build_iters"]
        log(f"build-like workload (make -B -j2, {fixtures.C_FILES + 1} C files): {n} runs")
        cpu = {}
        wall = self.timeit(rows, n, cwd=d, cpu=cpu)
        self.save("build", {"iters": n, "files": fixtures.C_FILES + 1, "warmup": self.p["warmup"],
                            "samples": wall, "cpu": cpu})

    def measure_writes(self):
        """Writes under observation: a shell appending a line to N small files
        in its writable working directory, one openat(O_WRONLY|O_CREAT|
        O_APPEND) each (appending: ext4 flushes a truncated file on close),
        every one of which cordon's
        seccomp filter hands to the supervisor's listener (observed, let
        through, never recorded). The "no seccomp" rows (test build's
        --test-disable-layer) remove the filter and so the observation; the
        `true` rows give the start-up part of that difference."""
        d = os.path.join(self.fx, "writes")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        n = self.p["writes_n"]
        script = f"i=0; while [ $i -lt {n} ]; do echo x >> f$i; i=$((i+1)); done"
        sh = ["/bin/sh", "-c", script]
        off = ["--test-disable-layer=seccomp"]
        rows = [
            ("bare", None, sh),
            ("bwrap", None, self.bwrap_argv(d) + sh),
            ("cordon", None, self.cordon_argv(sh)),
            ("cordon, no seccomp", None, self.cordon_argv(sh, off)),
            ("cordon, true", None, self.cordon_argv(["true"])),
            ("cordon, no seccomp, true", None, self.cordon_argv(["true"], off)),
        ]
        iters = self.p["writes_iters"]
        log(f"writes under observation: {n} files written, {len(rows)} rows x {iters} runs")
        cpu = {}
        wall = self.timeit(rows, iters, cwd=d, cpu=cpu)
        self.save("writes", {"iters": iters, "writes": n, "samples": wall, "cpu": cpu})

    UNIX_SERVER = ("import socket, sys\n"
                   "s = socket.socket(socket.AF_UNIX)\n"
                   "s.bind(sys.argv[1]); s.listen(4096)\n"
                   "print('ready', flush=True)\n"
                   "while True:\n"
                   "    s.accept()[0].close()\n")
    UNIX_CLIENT = ("import socket, sys\n"
                   "for i in range(int(sys.argv[2])):\n"
                   "    c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); c.close()\n")

    def measure_unix(self):
        """connect(2) to a listed unix socket (network.allowUnixSockets):
        cordon's filter sends every connect to the supervisor, which judges
        the path and connects for the caller (sandbox/unixsock.h). A Python
        client connects and closes N times, directly and inside cordon
        (its default policy plus the socket); the same client making no
        connect gives the start-up part of each row. srt lists unix sockets
        on macOS only: not measured."""
        d = os.path.join(self.fx, "unix")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        sock = os.path.join(d, "s.sock")
        doc = json.loads(json.dumps(self.pol))
        doc["network"]["allowUnixSockets"] = [sock]
        settings = os.path.join(self.out, "cordon-settings-unix.json")
        with open(settings, "w") as f:
            json.dump(doc, f, indent=1)
        srv = subprocess.Popen([sys.executable, "-c", self.UNIX_SERVER, sock],
                               stdout=subprocess.PIPE, text=True)
        try:
            if srv.stdout.readline().strip() != "ready":
                raise Failed("the unix socket server did not start")
            n = self.p["unix_n"]
            py = "/usr/bin/python3"

            def cli(k):
                return [py, "-c", self.UNIX_CLIENT, sock, str(k)]
            on = ["-s", settings]
            rows = [
                ("bare", None, cli(n)),
                ("bare, no connect", None, cli(0)),
                ("cordon", None, self.cordon_argv(cli(n), on)),
                ("cordon, no connect", None, self.cordon_argv(cli(0), on)),
            ]
            iters = self.p["unix_iters"]
            log(f"unix socket connects: {n} per run, {len(rows)} rows x {iters} runs")
            cpu = {}
            wall = self.timeit(rows, iters, cwd=self.empty, cpu=cpu)
        finally:
            srv.kill()
            srv.wait()
        self.save("unix", {"iters": iters, "connects": n, "samples": wall, "cpu": cpu})

    def measure_callgrind(self):
        hot = os.path.join(self.bin, "hot")
        cases = [line.split("\t") for line in self.run([hot, "list"], "hot list").splitlines()]
        log(f"callgrind: {len(cases)} cases")

        def one(case):
            name, what, kind = case
            n = self.p["cg_n_slow"] if name.startswith(("settings", "seccomp")) else self.p["cg_n"]
            if kind == "wall":
                ns = sorted(float(self.run([hot, name, str(n), "--wall"], f"hot {name}"))
                            for _ in range(5))
                return {"case": name, "what": what, "n": n, "wall_ns_per_call": ns[2]}
            r = subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=bench_loop",
                                "--callgrind-out-file=/dev/null", hot, name, str(n)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            m = re.search(r"Collected : (\d+)", r.stderr)
            if r.returncode != 0 or not m or int(m.group(1)) == 0:
                raise Failed(f"callgrind {name}: {r.stderr.strip()[-500:]}")
            return {"case": name, "what": what, "n": n, "ir": int(m.group(1)),
                    "ir_per_call": int(m.group(1)) / n}

        wall = [c for c in cases if c[2] == "wall"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
            res = list(ex.map(one, [c for c in cases if c[2] != "wall"]))
        res += [one(c) for c in wall]  # alone: wall clock
        self.save("callgrind", {"cases": res})

    # profiles (where the time goes) ------------------------------------------

    def perf_report(self, data, args):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.5",
                            *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]

    def perf_loop(self, name, cwd, runs, cmd):
        data = os.path.join(self.raw, f"perf-{name}.data")
        loop = f"for i in $(seq {runs}); do {shlex.join(cmd)} || exit 1; done"
        self.run(["perf", "record", "-q", "-g", "-F", "10000", "-o", data, "--", "sh", "-c", loop],
                 f"perf record ({name})", cwd=cwd, timeout=600)
        by_comm = self.perf_report(data, ["--no-children", "--sort", "comm", "-g", "none"])
        syscalls = [ln for ln in self.perf_report(data, ["--children", "--sort", "sym",
                                                         "-g", "none"])
                    if re.search(r"\[k\] (__x64_sys_|__do_sys_|__se_sys_)", ln)]
        user = self.perf_report(data, ["--no-children", "--comms", "cordon", "--sort", "dso,sym",
                                       "-g", "none"])
        os.unlink(data)
        return {"by_comm": by_comm[:12], "syscalls": syscalls[:20], "cordon_syms": user[:25],
                "stat": self.perf_stat(cwd, cmd), "trace": self.perf_trace(cwd, runs, cmd)}

    def perf_stat(self, cwd, cmd):
        stat = subprocess.run(["perf", "stat", "-r", "20", "-e",
                               "task-clock,context-switches,page-faults", *cmd],
                              cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True).stderr
        return [ln.strip() for ln in stat.splitlines() if ln.strip()]

    def perf_trace(self, cwd, runs, cmd):
        """Wall-clock time inside each system call (perf trace -s), per role:
        cordon's supervisor (the process with the event loop), the sandbox's
        init (the one that builds the mount view), other cordon helpers, and
        the command; milliseconds per run, averaged over `runs` runs.
        Tracing slows every call down, so read it as proportions."""
        loop = f"for i in $(seq {runs}); do {shlex.join(cmd)} || exit 1; done"
        r = subprocess.run(["perf", "trace", "-s", "--", "sh", "-c", loop], cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=600)
        if r.returncode != 0:
            return None
        blocks, cur = [], None
        for ln in r.stderr.splitlines():
            m = re.match(r"^ (\S.*) \((\d+)\), (\d+) events", ln)
            if m:
                cur = {"comm": m.group(1), "calls": {}}
                blocks.append(cur)
                continue
            m = re.match(r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s", ln)
            if m and cur is not None:
                cur["calls"][m.group(1)] = (int(m.group(2)), float(m.group(4)))
        roles = {}
        for b in blocks:
            c = b["calls"]
            if b["comm"] in ("sh", "seq"):
                continue
            if b["comm"] != "cordon":
                role = "command (" + b["comm"] + ")"
            elif "epoll_wait" in c:
                role = "supervisor"
            elif "open_tree" in c or "pivot_root" in c or "umount2" in c:
                role = "sandbox init"
            else:
                role = "other cordon process"
            agg = roles.setdefault(role, {})
            for sc, (n, ms) in c.items():
                a = agg.setdefault(sc, [0, 0.0])
                a[0] += n
                a[1] += ms
        out = {}
        for role, agg in roles.items():
            top = sorted(agg.items(), key=lambda kv: -kv[1][1])[:8]
            out[role] = [(sc, n / runs, ms / runs) for sc, (n, ms) in top]
        return out

    def perf_download(self):
        size = 1 << 30
        url = f"http://{self.target}/big/{size}"
        cmds = {
            "direct": ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", url],
            "cordon": self.cordon_argv(["curl", "-sS", "--noproxy", "", "-p", "-x",
                                        "http://127.0.0.1:3128", "-o", "/dev/null", url],
                                       self.allow()),
        }
        res = {}

        def task_clock(extra, cmd):
            st = subprocess.run(["perf", "stat", *extra, "-x", ",", "-e", "task-clock", "--",
                                 *cmd], cwd=self.empty, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
            for ln in st.stderr.splitlines():
                f = ln.split(",")
                if len(f) > 2 and f[2].startswith("task-clock"):
                    return float(f[0])
            return None

        for name, cmd in cmds.items():
            # CPU time of the whole machine while one GiB moves, and of the
            # command's own processes (curl; cordon's supervisor and init
            # with curl inside): the difference is what the relay costs.
            res[name] = {"cpu_ms": task_clock(["-a"], cmd), "own_cpu_ms": task_clock([], cmd)}
        data = os.path.join(self.raw, "perf-download.data")
        self.run(["perf", "record", "-q", "-a", "-g", "-F", "2000", "-o", data, "--",
                  *cmds["cordon"]], "perf record (download)", cwd=self.empty)
        res["by_comm"] = self.perf_report(data, ["--no-children", "--sort", "comm", "-g", "none"])[:10]
        res["cordon_syms"] = self.perf_report(data, ["--no-children", "--comms", "cordon",
                                                     "--sort", "sym", "-g", "none"])[:20]
        res["syscalls"] = [ln for ln in self.perf_report(data, ["--children", "--comms", "cordon",
                                                                "--sort", "sym", "-g", "none"])
                           if re.search(r"\[k\] (__x64_sys_|__do_sys_|__se_sys_)", ln)][:12]
        os.unlink(data)
        return res

    def measure_profiles(self):
        if not self.p["perf"]:
            return
        if not shutil.which("perf"):
            self.notes.append("perf is not installed: no profiles")
            return
        log("profiles: perf on start-up, the 300-repository case and the tunnel")
        prof = {
            "startup": self.perf_loop("startup", self.empty, 50, self.cordon_argv(["true"])),
            "bwrap_stat": self.perf_stat(self.empty, self.bwrap_argv(self.empty) + ["true"]),
            "repos": self.perf_loop("repos", self.repos, 10, self.cordon_argv(["true"])),
            "download": self.perf_download(),
        }
        self.save("profiles", prof)

    # ---- driver ------------------------------------------------------------

    def main(self, only):
        self.empty = fixtures.empty_dir(self.fx)
        log("fixtures (300 git repositories, a C project)")
        self.repos = fixtures.repos(self.fx)
        self.cproj = fixtures.c_project(self.fx)
        for f in os.listdir(self.raw):
            if f.endswith(".json") and not only:
                os.unlink(os.path.join(self.raw, f))
        self.start_server()
        try:
            self.preflight()
            self.meta()
            for name in MEASUREMENTS:
                if only and name not in only:
                    continue
                t0 = time.time()
                getattr(self, "measure_" + name)()
                self.durations[name] = round(time.time() - t0, 1)
            self.meta(final=True)  # notes gathered on the way, the machine at the end
        finally:
            self.stop_server()


MEASUREMENTS = ["startup", "layers", "repos", "download", "requests", "concurrent",
                "intercept_download", "intercept_requests", "transparent_download",
                "transparent_requests", "memory", "build", "writes", "unix", "callgrind",
                "profiles"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True)
    ap.add_argument("--cordon", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--srt-cli", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--perf", action="store_true", help="profiles even with --quick")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MEASUREMENTS))
    a = ap.parse_args()
    for v in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY"):
        os.environ.pop(v, None)  # neither cordon nor srt may chain to a proxy of ours
    only = [x for x in a.only.split(",") if x]
    for x in only:
        if x not in MEASUREMENTS:
            sys.exit(f"bench: unknown measurement {x}")
    try:
        Bench(a).main(only)
    except Failed as e:
        print(f"\nbench: FAILED: {e}\nbench: no report was written.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
