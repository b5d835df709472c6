"""AWS credentials masked: SigV4 re-signing at the proxy (issue 10).

The sandbox holds fake AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN (or the variables credentials.awsPairs names). botocore
(and the AWS CLI) inside cordon sign with them; cordon checks each
signature with the fake secret and signs the request again with the real
key, toward the key id's injectHosts only.

The endpoint is sigv4_lab's S3-style server on the host's 127.0.0.1 (plain
HTTP and HTTPS, s3/sts/sqs/other.aws.test through network.hosts), which
recomputes every signature with botocore's own signer and the REAL secret,
and logs every byte it receives. The client (sigv4_client.py) runs inside
cordon and knows only the sandbox's environment. Plain HTTP needs
credentials.allowPlaintextInject; HTTPS goes through tlsTerminate, cordon
checking the endpoint against network.upstreamCaFile.

Every test runs as root and as uid 65534 and ends with the leak check: the
real secret key never reaches the endpoint (it only signs), the real token
only in X-Amz-Security-Token, and no real value appears in anything cordon
printed or wrote (stdout, stderr, the audit file, files under the test's
tree, the protect registry).
"""
import base64
import hashlib
import http.client
import json
import itertools
import os
import re
import secrets
from urllib.parse import quote

import pytest

import sigv4_lab
from sigv4_lab import parse_auth

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_SRC = open(os.path.join(HERE, "sigv4_client.py")).read()
AWS_CLI = "/usr/bin/aws"
SENTINEL_RE = r"^fake_value_[a-z0-9]+$"
AK, SK, TK = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"
LABEL_SK = "credentials.envVars[1] (AWS_SECRET_ACCESS_KEY)"
FORM = [["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]]
KEYS = ["dir/my key \u00e9\u00fc.txt", "a+b=c~d (1).bin", "\u65e5\u672c/\u30ad\u30fc"]

WHY_PRESIGNED = ("a presigned URL made with a masked AWS key cannot be signed again "
                 "(credentials.sigv4.presigned)")
WHY_STREAMING = ("a streaming (aws-chunked) upload signed with a masked AWS key cannot be "
                 "signed again (credentials.sigv4.streaming)")
WHY_SIGV4A = ("a SigV4A (ECDSA) signature made with a masked AWS key cannot be signed again "
              "(credentials.sigv4.sigv4a)")
WHY_VERIFY = ("the request's AWS signature does not verify with the masked key the sandbox "
              "holds, so it is not signed again")


@pytest.fixture(scope="module")
def ep():
    e = sigv4_lab.Endpoint()
    yield e
    try:
        # over the whole module: no real secret key in any byte received
        data = e.raw_bytes()
        with e.lock:
            keys = list(e.keys.values())
        assert not [k.access_key for k in keys if k.secret_key.encode() in data]
    finally:
        e.stop()


class Aws:
    """One test's view: a fresh real key (registered with the endpoint),
    settings, cordon runs, the endpoint's log since the test began, the
    audit records and the leak check."""

    def __init__(self, sb, ep):
        self.sb = sb
        self.ep = ep
        self.P, self.T = ep.plain_port, ep.tls_port
        self.since = ep.mark()
        self.ak, self.sk, self.tok = (sigv4_lab.real_akid(), sigv4_lab.real_secret(),
                                      sigv4_lab.real_token())
        self.reals = [self.ak, self.sk, self.tok]
        ep.add_key(self.ak, self.sk, self.tok)
        self.ca = sb.write("home/ws/endpoint-ca.pem", ep.ca_pem)
        self.bucket = "bkt-" + secrets.token_hex(4)
        self.outputs = []
        self.n = 0
        self.audit_path = None

    # --- endpoints

    def url(self, name="s3", tls=False, path=""):
        return "%s://%s.aws.test:%d%s" % ("https" if tls else "http", name,
                                          self.T if tls else self.P, path)

    def preload(self, keys=KEYS):
        """Objects put straight into the endpoint's store (not through
        cordon): KEY -> "content of KEY"."""
        with self.ep.lock:
            for k in keys:
                self.ep.objects[(self.bucket, k)] = ("content of " + k).encode()

    # --- settings

    def settings(self, creds=None, hosts=("s3.aws.test", "sts.aws.test", "sqs.aws.test"),
                 names=(AK, SK, TK), **net):
        allow = ["%s:%d" % (h, p) for h in sigv4_lab.NAMES for p in (self.P, self.T)]
        allow += ["127.0.0.1:%d" % self.P, "127.0.0.1:%d" % self.T]
        n = {"allowedDomains": allow, "hosts": {h: "127.0.0.1" for h in sigv4_lab.NAMES},
             "upstreamCaFile": self.ca, "tlsTerminate": {}}
        n.update(net)
        c = {"allowPlaintextInject": True,
             "envVars": [{"name": v, "mode": "mask", "injectHosts": list(hosts)} for v in names]}
        c.update(creds or {})
        self.n += 1
        return self.sb.settings({"network": n, "filesystem": {"allowWrite": [self.sb.ws]},
                                 "credentials": c}, name="sigv4-settings-%d.json" % self.n)

    def env(self, token=True, names=(AK, SK, TK)):
        vals = [self.ak, self.sk, self.tok if token else None]
        return {n: v for n, v in zip(names, vals) if v is not None}

    # --- running

    def run(self, settings, *cmd, env=None, timeout=60):
        self.n += 1
        self.audit_path = self.sb.path("outside", "audit-%d.jsonl" % self.n)
        p = self.sb.run("-s", settings, "--audit", self.audit_path, "--", *cmd,
                        env=env, timeout=timeout)
        self.outputs.append(("stdout", p.stdout))
        self.outputs.append(("stderr", p.stderr))
        return p

    def client(self, settings, ops, env=None, timeout=60):
        p = self.run(settings, PY, "-c", CLIENT_SRC, json.dumps(ops),
                     env=self.env() if env is None else env, timeout=timeout)
        assert p.returncode == 0, "client failed: rc=%d\n%s\n%s" % (
            p.returncode, p.stdout[-3000:], p.stderr[-3000:])
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert len(out) == len(ops), out
        for r in out:
            assert "exception" not in r, r
        return out

    # --- what the endpoint received

    def requests(self):
        return self.ep.requests(self.since)

    def audit(self, event=None):
        recs = []
        with open(self.audit_path) as f:
            for line in f:
                r = json.loads(line)
                assert r["v"] == 1 and r["verdict"] in ("allow", "deny"), r
                recs.append(r)
        assert recs and recs[0]["event"] == "run.start" and recs[-1]["event"] == "run.exit"
        return [r for r in recs if event is None or r["event"] == event]

    # --- the leak check

    def check_no_leak(self):
        # the endpoint: the secret key never, the token only as the
        # X-Amz-Security-Token value
        for e in self.requests():
            assert self.sk.encode() not in e["raw"], (e["method"], e["target"])
            toks = [v for k, v in e["headers"] if k.lower() == "x-amz-security-token"]
            assert e["raw"].count(self.tok.encode()) == toks.count(self.tok), e["target"]
        # everything cordon printed or wrote
        found = []
        sources = list(self.outputs)
        for root, _dirs, files in os.walk(self.sb.base):
            for f in files:
                p = os.path.join(root, f)
                if os.path.islink(p):
                    continue
                try:
                    with open(p, "rb") as fh:
                        sources.append((p, fh.read()))
                except OSError:
                    pass
        for root, _dirs, files in itertools.chain(os.walk("/tmp/cordon-%d" % self.sb.uid), os.walk(os.path.join(self.sb.home, ".cache", "cordon"))):
            for f in files:
                try:
                    with open(os.path.join(root, f), "rb") as fh:
                        sources.append((os.path.join(root, f), fh.read()))
                except OSError:
                    pass
        for where, data in sources:
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
            for v in self.reals:
                if v.encode() in data:
                    found.append((where, v[:4] + "..."))
        assert not found, "a real value leaked: %r" % found


@pytest.fixture
def aw(sb, ep):
    a = Aws(sb, ep)
    yield a
    a.check_no_leak()


# ---------------------------------------------------------------------------
# helpers

def boto(service, endpoint, call, **params):
    return {"op": "boto", "service": service, "endpoint": endpoint, "call": call,
            "params": params}


def raw(url, method="GET", **kw):
    d = {"op": "raw", "url": url, "method": method}
    d.update(kw)
    return d


def hdr(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def is_sentinel(v, n):
    return isinstance(v, str) and re.match(SENTINEL_RE, v) is not None and len(v) == n


def assert_resigned(aw, e, token=True):
    """e (an endpoint log entry) verified with the real key: the real key
    id in Credential, the real token sent and signed."""
    assert e["ok"], (e["target"], e["why"])
    (auth,) = hdr(e["headers"], "Authorization")
    a = parse_auth(auth)
    assert a["akid"] == aw.ak
    if token:
        assert hdr(e["headers"], "X-Amz-Security-Token") == [aw.tok]
        assert "x-amz-security-token" in a["signed"]
    return a


def net_requests(aw):
    return [(r["verdict"], r["method"], r["host"], r["status"], r.get("reason"),
             r.get("injected"), r.get("stripped")) for r in aw.audit("net.request")]


def refused(resp, why):
    """A 403 from cordon itself naming the case."""
    assert resp["status"] == 403, resp
    assert hdr(resp["headers"], "X-Proxy-Error") == ["blocked-by-rule"], resp["headers"]
    assert why in resp["body"], resp["body"]


# ---------------------------------------------------------------------------
# the sandbox's view

def test_sandbox_environment_holds_only_fakes(aw):
    """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are
    sentinels as long as the real values (24 bytes at least); no real value
    is anywhere in the sandbox's environment."""
    out = aw.client(aw.settings(), [{"op": "env", "names": [AK, SK, TK]}])
    v = out[0]["values"]
    assert is_sentinel(v[AK], 24), v[AK]              # a key id is 20 bytes
    assert is_sentinel(v[SK], 40) and is_sentinel(v[TK], len(aw.tok)), v
    env = json.dumps(out[0]["environ"])
    for r in aw.reals:
        assert r not in env


# ---------------------------------------------------------------------------
# re-signed requests succeed

def test_s3_get_list_and_sts_succeed_over_http_and_https(aw):
    """botocore's GetObject (path-style, keys with spaces, '+', '=', '~' and
    unicode), ListObjectsV2 and STS GetCallerIdentity (a form body without
    x-amz-content-sha256: cordon buffers it to hash it), over plain HTTP and
    through tlsTerminate: every request reaches the endpoint signed with the
    real key id and secret and the real session token (signed); the client
    gets the answers, with the real key id the STS answer quotes replaced
    by its sentinel. The audit names the secret key as injected."""
    aw.preload()
    ops = [{"op": "env", "names": [AK]}]
    for tls in (False, True):
        ops += [boto("s3", aw.url(tls=tls), "get_object", Bucket=aw.bucket, Key=k) for k in KEYS]
        ops += [boto("s3", aw.url(tls=tls), "list_objects_v2", Bucket=aw.bucket),
                boto("sts", aw.url("sts", tls), "get_caller_identity")]
    out = aw.client(aw.settings(), ops)
    fake_ak = out[0]["values"][AK]
    for i, tls in enumerate((False, True)):
        r = out[1 + i * 5: 6 + i * 5]
        assert [x.get("ok") for x in r] == [{"body": "content of " + k} for k in KEYS] + [
            {"keys": sorted(KEYS)},
            {"arn": "arn:aws:iam::%s:user/%s" % (sigv4_lab.ACCOUNT, fake_ak),
             "account": sigv4_lab.ACCOUNT}], (tls, r)
    got = aw.requests()
    assert [(e["scheme"], e["method"]) for e in got] == \
        [("http", "GET")] * 4 + [("http", "POST")] + [("https", "GET")] * 4 + [("https", "POST")]
    for e in got:
        a = assert_resigned(aw, e)
        assert a["region"] == "us-east-1"
    sts = [e for e in got if e["method"] == "POST"]
    for e in sts:
        assert parse_auth(hdr(e["headers"], "Authorization")[0])["service"] == "sts"
        assert hdr(e["headers"], "x-amz-content-sha256") == []
        assert e["body"] == b"Action=GetCallerIdentity&Version=2011-06-15"
    recs = net_requests(aw)
    assert [(r[0], r[1], r[2], r[3]) for r in recs] == \
        [("allow", "GET", "s3.aws.test", 200)] * 4 + [("allow", "POST", "sts.aws.test", 200)] + \
        [("allow", "GET", "s3.aws.test", 200)] * 4 + [("allow", "POST", "sts.aws.test", 200)]
    for r in recs:
        assert LABEL_SK in (r[5] or []), r


def test_put_object_reaches_the_endpoint_signed_with_the_real_key(aw):
    """PutObject as botocore's S3 signer makes it (x-amz-content-sha256 the
    body's hash, Content-MD5, a key with spaces and unicode) over plain
    HTTP and HTTPS, and with UNSIGNED-PAYLOAD over HTTPS: the endpoint
    verifies each with the real secret and stores the body as sent; the
    client gets the 200 (only the head is read here: see the xfail test
    below for the empty body)."""
    key = "up/load \u00e9 %d.txt"
    def md5(b):
        return base64.b64encode(hashlib.md5(b).digest()).decode()
    ops = []
    for i, tls in enumerate((False, True)):
        body = "payload %d \u00e9" % i
        ops.append(raw(aw.url(tls=tls, path="/%s/%s" % (aw.bucket, quote(
            key % i, safe="/~"))), "PUT", sign="s3", body=body, head_only=True,
            headers=[["Content-MD5", md5(body.encode())]]))
    ops.append(raw(aw.url(tls=True, path="/%s/unsigned" % aw.bucket), "PUT", sign="v4",
                   service="s3", body="unsigned body", head_only=True,
                   headers=[["X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"]]))
    out = aw.client(aw.settings(), ops)
    assert [o["status"] for o in out] == [200, 200, 200], out
    got = aw.requests()
    assert [(e["scheme"], e["method"]) for e in got] == [("http", "PUT"), ("https", "PUT"),
                                                         ("https", "PUT")]
    for e, o in zip(got, out):
        assert_resigned(aw, e)
        assert e["body"] == o["request"]["body"].encode()
        assert hdr(e["headers"], "x-amz-content-sha256") == \
            hdr(o["request"]["headers"], "X-Amz-Content-SHA256")
        # the body goes as sent: same framing, same length
        assert hdr(e["headers"], "Content-Length") == [str(len(e["body"]))]
    with aw.ep.lock:
        assert aw.ep.objects[(aw.bucket, key % 0)] == "payload 0 \u00e9".encode()
        assert aw.ep.objects[(aw.bucket, key % 1)] == "payload 1 \u00e9".encode()
        assert aw.ep.objects[(aw.bucket, "unsigned")] == b"unsigned body"


def test_put_object_answer_reaches_the_sdk(aw):
    """botocore's PutObject completes: the SDK reads the empty 200 (one
    request, plain HTTP: the HTTPS path is the same code)."""
    ops = [dict(boto("s3", aw.url(), "put_object", Bucket=aw.bucket, Key="k", Body="body"),
                read_timeout=1.5)]
    out = aw.client(aw.settings(), ops)
    assert out == [{"ok": {"etag": '"%s"' % hashlib.md5(b"body").hexdigest()}}], out


def test_form_body_split_across_sends_and_chunked_is_buffered_and_hashed(aw):
    """A non-S3 service (SQS-style POST, a form body, no
    x-amz-content-sha256): the client's signature covers the body's hash,
    so cordon gathers the body before it signs. The body arrives in several
    TCP sends (Content-Length), or chunked in several chunks, over plain
    HTTP and HTTPS; the endpoint verifies each with the real secret and
    receives the body as sent (chunked stays chunked)."""
    body = "Action=SendMessage&MessageBody=h%C3%A9llo%20world%20" + "x" * 3000 + "&QueueUrl=q"
    ops = []
    for tls in (False, True):
        ops.append(raw(aw.url("sqs", tls, "/"), "POST", sign="v4", service="sqs", body=body,
                       headers=FORM, split=[7, 100, 1000]))
        ops.append(raw(aw.url("sqs", tls, "/"), "POST", sign="v4", service="sqs", body=body,
                       headers=FORM, chunked=[5, 1, 2000]))
    out = aw.client(aw.settings(), ops)
    assert [o["status"] for o in out] == [200] * 4, out
    for o in out:
        assert json.loads(o["body"])["form"]["MessageBody"] == "h\u00e9llo world " + "x" * 3000
    got = aw.requests()
    assert [(e["scheme"], e["framing"]) for e in got] == [
        ("http", "length"), ("http", "chunked"), ("https", "length"), ("https", "chunked")]
    for e in got:
        a = assert_resigned(aw, e)
        assert a["service"] == "sqs" and e["body"] == body.encode()
        assert hdr(e["headers"], "x-amz-content-sha256") == []


def test_expect_100_continue_while_the_body_is_gathered_for_signing(aw):
    """A client that sends "Expect: 100-continue" waits for "100 Continue"
    before its body; cordon needs that body (hashed for the signature)
    before the head can go on, so it answers 100 itself. Without it the
    client would wait out its own timeout (botocore 1 s, here 5 s, after
    which "continued" is false). Over plain HTTP and HTTPS, Content-Length
    and chunked; the endpoint verifies each with the real secret."""
    body = "Action=SendMessage&MessageBody=expect%20" + "y" * 2000 + "&QueueUrl=q"
    ops = []
    for tls in (False, True):
        ops.append(raw(aw.url("sqs", tls, "/"), "POST", sign="v4", service="sqs", body=body,
                       headers=FORM, expect=True))
        ops.append(raw(aw.url("sqs", tls, "/"), "POST", sign="v4", service="sqs", body=body,
                       headers=FORM, chunked=[100, 1000], expect=True))
    out = aw.client(aw.settings(), ops)
    assert [(o["status"], o["continued"]) for o in out] == [(200, True)] * 4, out
    got = aw.requests()
    assert len(got) == 4
    for e in got:
        assert_resigned(aw, e)
        assert e["body"] == body.encode()


def test_canonicalisation_corner_cases_verify_and_sign_again(aw):
    """What cordon must canonicalise exactly as botocore does, or it would
    refuse (client's signature) or send a bad one (its own): a query with
    reserved characters, a key without "=" and unsorted keys; S3 paths with
    dot segments and an encoded slash (signed as sent); a non-S3 path with
    an empty segment, dot segments and %7E / %20 (normalised and encoded
    once more); header values with runs of spaces (trimmed) and a header
    sent twice (joined with a comma); a Lambda-style path of %3A; and
    bodies of 3 MB without x-amz-content-sha256 (buffered whole, with
    Content-Length and chunked). Every one reaches the endpoint, which
    verifies the new signature with the real secret."""
    aw.preload(KEYS[:1])
    b = aw.bucket
    ops = [boto("s3", aw.url(), "list_objects_v2", Bucket=b, Prefix="dir/my key \u00e9",
                StartAfter="a+b=c~d"),
           raw(aw.url(path="/%s/k?list-type=2&prefix=a%%2Bb%%3D&max-keys=5&fetch-owner" % b),
               sign="s3", headers=[["X-Amz-Meta-Note", "  a   b  c "],
                                   ["X-Amz-Meta-Dup", "one"], ["X-Amz-Meta-Dup", "two"]]),
           raw(aw.url(tls=True, path="/%s/./a/../k%%2Fx" % b), sign="s3"),
           raw(aw.url("sqs", path="/a//b/./c/../d%7E%20e"), sign="v4", service="sqs"),
           raw(aw.url("sqs", path="/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3A"
                              "function%3Amy%20fn/invocations"), "POST", sign="v4",
               service="lambda", body="{}"),
           raw(aw.url("sqs", path="/"), "POST", sign="v4", service="sqs", headers=FORM,
               body="Action=X&Data=", pad=3000000),
           raw(aw.url("sqs", True, "/"), "POST", sign="v4", service="sqs", headers=FORM,
               body="Action=X&Data=", pad=3000000, chunked=[100000, 1000000])]
    out = aw.client(aw.settings(), ops)
    assert out[0] == {"ok": {"keys": [KEYS[0]]}}, out[0]
    assert [o["status"] for o in out[1:]] == [404, 404, 404, 400, 200, 200], out
    got = aw.requests()
    assert [e["target"] for e in got[1:5]] == [o["request"]["target"] for o in out[1:5]]
    assert len(got) == 7
    for e in got:
        assert_resigned(aw, e)
    assert hdr(got[1]["headers"], "X-Amz-Meta-Dup") == ["one", "two"]
    assert [len(e["body"]) for e in got[5:]] == [3000014] * 2
    assert [e["framing"] for e in got[5:]] == ["length", "chunked"]


def test_secret_key_and_token_sentinels_are_never_replaced_and_echoes_are_masked(aw):
    """The fake secret key and token in a request's target, a header or
    its body toward the key id's host stay fakes (a request must not carry
    the real secret into, say, an object another account reads), signed or
    not. An answer quoting the real token and key id (the endpoint echoes
    what it received) reaches the sandbox with their sentinels."""
    leak = "s=${AWS_SECRET_ACCESS_KEY}&t=${AWS_SESSION_TOKEN}"
    ops = [{"op": "env", "names": [AK, SK, TK]},
           raw(aw.url(path="/%s/obj?%s" % (aw.bucket, leak)), "PUT", sign="s3",
               headers=[["X-Amz-Meta-Leak", leak]], body=leak, head_only=True),
           raw(aw.url(tls=True, path="/%s/obj2?%s" % (aw.bucket, leak)), "PUT",
               headers=[["X-Amz-Meta-Leak", leak]], body=leak),
           raw(aw.url("sqs", True, "/"), "POST", sign="v4", service="sqs", headers=FORM,
               body="Action=Echo&" + leak)]
    out = aw.client(aw.settings(), ops)
    v = out[0]["values"]
    fake = "s=%s&t=%s" % (v[SK], v[TK])
    got = aw.requests()
    assert len(got) == 3
    for e in got:
        assert e["target"].endswith(fake) or e["method"] == "POST", e["target"]
        assert e["body"].endswith(fake.encode()), e["body"][:100]
    for e in got[:2]:
        assert hdr(e["headers"], "X-Amz-Meta-Leak") == [fake]
    assert got[0]["ok"] and not got[1]["ok"] and got[2]["ok"]
    echo = json.loads(out[3]["body"])
    assert (echo["token"], echo["key_id"]) == (v[TK], v[AK]), echo
    assert echo["form"]["s"] == v[SK]


def test_session_token_real_on_the_wire_and_signed(aw):
    """The client signs with the fake token in X-Amz-Security-Token: the
    endpoint gets the real token, covered by the signature. A client that
    sends no token at all: cordon adds the real one and signs it. The fake
    token never reaches the endpoint; the sandbox never sees the real one."""
    aw.preload(KEYS[:1])
    path = "/%s/%s" % (aw.bucket, quote(KEYS[0], safe="/~"))
    ops = [{"op": "env", "names": [TK]},
           raw(aw.url(path=path), sign="s3"),
           raw(aw.url(tls=True, path=path), sign="s3"),
           raw(aw.url(path=path), sign="s3", no_token=True),
           raw(aw.url("sts", True, "/"), "POST", sign="v4", service="sts", no_token=True,
               headers=FORM, body="Action=GetCallerIdentity&Version=2011-06-15")]
    out = aw.client(aw.settings(), ops)
    fake_tok = out[0]["values"][TK]
    assert [o["status"] for o in out[1:]] == [200] * 4, out
    assert hdr(out[1]["request"]["headers"], "X-Amz-Security-Token") == [fake_tok]
    assert hdr(out[3]["request"]["headers"], "X-Amz-Security-Token") == []
    got = aw.requests()
    assert len(got) == 4
    for e in got:
        assert_resigned(aw, e, token=True)
        assert fake_tok.encode() not in e["raw"]
    # the client's SignedHeaders had no token: cordon added it, in order
    a = parse_auth(hdr(got[2]["headers"], "Authorization")[0])
    assert a["signed"] == sorted(a["signed"])
    for o in out[1:]:
        assert aw.tok not in json.dumps(o)


def test_aws_pairs_with_custom_variable_names(aw):
    """credentials.awsPairs links MY_KEY_ID / MY_SECRET / MY_TOKEN (each a
    whole-value masked variable): a client that signs with them is signed
    again with the real values."""
    names = ("MY_KEY_ID", "MY_SECRET", "MY_TOKEN")
    aw.preload(KEYS[:1])
    s = aw.settings({"awsPairs": [{"accessKeyIdVar": names[0], "secretAccessKeyVar": names[1],
                                   "sessionTokenVar": names[2]}]}, names=names)
    creds = {"ak": names[0], "sk": names[1], "tok": names[2]}
    ops = [{"op": "env", "names": list(names) + [AK, SK, TK]},
           dict(boto("s3", aw.url(), "get_object", Bucket=aw.bucket, Key=KEYS[0]), creds=creds),
           dict(boto("sts", aw.url("sts", True), "get_caller_identity"), creds=creds)]
    out = aw.client(s, ops, env=aw.env(names=names))
    v = out[0]["values"]
    assert is_sentinel(v[names[0]], 24) and is_sentinel(v[names[1]], 40), v
    assert (v[AK], v[SK], v[TK]) == (None, None, None)
    assert out[1] == {"ok": {"body": "content of " + KEYS[0]}}, out[1]
    assert out[2]["ok"]["arn"].endswith("/" + v[names[0]]), out[2]
    got = aw.requests()
    assert len(got) == 2
    for e in got:
        assert_resigned(aw, e)
    for r in net_requests(aw):
        assert "credentials.envVars[1] (MY_SECRET)" in (r[5] or []), r


@pytest.mark.parametrize("pair, why", [
    ({"accessKeyIdVar": AK, "secretAccessKeyVar": "NOT_MASKED"},
     "/credentials/awsPairs/0/secretAccessKeyVar: NOT_MASKED must be an envVars entry with "
     "mode \"mask\""),
    ({"accessKeyIdVar": AK, "secretAccessKeyVar": AK},
     "/credentials/awsPairs/0/secretAccessKeyVar: AWS_ACCESS_KEY_ID is used in two slots"),
    ({"accessKeyIdVar": AK}, "a pair needs accessKeyIdVar and secretAccessKeyVar"),
])
def test_aws_pairs_that_cannot_sign_refuse_the_run(aw, pair, why):
    """An awsPairs entry naming a variable that is not whole-value masked,
    one variable in two slots, or a pair without its secret: the run is
    refused (125), naming the entry, never a value."""
    s = aw.settings({"awsPairs": [pair]}, names=(AK, SK))
    p = aw.run(s, "/bin/true", env=dict(aw.env(token=False), NOT_MASKED=aw.sk))
    assert p.returncode == 125, (p.returncode, p.stderr)
    assert why in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# the negative control: the fake signature is worthless without cordon

def test_the_same_fake_signed_request_sent_directly_is_rejected(aw):
    """Inside the sandbox botocore's signer makes a GetObject and an STS
    POST with the fake values; the very same bytes sent through cordon
    succeed, while replayed from the host straight to the endpoint
    (bypassing cordon) they are rejected: the fake key id is unknown, and
    even with the real key id and token put in, the signature (made with the
    fake secret) does not match."""
    aw.preload(KEYS[:1])
    ops = [raw(aw.url(path="/%s/%s" % (aw.bucket, quote(KEYS[0], safe="/~"))),
               sign="s3"),
           raw(aw.url("sts", path="/"), "POST", sign="v4", service="sts", headers=FORM,
               body="Action=GetCallerIdentity&Version=2011-06-15")]
    out = aw.client(aw.settings(), ops)
    assert [o["status"] for o in out] == [200, 200], out
    assert all(e["ok"] for e in aw.requests())
    mark = aw.ep.mark()
    for o in out:
        req = o["request"]
        fake_ak = parse_auth(hdr(req["headers"], "Authorization")[0])["akid"]
        fake_tok = hdr(req["headers"], "X-Amz-Security-Token")[0]
        for swap in (False, True):
            headers = req["headers"]
            if swap:
                headers = [[k, v.replace(fake_ak, aw.ak).replace(fake_tok, aw.tok)]
                           for k, v in headers]
            c = http.client.HTTPConnection("127.0.0.1", aw.P, timeout=10)
            c.putrequest(req["method"], req["target"], skip_host=True,
                         skip_accept_encoding=True)
            for k, v in headers:
                c.putheader(k, v)
            body = req["body"].encode()
            c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            text = r.read().decode()
            c.close()
            assert r.status == 403, text
            code = "SignatureDoesNotMatch" if swap else "InvalidAccessKeyId"
            assert "<Code>%s</Code>" % code in text, text
    got = aw.ep.requests(mark)
    assert [e["ok"] for e in got] == [False] * 4


# ---------------------------------------------------------------------------
# shapes that cannot be signed again

def streaming_put(aw, tls=False):
    return raw(aw.url(tls=tls, path="/%s/streamed" % aw.bucket), "PUT", sign="v4", service="s3",
               headers=[["X-Amz-Content-SHA256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"],
                        ["Content-Encoding", "aws-chunked"],
                        ["X-Amz-Decoded-Content-Length", "5"]],
               body="5;chunk-signature=%s\r\nhello\r\n0;chunk-signature=%s\r\n\r\n" % (
                   "0" * 64, "1" * 64))


def sigv4a_get(aw, tls=False, akid="${AWS_ACCESS_KEY_ID}"):
    return raw(aw.url(tls=tls, path="/%s/k" % aw.bucket),
               auth="AWS4-ECDSA-P256-SHA256 Credential=%s/20240101/s3/aws4_request, "
                    "SignedHeaders=host;x-amz-date;x-amz-region-set, "
                    "Signature=3045022100%s" % (akid, "ab" * 60),
               headers=[["X-Amz-Date", "20240101T000000Z"], ["X-Amz-Region-Set", "*"]])


def presign(aw, tls=False):
    return {"op": "presign", "endpoint": aw.url(tls=tls), "bucket": aw.bucket, "key": KEYS[0]}


def test_presigned_streaming_and_sigv4a_are_refused_by_default(aw):
    """A presigned URL made with the fake key (X-Amz-Credential in the
    query), a streaming upload (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) and a
    SigV4A signature with the fake key id, over plain HTTP and HTTPS: each
    gets cordon's 403 with X-Proxy-Error: blocked-by-rule naming the case
    and a net.request deny record with that reason; none reaches the
    endpoint."""
    ops = []
    for tls in (False, True):
        ops += [presign(aw, tls), streaming_put(aw, tls), sigv4a_get(aw, tls)]
    out = aw.client(aw.settings(), ops)
    for i in range(2):
        refused(out[3 * i], WHY_PRESIGNED)
        refused(out[3 * i + 1], WHY_STREAMING)
        refused(out[3 * i + 2], WHY_SIGV4A)
    assert "X-Amz-Credential=fake_value_" in out[0]["target"]
    assert aw.requests() == []
    recs = net_requests(aw)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in recs] == [
        ("deny", "GET", "s3.aws.test", 403, WHY_PRESIGNED),
        ("deny", "PUT", "s3.aws.test", 403, WHY_STREAMING),
        ("deny", "GET", "s3.aws.test", 403, WHY_SIGV4A)] * 2
    for r in recs:
        assert r[5] is None, r     # nothing injected
    # the deny record names the path the sandbox sent (with its sentinels)
    assert aw.audit("net.request")[0]["path"] == out[0]["target"]


PASSTHROUGH = {"sigv4": {"presigned": "passthrough", "streaming": "passthrough",
                         "sigv4a": "passthrough"}}


def test_passthrough_lets_them_reach_the_endpoint_which_refuses_them(aw):
    """With credentials.sigv4 {presigned, streaming, sigv4a: passthrough}
    the three shapes are not refused by cordon: they reach the endpoint,
    which cannot verify them (no X-Proxy-Error; the endpoint's own 403).
    Their signatures are the sandbox's, and the secret key and token never
    go out."""
    out = aw.client(aw.settings(PASSTHROUGH),
                    [presign(aw), streaming_put(aw), sigv4a_get(aw), presign(aw, True)])
    for o in out:
        assert o["status"] == 403 and hdr(o["headers"], "X-Proxy-Error") == [], o
    got = aw.requests()
    assert [(e["scheme"], e["method"], e["ok"]) for e in got] == [
        ("http", "GET", False), ("http", "PUT", False), ("http", "GET", False),
        ("https", "GET", False)]
    # the signatures are the sandbox's
    for e, o in zip(got[:1] + got[3:], out[:1] + out[3:]):
        sig = re.search(r"X-Amz-Signature=([0-9a-f]{64})", o["target"]).group(1)
        assert e["target"].endswith("X-Amz-Signature=" + sig), e["target"]
    for e, o in zip(got[1:3], out[1:3]):
        sent = hdr(o["request"]["headers"], "Authorization")[0]
        assert hdr(e["headers"], "Authorization")[0].split("Signature=")[1] == \
            sent.split("Signature=")[1]
    assert got[1]["body"] == out[1]["request"]["body"].encode()
    for r in net_requests(aw):
        assert r[0] == "allow" and LABEL_SK not in (r[5] or []), r


def test_passthrough_forwards_the_request_unchanged(aw):
    """Under passthrough, the presigned target and the streaming and SigV4A
    Authorization reach the endpoint exactly as the sandbox sent them (with
    the fake key id)."""
    out = aw.client(aw.settings(PASSTHROUGH), [presign(aw), streaming_put(aw), sigv4a_get(aw)])
    got = aw.requests()
    assert len(got) == 3
    assert got[0]["target"] == out[0]["target"]
    for e, o in zip(got[1:], out[1:]):
        assert hdr(e["headers"], "Authorization") == hdr(o["request"]["headers"],
                                                         "Authorization")


# ---------------------------------------------------------------------------
# what cordon refuses to sign

def test_tampered_requests_get_403_and_never_reach_the_endpoint(aw):
    """Requests whose signature does not verify with the fake secret: a
    signed header changed after signing, the path changed, a form body
    changed (non-S3: the body's hash is signed), a garbage signature, the
    signature under another region's scope, and a SignedHeaders list cut
    short. Each gets cordon's 403 and
    never reaches the endpoint; nothing is injected."""
    path = "/%s/k" % aw.bucket
    form = dict(sign="v4", service="sts", headers=FORM,
                body="Action=GetCallerIdentity&Version=2011-06-15")
    ops = [raw(aw.url(path=path), sign="s3",
               tamper={"header": ["X-Amz-Date", "20200101T000000Z"]}),
           raw(aw.url(tls=True, path=path), sign="s3",
               tamper={"header": ["X-Amz-Content-SHA256", "0" * 64]}),
           raw(aw.url("sts", path="/"), "POST",
               tamper={"body": "Action=GetCallerIdentity&Version=2011-06-16"}, **form),
           raw(aw.url("sts", True, "/"), "POST",
               tamper={"body": "Action=GetCallerIdentity&Version=2011-06-15&x=1"}, **form),
           raw(aw.url(path=path), sign="s3", tamper={"header": [
               "Authorization", "AWS4-HMAC-SHA256 Credential=${AWS_ACCESS_KEY_ID}/20240101/"
               "us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64]}),
           raw(aw.url(path=path), sign="s3",
               tamper={"auth_replace": ["/us-east-1/", "/us-west-2/"]}),
           raw(aw.url(tls=True, path=path), sign="s3",
               tamper={"auth_replace": ["host;x-amz-content-sha256;", "host;"]})]
    out = aw.client(aw.settings(), ops)
    for o in out:
        refused(o, WHY_VERIFY)
    assert aw.requests() == []
    recs = net_requests(aw)
    assert [(r[0], r[3], r[4], r[5]) for r in recs] == [("deny", 403, WHY_VERIFY, None)] * 7


def test_a_client_signing_with_its_own_key_toward_the_aws_host_is_stripped(aw):
    """A client that signs with a key of its own (not the masked one)
    toward the key id's host: its Authorization never goes out (T21, a key
    planted in the workspace), nothing is signed for it, and the net.request
    record says Authorization was stripped."""
    other = ["AKIAOTHEROTHEROTHER1", "othersecret" * 4]
    ops = [raw(aw.url(path="/%s/k" % aw.bucket), sign="s3", creds={"literal": other}),
           raw(aw.url("sts", True, "/"), "POST", sign="v4", service="sts",
               creds={"literal": other}, headers=FORM,
               body="Action=GetCallerIdentity&Version=2011-06-15")]
    out = aw.client(aw.settings(), ops)
    assert [o["status"] for o in out] == [403, 403]
    got = aw.requests()
    assert len(got) == 2
    for e in got:
        assert hdr(e["headers"], "Authorization") == [] and e["why"] == "no Authorization"
        assert b"AKIAOTHER" not in e["raw"] and aw.ak.encode() not in e["raw"]
    recs = net_requests(aw)
    assert [(r[0], r[3], r[5], r[6]) for r in recs] == \
        [("allow", 403, None, ["Authorization"])] * 2


def test_an_unknown_payload_hash_is_refused(aw):
    """An x-amz-content-sha256 that is neither a hash, UNSIGNED-PAYLOAD nor
    a streaming value cannot be signed again: 403, the endpoint never
    reached."""
    ops = [raw(aw.url(path="/%s/k" % aw.bucket), "PUT", sign="v4", service="s3", body="x",
               headers=[["X-Amz-Content-SHA256", "NOT-A-HASH"]])]
    out = aw.client(aw.settings(), ops)
    refused(out[0], "an x-amz-content-sha256 value that cannot be signed again")
    assert aw.requests() == []
    (r,) = net_requests(aw)
    assert r[:4] == ("deny", "PUT", "s3.aws.test", 403)


def test_a_body_larger_than_cordon_buffers_is_refused(aw):
    """A non-S3 request without x-amz-content-sha256 announcing more than
    64 MiB: cordon cannot hash it before the head goes, so 403 at once,
    before any of the body is read; the endpoint is never reached."""
    script = r"""
import os, socket, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url = sys.argv[1]
c = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                os.environ["AWS_SESSION_TOKEN"])
req = AWSRequest(method="POST", url=url, data=b"Action=X")
req.headers["Content-Type"] = "application/x-www-form-urlencoded"
SigV4Auth(c, "sqs", "us-east-1").add_auth(req)
head = "POST %s HTTP/1.1\r\nHost: %s\r\n" % (url, url.split("/")[2])
for k, v in req.headers.items():
    head += "%s: %s\r\n" % (k, v)
head += "Content-Length: %d\r\n\r\n" % ((64 << 20) + 1)
s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
s.sendall(head.encode() + b"Action=X")
print(s.recv(65536).decode("latin-1"))
"""
    p = aw.run(aw.settings(), PY, "-c", script, aw.url("sqs", path="/"), env=aw.env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("HTTP/1.1 403 "), p.stdout
    assert "X-Proxy-Error: blocked-by-rule" in p.stdout
    assert "larger than cordon buffers to sign it again (64 MiB)" in p.stdout
    assert aw.requests() == []


# ---------------------------------------------------------------------------
# host scoping

def test_fake_key_toward_an_allowed_host_outside_inject_hosts_goes_unchanged(aw):
    """other.aws.test is allowed but not in the key id's injectHosts: a
    request signed with the fake key reaches it with the sandbox's
    Authorization and fake token byte for byte (a worthless signature), no
    real value at all, nothing injected or stripped."""
    path = "/%s/k" % aw.bucket
    ops = [raw(aw.url("other", path=path), sign="s3"),
           raw(aw.url("other", True, path), sign="s3"),
           raw(aw.url("other", True, "/"), "POST", sign="v4", service="sts", headers=FORM,
               body="Action=GetCallerIdentity&Version=2011-06-15")]
    out = aw.client(aw.settings(), ops)
    got = aw.requests()
    assert len(got) == 3
    for e, o in zip(got, out):
        assert not e["ok"] and e["code"] == "InvalidAccessKeyId", e["why"]
        for h in ("Authorization", "X-Amz-Security-Token", "X-Amz-Date"):
            assert hdr(e["headers"], h) == hdr(o["request"]["headers"], h)
        assert e["body"] == o["request"]["body"].encode()
        for r in aw.reals:
            assert r.encode() not in e["raw"]
    recs = net_requests(aw)
    assert [(r[0], r[2], r[5], r[6]) for r in recs] == [("allow", "other.aws.test", None,
                                                         None)] * 3


def test_require_host_match_false_scopes_the_key_to_both_hosts(aw):
    """requireHostMatch false inside an intercepted tunnel: a CONNECT to
    other.aws.test whose request names s3.aws.test goes to other.aws.test
    with the fake Authorization unchanged; a CONNECT to s3.aws.test whose
    request names other.aws.test is not signed (the key id must belong to
    both hosts): its fake Authorization is stripped. With requireHostMatch
    (the default) both are 421."""
    path = "/%s/k" % aw.bucket
    ops = [raw(aw.url("s3", True, path), sign="s3", connect="other.aws.test:%d" % aw.T),
           raw(aw.url("other", True, path), sign="s3", connect="s3.aws.test:%d" % aw.T)]
    out = aw.client(aw.settings(requireHostMatch=False), ops)
    got = aw.requests()
    assert len(got) == 2
    a, b = got
    assert hdr(a["headers"], "Host") == ["other.aws.test:%d" % aw.T]
    assert hdr(a["headers"], "Authorization") == hdr(out[0]["request"]["headers"],
                                                     "Authorization")
    assert a["code"] == "InvalidAccessKeyId"
    assert hdr(b["headers"], "Host") == ["s3.aws.test:%d" % aw.T]
    assert hdr(b["headers"], "Authorization") == [] and b["why"] == "no Authorization"
    for e in got:
        for r in aw.reals:
            assert r.encode() not in e["raw"]
    recs = net_requests(aw)
    assert [(r[2], r[5], r[6]) for r in recs] == [("other.aws.test", None, None),
                                                  ("s3.aws.test", None, ["Authorization"])]
    mark = aw.ep.mark()
    out = aw.client(aw.settings(), ops)
    assert [o["status"] for o in out] == [421, 421]
    assert aw.ep.requests(mark) == []


# ---------------------------------------------------------------------------
# signed headers cordon itself changes

def test_a_signed_accept_encoding_is_signed_again(aw):
    """The client signs Accept-Encoding: gzip; cordon forwards the request
    signed again (over what it forwards) and the endpoint verifies it."""
    aw.preload(KEYS[:1])
    path = "/%s/%s" % (aw.bucket, quote(KEYS[0], safe="/~"))
    out = aw.client(aw.settings(), [raw(aw.url(path=path), sign="s3",
                                        headers=[["Accept-Encoding", "gzip"]]),
                                    raw(aw.url(tls=True, path=path), sign="s3",
                                        headers=[["Accept-Encoding", "gzip"]])])
    assert [o["status"] for o in out] == [200, 200], out
    got = aw.requests()
    assert len(got) == 2 and all(e["ok"] for e in got)
    assert [(r[0], r[3]) for r in net_requests(aw)] == [("allow", 200)] * 2


def test_a_signed_header_cordon_strips_gets_a_truthful_audited_refusal(aw):
    """The client signs X-Amz-Meta-Foo, which stripRequestHeaders removes:
    cordon cannot sign what it does not forward; the answer says why (not
    "out of memory") and a net.request record is written."""
    out = aw.client(aw.settings(stripRequestHeaders=["x-amz-meta-foo"]),
                    [raw(aw.url(path="/%s/k" % aw.bucket), sign="s3",
                         headers=[["X-Amz-Meta-Foo", "bar"]])])
    assert "out of memory" not in out[0]["body"], out[0]
    assert aw.requests() == []
    assert [r[0] for r in net_requests(aw)] == ["deny"]


# ---------------------------------------------------------------------------
# the audit

def test_audit_lists_every_aws_credential_put_on_the_wire(aw):
    aw.preload(KEYS[:1])
    path = "/%s/%s" % (aw.bucket, quote(KEYS[0], safe="/~"))
    aw.client(aw.settings(), [raw(aw.url(path=path), sign="s3")])
    (r,) = net_requests(aw)
    assert sorted(r[5]) == sorted(["credentials.envVars[0] (AWS_ACCESS_KEY_ID)", LABEL_SK,
                                   "credentials.envVars[2] (AWS_SESSION_TOKEN)"]), r


# ---------------------------------------------------------------------------
# the AWS CLI

@pytest.mark.skipif(not os.path.exists(AWS_CLI), reason="the AWS CLI (Debian's awscli) is not "
                    "installed")
def test_aws_cli_with_masked_keys(aw):
    """The AWS CLI (Debian's awscli) inside cordon, configured only by the
    environment (the masked keys, AWS_CA_BUNDLE and the proxy cordon sets):
    s3api get-object (plain HTTP, a unicode key), list-objects-v2
    (path-style) and sts get-caller-identity (HTTPS), all signed again and
    verified by the endpoint; the Arn quoting the key id comes back with
    the sentinel."""
    aw.preload()
    cfg = aw.sb.write("home/ws/aws-config", "[default]\nregion = us-east-1\n"
                      "s3 =\n    addressing_style = path\n")
    script = r"""
set -e
aws() { /usr/bin/aws --cli-read-timeout 20 --cli-connect-timeout 20 "$@"; }
aws --endpoint-url "$1" s3api get-object --bucket "$3" --key "$4" out.bin >/dev/null
cat out.bin; echo
aws --endpoint-url "$2" s3api list-objects-v2 --bucket "$3" --query 'Contents[].Key' --output json
aws --endpoint-url "$5" sts get-caller-identity --output json
"""
    env = dict(aw.env(), AWS_CONFIG_FILE=cfg, AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_PAGER="", AWS_EC2_METADATA_DISABLED="true", LC_ALL="C.UTF-8")
    p = aw.run(aw.settings(), "/bin/sh", "-c", script, "sh", aw.url(), aw.url(tls=True),
               aw.bucket, KEYS[0], aw.url("sts", True), env=env, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    first, rest = p.stdout.split("\n", 1)
    assert first == "content of " + KEYS[0]
    dec = json.JSONDecoder()
    keys, end = dec.raw_decode(rest)
    ident = json.loads(rest[end:])
    assert keys == sorted(KEYS)
    assert ident["Account"] == sigv4_lab.ACCOUNT
    assert re.match(r"^arn:aws:iam::%s:user/fake_value_[a-z0-9]{13}$" % sigv4_lab.ACCOUNT,
                    ident["Arn"]), ident
    got = aw.requests()
    assert [(e["scheme"], e["method"]) for e in got] == [
        ("http", "GET"), ("https", "GET"), ("https", "POST")]
    for e in got:
        assert_resigned(aw, e)
        assert any(v.startswith("aws-cli/") for v in hdr(e["headers"], "User-Agent"))
