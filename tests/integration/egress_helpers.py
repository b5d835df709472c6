"""Test-side helpers of the egress tests: settings, running cordon in the
lab's network namespace, the audit stream, and the servers' logs.

A `Net` is made per test (one user, one lab): it remembers where the lab's
log stood when the test began, so `origin()`, `dns()` and `echo()` return
only what this test caused.
"""
import json
import os
import re

import egress_lab
from egress_lab import OWN4, PUBLIC4  # noqa: F401 (re-exported to the tests)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORDON_BIN = os.environ.get("CORDON_BIN", os.path.join(REPO, "build", "cordon"))  # as conftest
PROBE_SRC = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "egress_probe.py")).read()
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Net:
    def __init__(self, sb, lab):
        self.sb = sb
        self.lab = lab
        self.ports = lab.ports
        self.since = lab.mark()
        self.n = 0
        self.audit_path = None

    # --- settings

    def settings(self, allow=(), deny=(), reasons=None, hosts=None, private=None, dns=True,
                 default_ports=None, write=True, name=None, extra=None):
        net = {"allowedDomains": list(allow), "deniedDomains": list(deny)}
        if reasons is not None:
            net["deniedDomainReasons"] = reasons
        if hosts is not None:
            net["hosts"] = hosts
        if private is not None:
            net["allowPrivateAddresses"] = private
        if dns:
            # Always the lab's resolver: never the host's.
            net["dnsServers"] = ["127.0.0.1:%d" % self.ports["dns"]]
        if default_ports is not None:
            net["defaultPorts"] = default_ports
        if extra:
            net.update(extra)  # other network keys, as they are
        # The workspace is writable by default (git clone, curl -o), which is
        # also what the embedded policy does.
        fs = {"allowWrite": [self.sb.ws]} if write else {}
        self.n += 1
        return self.sb.settings({"network": net, "filesystem": fs},
                                name=name or "egress-settings-%d.json" % self.n)

    # --- running

    def run(self, settings, *cmd, opts=(), env=None, input=None, timeout=120, text=True):
        """cordon -s SETTINGS --audit FILE OPTS -- CMD, in the lab. The audit
        records of this run are then in self.audit()."""
        self.n += 1
        self.audit_path = self.sb.path("outside", "audit-%d.jsonl" % self.n)
        args = []
        if settings:
            args += ["-s", settings]
        args += ["--audit", self.audit_path] + list(opts) + ["--"] + list(cmd)
        return self.lab.run(self.sb, *args, env=env, input=input, timeout=timeout, text=text)

    def sh(self, settings, script, opts=(), env=None, **kw):
        return self.run(settings, "/bin/sh", "-c", script, opts=opts, env=env, **kw)

    def probe(self, settings, ops, opts=()):
        """Run egress_probe.py's operations inside cordon; returns the list
        of results (one per operation)."""
        p = self.run(settings, egress_lab.PY, "-c", PROBE_SRC, json.dumps(ops), opts=opts)
        assert p.returncode == 0, "probe failed: rc=%d\n%s\n%s" % (p.returncode, p.stdout,
                                                                    p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1])

    # --- audit

    def audit(self, event=None):
        """The records of the last run, each checked for the common fields."""
        recs = []
        with open(self.audit_path) as f:
            for line in f:
                r = json.loads(line)
                assert r["v"] == 1, r
                assert TS_RE.match(r["ts"]), r
                assert r["verdict"] in ("allow", "deny"), r
                recs.append(r)
        assert recs and recs[0]["event"] == "run.start", recs
        assert recs[-1]["event"] == "run.exit", recs
        if event:
            recs = [r for r in recs if r["event"] == event]
        return recs

    # --- the lab's logs since this Net was made

    def events(self, srv=None, ev=None):
        return self.lab.events(self.since, srv=srv, ev=ev)

    def origin(self, srv=("http", "https")):
        """Every connection accepted and every request head the HTTP and
        HTTPS origins saw."""
        return self.events(srv=srv)

    def requests(self, srv=("http", "https")):
        return self.events(srv=srv, ev="request")

    def dns(self):
        return [(e["name"], e["type"]) for e in self.events(srv="dns", ev="query")]

    def echo(self, port=None):
        return [e for e in self.events(srv="echo") if port is None or e["port"] == port]

    def reset(self):
        self.since = self.lab.mark()

    # --- text for files inside the sandbox

    def put(self, rel, content, mode=0o644):
        """A file in the workspace (the sandbox's cwd, visible inside)."""
        return self.sb.write("home/ws/" + rel, content, mode=mode)


def header(resp, name):
    for k, v in resp.get("headers", []):
        if k.lower() == name.lower():
            return v
    return None


def req_header(event, name):
    for k, v in event["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def get(target, headers=(), host=None, **kw):
    """A request dict for egress_probe's http op (absolute-form)."""
    h = [["Host", host]] if host else []
    if not host:
        m = re.match(r"^https?://([^/]+)", target)
        h = [["Host", m.group(1)]] if m else []
    return dict(method=kw.pop("method", "GET"), target=target, headers=h + list(headers), **kw)


def connect(authority, extra=""):
    return {"raw": "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (authority, authority, extra)}


def raw_http(ops_reqs):
    """A probe op: each raw request on its own connection, read until close."""
    return [{"op": "http", "mode": "raw", "reqs": [{"raw": r}]} for r in ops_reqs]


def denied_body(host, port, reason):
    return "cordon: %s:%d: %s\n" % (host, port, reason)
