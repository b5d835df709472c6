"""Fixtures for bench/run: a directory of 300 git repositories, a small C
project, an empty working directory, and the certificates of the loopback
HTTPS server. They live under bench/out/fx (never under /tmp: cordon and
bwrap give the sandbox a private /tmp) and are made once; a stamp file
records the parameters they were made with."""

import os
import shutil
import subprocess

REPOS = 300
C_FILES = 40
C_HELPERS = 8


def _stamp_ok(d, stamp):
    try:
        with open(os.path.join(d, ".bench-stamp")) as f:
            return f.read() == stamp
    except OSError:
        return False


def _write_stamp(d, stamp):
    with open(os.path.join(d, ".bench-stamp"), "w") as f:
        f.write(stamp)


def empty_dir(fx):
    d = os.path.join(fx, "empty")
    os.makedirs(d, exist_ok=True)
    return d


def repos(fx, n=REPOS):
    """n sibling git repositories (git init, one file, one commit), each with
    the .git/hooks, .git/config and HEAD that sandboxes protect."""
    d = os.path.join(fx, f"repos{n}")
    stamp = f"repos {n} v1"
    if _stamp_ok(d, stamp):
        return d
    shutil.rmtree(d, ignore_errors=True)
    tmpl = os.path.join(fx, "repo-template")
    shutil.rmtree(tmpl, ignore_errors=True)
    os.makedirs(tmpl)
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    subprocess.run(["git", "init", "-q", tmpl], check=True, env=env)
    with open(os.path.join(tmpl, "README"), "w") as f:
        f.write("a repository\n")
    subprocess.run(["git", "-C", tmpl, "add", "README"], check=True, env=env)
    subprocess.run(["git", "-C", tmpl, "commit", "-qm", "init"], check=True, env=env)
    os.makedirs(d)
    for i in range(n):
        subprocess.run(["cp", "-a", tmpl, os.path.join(d, f"repo{i:03d}")], check=True)
    shutil.rmtree(tmpl)
    _write_stamp(d, stamp)
    return d


def c_project(fx, files=C_FILES, helpers=C_HELPERS):
    """A small C project: `files` translation units plus main.c and a
    Makefile; `make -B -j2` rebuilds it from scratch."""
    d = os.path.join(fx, f"cproj{files}")
    stamp = f"cproj {files} {helpers} v1"
    if _stamp_ok(d, stamp):
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i in range(files):
        with open(os.path.join(d, f"m{i:02d}.c"), "w") as f:
            f.write('#include <stdio.h>\n#include <string.h>\n#include "common.h"\n')
            for j in range(helpers):
                f.write(f"""
static int helper_{j}(const int *v, int n)
{{
    int acc = {j};
    for (int k = 0; k < n; k++) {{
        acc = acc * 31 + v[k] * {j + 3};
        if (acc & 1)
            acc ^= (acc >> 3);
        else
            acc += k;
    }}
    return acc;
}}
""")
            f.write(f"\nint mod{i}(int x)\n{{\n    int v[16];\n"
                    "    for (int k = 0; k < 16; k++)\n        v[k] = x + k;\n    int s = 0;\n")
            for j in range(helpers):
                f.write(f"    s += helper_{j}(v, 16);\n")
            f.write('    char buf[32];\n    snprintf(buf, sizeof buf, "%d", s);\n'
                    "    return (int)strlen(buf) + s;\n}\n")
    with open(os.path.join(d, "common.h"), "w") as f:
        for i in range(files):
            f.write(f"int mod{i}(int x);\n")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write('#include <stdio.h>\n#include "common.h"\n\nint main(void)\n{\n    long s = 0;\n')
        for i in range(files):
            f.write(f"    s += mod{i}({i});\n")
        f.write('    printf("%ld\\n", s);\n    return 0;\n}\n')
    objs = " ".join([f"m{i:02d}.o" for i in range(files)] + ["main.o"])
    with open(os.path.join(d, "Makefile"), "w") as f:
        f.write(f"CC = cc\nCFLAGS = -O2 -Wall\nOBJS = {objs}\n\nall: app\n\n"
                "app: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n"
                "%.o: %.c common.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\n"
                "clean:\n\trm -f $(OBJS) app\n")
    _write_stamp(d, stamp)
    return d


TLS_NAME = "bench.test"
TLS_CA_CN = "cordon bench CA"


def tls(fx):
    """A CA and a server certificate it signed (ECDSA P-256, as cordon's own
    leaves) for the loopback HTTPS server: subjectAltName bench.test and
    127.0.0.1. Returns {"ca", "cert", "key"} paths (the CA's key is kept only
    for remaking the set)."""
    d = os.path.join(fx, "tls")
    stamp = f"tls {TLS_NAME} v1"
    paths = {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "server.pem"),
             "key": os.path.join(d, "server.key")}
    if _stamp_ok(d, stamp):
        return paths
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

    def ossl(*args):
        r = subprocess.run(["openssl", *args], cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)}: {r.stdout.strip()}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
         "-subj", f"/CN={TLS_CA_CN}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={TLS_NAME}")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{TLS_NAME},IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "3650", "-extfile", "server.ext")
    _write_stamp(d, stamp)
    return paths
