"""The client side of the SigV4 tests, run inside cordon as
`python3 -c SOURCE JSON`. It knows only the sandbox's environment (the
masked, fake AWS values). Prints one JSON list, one result per operation.

Credentials ("creds"): {"ak": VAR, "sk": VAR, "tok": VAR or null} names the
variables to read (default AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN when set), or {"literal": [ak, sk]} a key of the client's
own.

Operations:
  env     {"names"}: their values; "environ": the whole environment.
  boto    {"service", "endpoint", "call", "params", "creds",
          "read_timeout"}: a botocore client call (path-style S3, one
          attempt, the proxy from the environment). Answer: "ok" (a summary
          of the result), "error" (code, status, X-Proxy-Error, message) or
          "timeout" (no answer within read_timeout).
  raw     {"method", "url", "headers": [[k, v]], "body", "pad", "sign",
          "service", "region", "creds", "no_token", "tamper", "auth",
          "send", "split", "chunked", "head_only", "connect"}: one request
          signed with botocore's signer (SigV4Auth for "sign": "v4",
          S3SigV4Auth for "s3", none when absent; "no_token": sign without
          the session token) and sent through cordon's proxy on a socket of
          its own (absolute-form for http; for https CONNECT, to "connect"
          when given, then TLS with AWS_CA_BUNDLE). ${NAME} in the url,
          header values, body and "auth" is the sandbox's variable. "pad"
          appends that many "x" to the body. "tamper" changes the request
          after signing: {"header": [k, v]}, {"body": text} or
          {"auth_replace": [old, new]}; "auth" sets Authorization outright.
          "split": the body in several sends (sizes, 50 ms apart);
          "chunked": chunked framing (chunk sizes, one send each);
          "head_only": read only the answer's status and head;
          "expect": send "Expect: 100-continue" (unsigned, as botocore
          does) and wait up to 5 s for "100 Continue" before the body.
          Answer: "request" (method, url, target, headers, body as sent:
          for the host to replay) and, when sent, "status", "headers",
          "body", and with "expect" "continued" (a 100 came in time).
  presign {"endpoint", "bucket", "key", "creds", "send", "version"}: a
          presigned GetObject URL made with botocore (signature_version
          "s3v4" unless "version" says otherwise), then fetched through the
          proxy.
"""
import json
import os
import socket
import ssl
import string
import sys
import time
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TIMEOUT = 20
REGION = "us-east-1"


def expand(t):
    return string.Template(t).substitute(os.environ)


def creds_of(spec):
    spec = spec or {}
    if "literal" in spec:
        return Credentials(*spec["literal"])
    ak = os.environ[spec.get("ak", "AWS_ACCESS_KEY_ID")]
    sk = os.environ[spec.get("sk", "AWS_SECRET_ACCESS_KEY")]
    tv = spec.get("tok", "AWS_SESSION_TOKEN")
    return Credentials(ak, sk, os.environ.get(tv) if tv else None)


_clients = {}


def client(service, endpoint, creds, read_timeout=TIMEOUT, **more):
    key = json.dumps([service, endpoint, creds, read_timeout, more], sort_keys=True)
    if key not in _clients:
        _clients[key] = make_client(service, endpoint, creds, read_timeout, **more)
    return _clients[key]


def make_client(service, endpoint, creds, read_timeout, **more):
    import botocore.session  # only when needed: the import is slow
    from botocore.config import Config
    c = creds_of(creds)
    s = botocore.session.get_session()
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=TIMEOUT,
                 read_timeout=read_timeout, s3={"addressing_style": "path"}, **more)
    return s.create_client(service, region_name=REGION, endpoint_url=endpoint,
                           aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
                           aws_session_token=c.token, config=cfg)


def summary(call, r):
    if call == "get_object":
        return {"body": r["Body"].read().decode("utf-8", "replace")}
    if call == "list_objects_v2":
        return {"keys": [o["Key"] for o in r.get("Contents", [])]}
    if call == "get_caller_identity":
        return {"arn": r["Arn"], "account": r["Account"]}
    if call == "put_object":
        return {"etag": r.get("ETag")}
    return {"status": r["ResponseMetadata"]["HTTPStatusCode"]}


def op_boto(o):
    from botocore.exceptions import ClientError, ReadTimeoutError
    c = client(o["service"], o["endpoint"], o.get("creds"), o.get("read_timeout", TIMEOUT))
    params = dict(o.get("params", {}))
    if "Body" in params:
        params["Body"] = params["Body"].encode()
    try:
        r = getattr(c, o["call"])(**params)
        return {"ok": summary(o["call"], r)}
    except ReadTimeoutError as e:
        return {"timeout": str(e)[:300]}
    except ClientError as e:
        md = e.response.get("ResponseMetadata", {})
        hd = md.get("HTTPHeaders", {})
        return {"error": {"code": e.response.get("Error", {}).get("Code"),
                          "status": md.get("HTTPStatusCode"),
                          "proxy_error": hd.get("x-proxy-error"),
                          "verify_error": hd.get("x-verify-error"),
                          "message": str(e)[:500]}}


def proxy_addr():
    u = urlsplit(os.environ.get("HTTP_PROXY") or os.environ["http_proxy"])
    return u.hostname, u.port


def read_response(f, head_only=False):
    line = f.readline()
    if not line:
        raise EOFError("no answer")
    status = int(line.split()[1])
    headers = []
    while True:
        ln = f.readline()
        if ln in (b"\r\n", b"\n", b""):
            break
        k, _, v = ln.decode("latin-1").partition(":")
        headers.append([k, v.strip()])
    hd = {k.lower(): v for k, v in headers}
    if head_only:
        return status, headers, b""
    if hd.get("transfer-encoding", "").lower() == "chunked":
        out = []
        while True:
            n = int(f.readline().split(b";")[0], 16)
            if n == 0:
                f.readline()
                break
            out.append(f.read(n))
            f.readline()
        body = b"".join(out)
    else:
        body = f.read(int(hd.get("content-length", "0")))
    return status, headers, body


def send(url, method, target_abs, headers, body, split=None, chunked=None, head_only=False,
         connect=None, expect=False):
    u = urlsplit(url)
    s = socket.create_connection(proxy_addr(), timeout=TIMEOUT)
    authority = connect or "%s:%d" % (u.hostname, u.port or (443 if u.scheme == "https" else 80))
    if u.scheme == "https":
        s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority.encode(),
                                                                authority.encode()))
        f = s.makefile("rb")
        st, hs, _ = read_response_connect(f)
        if st != 200:
            return {"status": st, "headers": hs, "body": "", "connect": True}
        ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
        s = ctx.wrap_socket(s, server_hostname=authority.rsplit(":", 1)[0])
        line_target = target_abs
    else:
        line_target = url.split("://", 1)[0] + "://" + authority + target_abs
    head = "%s %s HTTP/1.1\r\n" % (method, line_target)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if expect:
        head += "Expect: 100-continue\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
        pieces, i = [], 0
        for n in list(chunked) + [len(body)]:
            if body[i:i + n]:
                pieces.append(b"%x\r\n%s\r\n" % (len(body[i:i + n]), body[i:i + n]))
            i += n
        pieces.append(b"0\r\n\r\n")
        parts = [head.encode("utf-8") + b"\r\n"] + pieces
    else:
        head += "Content-Length: %d\r\n" % len(body)
        parts = [head.encode("utf-8") + b"\r\n"]
        i = 0
        for n in split or []:
            parts.append(body[i:i + n])
            i += n
        parts.append(body[i:])
    f = s.makefile("rb")
    continued = None
    for k, p in enumerate(parts):
        if p:
            s.sendall(p)
        if k == 0 and expect:
            s.settimeout(5)
            try:
                st, _, _ = read_response(f, head_only=True)
                continued = st == 100
            except (socket.timeout, OSError):
                continued = False
                f = s.makefile("rb")  # a timed-out reader reads no more
            s.settimeout(TIMEOUT)
        if k + 1 < len(parts) and (split or chunked):
            time.sleep(0.05)
    st, hs, b = read_response(f, head_only)
    while not head_only and st == 100:
        st, hs, b = read_response(f)
    s.close()
    out = {"status": st, "headers": hs, "body": b.decode("utf-8", "replace")}
    if expect:
        out["continued"] = continued
    return out


def read_response_connect(f):
    line = f.readline()
    status = int(line.split()[1])
    headers = []
    while True:
        ln = f.readline()
        if ln in (b"\r\n", b"\n", b""):
            break
        k, _, v = ln.decode("latin-1").partition(":")
        headers.append([k, v.strip()])
    return status, headers, b""


def op_raw(o):
    url = expand(o["url"])
    u = urlsplit(url)
    method = o.get("method", "GET")
    body = expand(o.get("body", "")).encode("utf-8") + b"x" * o.get("pad", 0)
    req = AWSRequest(method=method, url=url, data=body)
    for k, v in o.get("headers", []):
        req.headers[k] = expand(v)
    if o.get("sign"):
        c = creds_of(o.get("creds"))
        cls = S3SigV4Auth if o["sign"] == "s3" else SigV4Auth
        signer = cls(c, o.get("service", "s3"), o.get("region", REGION))
        if o.get("no_token"):
            c.token = None
        signer.add_auth(req)
    if "auth" in o:
        if "Authorization" in req.headers:
            del req.headers["Authorization"]
        req.headers["Authorization"] = expand(o["auth"])
    t = o.get("tamper") or {}
    if "header" in t:
        k, v = t["header"]
        del req.headers[k]
        req.headers[k] = expand(v)
    if "body" in t:
        body = expand(t["body"]).encode("utf-8")
    if "auth_replace" in t:
        a, b = t["auth_replace"]
        v = req.headers["Authorization"]
        assert a in v, (a, v)
        del req.headers["Authorization"]
        req.headers["Authorization"] = v.replace(a, b)
    host = u.netloc
    headers = [["Host", host]] + [[k, v] for k, v in req.headers.items()
                                  if k.lower() != "host"]
    target = u.path or "/"
    if u.query:
        target += "?" + u.query
    out = {"request": {"method": method, "url": url, "target": target, "headers": headers,
                       "body": body.decode("utf-8")}}
    if o.get("send", True):
        out.update(send(url, method, target, headers, body, o.get("split"), o.get("chunked"),
                        o.get("head_only", False), o.get("connect"), o.get("expect", False)))
    return out


def op_presign(o):
    c = client("s3", o["endpoint"], o.get("creds"), signature_version=o.get("version", "s3v4"))
    url = c.generate_presigned_url("get_object", Params={"Bucket": o["bucket"],
                                                         "Key": o["key"]}, ExpiresIn=600)
    u = urlsplit(url)
    target = u.path + "?" + u.query
    out = {"url": url, "target": target}
    if o.get("send", True):
        out.update(send(url, "GET", target, [["Host", u.netloc]], b""))
    return out


def main():
    ops = json.loads(sys.argv[1])
    out = []
    for o in ops:
        try:
            if o["op"] == "env":
                out.append({"values": {n: os.environ.get(n) for n in o.get("names", [])},
                            "environ": dict(os.environ)})
            elif o["op"] == "boto":
                out.append(op_boto(o))
            elif o["op"] == "raw":
                out.append(op_raw(o))
            elif o["op"] == "presign":
                out.append(op_presign(o))
            else:
                out.append({"exception": "unknown op"})
        except Exception as e:  # report, do not hide the other results
            import traceback
            out.append({"exception": "%s: %s" % (type(e).__name__, e),
                        "trace": traceback.format_exc()[-2000:]})
    print(json.dumps(out))


main()
