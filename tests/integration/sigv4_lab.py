"""The host side of the SigV4 tests (test_sigv4.py): an S3-style endpoint
that checks AWS signatures with the REAL secret.

`Endpoint` listens on the host's 127.0.0.1, in plain HTTP and in HTTPS (a
leaf from a test CA for every name of NAMES and 127.0.0.1), each a
ThreadingHTTPServer (cordon's proxy keeps upstream connections alive, so
one thread per connection). Every request is logged: its raw bytes as
received (request line, head and body, for the leak check), the request
line, the headers in order, the decoded body, and the verdict.

Verification uses botocore's own signer, never a reimplementation: an
AWSRequest is built from the received method, target, the headers the
client listed in SignedHeaders and the body; SigV4Auth (S3SigV4Auth for
service s3) with the real credentials of the key id in Credential= and the
request's X-Amz-Date computes the expected signature. A request passes
when the key id is a registered real one, the signature matches, a literal
x-amz-content-sha256 is the body's hash, and, for a key that has a session
token, X-Amz-Security-Token is the real token and is signed. Anything else
is answered 403 in S3's (or the query API's) error format with the reason
in X-Verify-Error. Query-string (presigned) and SigV4A requests are always
refused (the key id in them is never a real one in these tests).

Once verified, a small S3 and two query APIs answer:
  PUT /BUCKET/KEY          store the body (path-style), ETag = md5
  GET /BUCKET/KEY          the stored body (404 NoSuchKey otherwise)
  GET /BUCKET?list-type=2  ListBucketResult (keys url-encoded when
                           encoding-type=url, as botocore asks)
  POST / Action=GetCallerIdentity   STS's answer, Arn naming the key id
  POST / anything else (SQS-style)  a JSON echo: the form fields, the
                           X-Amz-Security-Token and key id received
"""
import base64
import hashlib
import json
import os
import secrets
import shutil
import ssl
import string
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import tls_lab

NAMES = ["s3.aws.test", "sts.aws.test", "sqs.aws.test", "other.aws.test"]
ACCOUNT = "123456789012"


def real_akid():
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def real_secret():
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def real_token():
    return base64.b64encode(secrets.token_bytes(240)).decode()


class _Tee:
    """The rfile of one connection, keeping every byte read."""

    def __init__(self, f):
        self.f = f
        self.buf = bytearray()

    def readline(self, *a):
        d = self.f.readline(*a)
        self.buf += d
        return d

    def read(self, *a):
        d = self.f.read(*a)
        self.buf += d
        return d

    def take(self):
        d = bytes(self.buf)
        self.buf.clear()
        return d

    def close(self):
        self.f.close()


def parse_auth(v):
    """AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
    as a dict (algorithm, akid, date, region, service, signed, signature);
    None when it is not that."""
    alg, _, rest = v.partition(" ")
    out = {"algorithm": alg}
    for part in rest.split(","):
        k, _, val = part.strip().partition("=")
        out[k] = val
    if alg != "AWS4-HMAC-SHA256" or not all(k in out for k in
                                            ("Credential", "SignedHeaders", "Signature")):
        return None
    scope = out["Credential"].split("/")
    if len(scope) != 5:
        return None
    out.update(akid=scope[0], date=scope[1], region=scope[2], service=scope[3],
               signed=out["SignedHeaders"].split(";"), signature=out["Signature"])
    return out


def expected_signature(method, scheme, target, headers, body, auth, creds):
    """botocore's signature for the request as received, with creds (a
    botocore Credentials) and the client's scope, signed headers and
    X-Amz-Date."""
    signed = set(auth["signed"])
    req = AWSRequest(method=method, url="%s://%s%s" % (scheme, dict(
        (k.lower(), v) for k, v in headers).get("host", ""), target), data=body)
    for k, v in headers:
        if k.lower() in signed:
            req.headers[k] = v
    cls = S3SigV4Auth if auth["service"] == "s3" else SigV4Auth
    signer = cls(creds, auth["service"], auth["region"])
    amz_date = [v for k, v in headers if k.lower() == "x-amz-date"]
    req.context["timestamp"] = amz_date[0] if amz_date else ""
    cr = signer.canonical_request(req)
    sts = signer.string_to_sign(req, cr)
    return signer.signature(sts, req), signer.signed_headers(signer.headers_to_sign(req))


class Endpoint:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cordon-sigv4-pki-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.ca, self.ca_key = tls_lab.make_ca(self.dir, "ca", "cordon sigv4 test CA")
        self.leaf, self.leaf_key = tls_lab.make_leaf(
            self.dir, "endpoint", self.ca, self.ca_key,
            ["DNS:" + n for n in NAMES] + ["IP:127.0.0.1"])
        with open(self.ca) as f:
            self.ca_pem = f.read()
        self.lock = threading.Lock()
        self.log = []
        self.keys = {}      # real key id -> Credentials
        self.objects = {}   # (bucket, key) -> bytes
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.leaf, self.leaf_key)
        self.servers = []
        self.plain_port = self._serve(False)
        self.tls_port = self._serve(True)

    # --- registry

    def add_key(self, akid, secret, token=None):
        with self.lock:
            self.keys[akid] = Credentials(akid, secret, token)

    def mark(self):
        with self.lock:
            return len(self.log)

    def requests(self, since=0):
        with self.lock:
            return list(self.log[since:])

    def raw_bytes(self):
        with self.lock:
            return b"".join(e["raw"] for e in self.log)

    # --- serving

    def _serve(self, tls):
        ep = self

        class Handler(_Handler):
            endpoint = ep
            scheme = "https" if tls else "http"

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        srv.block_on_close = False
        if tls:
            srv.socket = self.ctx.wrap_socket(srv.socket, server_side=True,
                                              do_handshake_on_connect=False)
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True)
        t.start()
        self.servers.append((srv, t))
        return srv.server_address[1]

    def stop(self):
        for srv, t in self.servers:
            srv.shutdown()
            srv.server_close()
            t.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- verification

    def verify(self, scheme, method, target, headers, body):
        """(True, akid) or (False, code, reason)."""
        hd = {}
        for k, v in headers:
            hd.setdefault(k.lower(), []).append(v)
        query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        if "X-Amz-Credential" in query or "X-Amz-Signature" in query:
            akid = query.get("X-Amz-Credential", "").split("/")[0]
            return (False, "InvalidAccessKeyId" if akid not in self.keys else
                    "SignatureDoesNotMatch", "query-string signature refused (%s)" % akid)
        if "authorization" not in hd:
            return False, "AccessDenied", "no Authorization"
        if len(hd["authorization"]) != 1:
            return False, "InvalidRequest", "several Authorization fields"
        av = hd["authorization"][0]
        if av.startswith("AWS4-ECDSA-P256-SHA256"):
            return False, "SignatureDoesNotMatch", "SigV4A refused"
        auth = parse_auth(av)
        if auth is None:
            return False, "InvalidRequest", "malformed Authorization"
        with self.lock:
            creds = self.keys.get(auth["akid"])
        if creds is None:
            return False, "InvalidAccessKeyId", "unknown key id " + auth["akid"]
        xsha = hd.get("x-amz-content-sha256", [None])[0]
        if xsha and xsha.startswith("STREAMING-"):
            return False, "SignatureDoesNotMatch", "streaming payload refused"
        if xsha and xsha != "UNSIGNED-PAYLOAD" and xsha != hashlib.sha256(body).hexdigest():
            return False, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 is not the body's"
        if creds.token is not None:
            if hd.get("x-amz-security-token") != [creds.token]:
                return False, "InvalidToken", "X-Amz-Security-Token is not the real token"
            if "x-amz-security-token" not in auth["signed"]:
                return False, "AccessDenied", "X-Amz-Security-Token is not signed"
        elif "x-amz-security-token" in hd:
            return False, "InvalidToken", "a token for a key without one"
        for h in auth["signed"]:
            if h not in hd:
                return False, "SignatureDoesNotMatch", "signed header %s missing" % h
        amz = hd.get("x-amz-date", [""])[0]
        if amz[:8] != auth["date"]:
            return False, "SignatureDoesNotMatch", "X-Amz-Date is not the scope's date"
        sig, signed = expected_signature(method, scheme, target, headers, body, auth, creds)
        if signed != auth["SignedHeaders"]:
            return False, "SignatureDoesNotMatch", "SignedHeaders %s, botocore %s" % (
                auth["SignedHeaders"], signed)
        if sig != auth["signature"]:
            return False, "SignatureDoesNotMatch", "signature does not match"
        return True, auth["akid"]

    # --- the services

    def answer(self, method, target, headers, body, akid):
        """(status, content-type, body bytes)."""
        hd = {k.lower(): v for k, v in headers}
        parts = urlsplit(target)
        path = unquote(parts.path)
        q = dict(parse_qsl(parts.query, keep_blank_values=True))
        if method == "POST" and parts.path == "/":
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
            if form.get("Action") == "GetCallerIdentity":
                x = ('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
                     '2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::%s:user/%s</Arn>'
                     '<UserId>AIDATEST</UserId><Account>%s</Account></GetCallerIdentityResult>'
                     '<ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>'
                     '</GetCallerIdentityResponse>' % (ACCOUNT, akid, ACCOUNT))
                return 200, "text/xml", x.encode()
            return 200, "application/json", json.dumps(
                {"form": form, "content-type": hd.get("content-type"),
                 "token": hd.get("x-amz-security-token"), "key_id": akid}).encode()
        segs = path.lstrip("/").split("/", 1)
        bucket = segs[0]
        key = segs[1] if len(segs) > 1 else ""
        if method == "PUT" and key:
            with self.lock:
                self.objects[(bucket, key)] = body
            return 200, None, b""
        if method in ("GET", "HEAD") and key:
            with self.lock:
                data = self.objects.get((bucket, key))
            if data is None:
                return 404, "application/xml", (
                    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
                    '<Message>no such key</Message></Error>').encode()
            return 200, "application/octet-stream", data
        if method == "GET" and q.get("list-type") == "2":
            enc = q.get("encoding-type") == "url"
            prefix = q.get("prefix", "")
            with self.lock:
                keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
                sizes = {k: len(self.objects[(bucket, k)]) for k in keys}

            def esc(s):
                s = quote(s, safe="/") if enc else s
                return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            contents = "".join(
                "<Contents><Key>%s</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                "<ETag>&quot;x&quot;</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass>"
                "</Contents>" % (esc(k), sizes[k]) for k in keys)
            x = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.'
                 'amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix>'
                 '<KeyCount>%d</KeyCount><MaxKeys>1000</MaxKeys>%s'
                 '<IsTruncated>false</IsTruncated>%s</ListBucketResult>'
                 % (esc(bucket), esc(prefix), len(keys),
                    "<EncodingType>url</EncodingType>" if enc else "", contents))
            return 200, "application/xml", x.encode("utf-8")
        return 400, "application/xml", b"<Error><Code>InvalidRequest</Code></Error>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    endpoint = None
    scheme = "http"

    def log_message(self, *a):
        pass

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.request.close()
                raise
        super().setup()
        self.connection.settimeout(30)
        self.rfile = _Tee(self.rfile)

    def _body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if te == "chunked":
            out = []
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(out), "chunked"
                out.append(self.rfile.read(size))
                self.rfile.readline(16)
        n = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(n) if n else b""), "length"

    def _handle(self):
        ep = self.endpoint
        body, framing = self._body()
        raw = self.rfile.take()
        headers = [(k, v) for k, v in self.headers.items()]
        try:
            verdict = ep.verify(self.scheme, self.command, self.path, headers, body)
        except Exception as e:  # a verifier bug must show, not hang the client
            verdict = (False, "InternalError", "verifier: %r" % e)
        ev = {"scheme": self.scheme, "method": self.command, "target": self.path,
              "headers": headers, "body": body, "framing": framing, "raw": raw,
              "ok": verdict[0], "code": None if verdict[0] else verdict[1],
              "why": None if verdict[0] else verdict[2], "t": time.monotonic()}
        with ep.lock:
            ep.log.append(ev)
        if verdict[0]:
            status, ctype, payload = ep.answer(self.command, self.path, headers, body,
                                               verdict[1])
        else:
            status, ctype = 403, "text/xml"
            if urlsplit(self.path).path == "/" and self.command == "POST":
                payload = ('<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>'
                           '<Message>%s</Message></Error><RequestId>r1</RequestId>'
                           '</ErrorResponse>' % (verdict[1], verdict[2])).encode()
            else:
                payload = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
                           '<Message>%s</Message></Error>' % (verdict[1], verdict[2])).encode()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if not verdict[0]:
            self.send_header("X-Verify-Error", verdict[2][:200])
        if status == 200 and self.command in ("GET", "PUT") and payload is not None:
            self.send_header("ETag", '"%s"' % hashlib.md5(
                body if self.command == "PUT" else payload).hexdigest())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle
