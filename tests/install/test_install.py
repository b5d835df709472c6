"""Install and packaging tests (issue 17).

A fresh release build in /tmp is installed with `meson install --destdir`
under a prefix of its own, and then:
  - exactly the expected files land, all under DESTDIR and the prefix;
  - libcordon.so.0 exports exactly the functions include/cordon.h declares;
  - tests/install/example.c is compiled against the INSTALLED header and
    library through pkg-config (PKG_CONFIG_SYSROOT_DIR pointing at DESTDIR),
    and runs `true`, `false` and more inside a sandbox; a second copy links
    the installed static archive;
  - the man pages render with `man --warnings` and no warning, and they, and
    the bash and zsh completions, name every option and subcommand of
    src/cli/main.c and every settings key of src/policy/settings.c;
  - the installed cordon loads the settings example of cordon-settings(5).
With CORDON_TEST_DEB=1 (slow, root, debhelper installed), the Debian packages
are built with dpkg-buildpackage from a copy of the tree, installed, used and
purged, leaving nothing behind.

./dev test runs this directory with the integration suites. It builds cordon
itself, so under the sanitizer pass (CORDON_BIN in a build with b_sanitize)
it has nothing to add and is skipped.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PREFIX = "/opt/cordon"
VERSION = re.search(r"version\s*:\s*'([^']+)'",
                    open(os.path.join(REPO, "meson.build")).read()).group(1)
SOVERSION = "0"


def _sanitized_pass():
    binpath = os.environ.get("CORDON_BIN")
    if not binpath:
        return False
    intro = os.path.join(os.path.dirname(binpath), "meson-info", "intro-buildoptions.json")
    try:
        with open(intro) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError):
        return False
    return opts.get("b_sanitize", "none") != "none"


pytestmark = pytest.mark.skipif(_sanitized_pass(),
                                reason="tests/install builds its own cordon; nothing to add "
                                       "under the sanitizer pass")


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    p = subprocess.run(cmd, **kw)
    return p


def check(cmd, **kw):
    p = run(cmd, **kw)
    assert p.returncode == 0, "%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(cmd), p.returncode, p.stdout, p.stderr)
    return p


class Install:
    def __init__(self, base):
        self.base = base
        self.build = os.path.join(base, "build")
        self.dest = os.path.join(base, "dest")
        self.root = self.dest + PREFIX
        self.bin = os.path.join(self.root, "bin", "cordon")
        self.lib = os.path.join(self.root, "lib")

    def path(self, rel):
        return os.path.join(self.root, rel)

    def pkg_env(self):
        env = dict(os.environ)
        env["PKG_CONFIG_PATH"] = os.path.join(self.lib, "pkgconfig")
        # The .pc file says prefix=/opt/cordon; the sysroot maps it into DESTDIR.
        env["PKG_CONFIG_SYSROOT_DIR"] = self.dest
        return env


@pytest.fixture(scope="module")
def inst():
    base = tempfile.mkdtemp(prefix="cordon-install-", dir="/tmp")
    os.chmod(base, 0o755)
    try:
        i = Install(base)
        # A release build, as a user or a distribution would make it. -Werror
        # stays with the developer builds (./dev): this test is about what
        # gets installed, and gcc's -O3 has false positives of its own.
        check(["meson", "setup", i.build, REPO, "-Dbuildtype=release", "-Dwerror=false",
               "--prefix=" + PREFIX, "--libdir=lib"])
        # Build only what is installed (not the tests and fuzz replays), then
        # install without rebuilding: a target missing from this list would
        # make the install fail.
        targets = json.loads(check(["meson", "introspect", i.build, "--targets"]).stdout)
        outputs = [os.path.relpath(f, i.build)
                   for t in targets if t["installed"] for f in t["filename"]]
        check(["ninja", "-C", i.build] + outputs)
        out = check(["meson", "install", "-C", i.build, "--no-rebuild", "--destdir", i.dest])
        i.install_log = out.stdout
        yield i
    finally:
        shutil.rmtree(base, ignore_errors=True)


def installed_files(root):
    found = set()
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            found.add(os.path.relpath(os.path.join(d, n), root))
    return found


EXPECTED = {
    "bin/cordon",
    "include/cordon.h",
    "lib/libcordon.a",
    "lib/libcordon.so",
    "lib/libcordon.so." + SOVERSION,
    "lib/libcordon.so." + VERSION,
    "lib/pkgconfig/cordon.pc",
    "share/man/man1/cordon.1",
    "share/man/man5/cordon-settings.5",
    "share/bash-completion/completions/cordon",
    "share/zsh/site-functions/_cordon",
}


def test_exactly_the_expected_files_land_under_destdir_and_prefix(inst):
    everything = installed_files(inst.dest)
    outside = [f for f in everything if not ("/" + f).startswith(PREFIX + "/")]
    assert not outside, "installed outside the prefix: %s" % outside
    assert installed_files(inst.root) == EXPECTED
    for line in inst.install_log.splitlines():
        if line.startswith("Installing") and " to " in line:
            assert line.rsplit(" to ", 1)[1].startswith(inst.dest), line
    assert os.access(inst.bin, os.X_OK)


def test_installed_cordon_runs(inst):
    p = check([inst.bin, "--version"])
    assert p.stdout.strip() == "cordon " + VERSION
    work = tempfile.mkdtemp(prefix="cordon-install-run-", dir="/tmp")
    try:
        p = run([inst.bin, "-s", "/dev/null", "--", "true"], cwd=work)
        assert p.returncode == 125 and "empty" in p.stderr, p.stderr
        settings = os.path.join(work, "s.json")
        with open(settings, "w") as f:
            f.write('{"filesystem": {"allowWrite": ["."]}}')
        p = run([inst.bin, "-s", settings, "-c", "echo hi > out; exit 3"], cwd=work)
        assert p.returncode == 3, p.stderr
        assert open(os.path.join(work, "out")).read() == "hi\n"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_cordon_does_not_need_the_shared_library(inst):
    ldd = check(["ldd", inst.bin]).stdout
    assert "libcordon" not in ldd


def header_functions():
    src = open(os.path.join(REPO, "include", "cordon.h")).read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return set(re.findall(r"\b(cordon_[a-z0-9_]+)\s*\(", src)) - {"cordon_log_fn"}


def test_shared_library_has_a_soname_and_exports_exactly_the_header(inst):
    so = os.path.join(inst.lib, "libcordon.so." + VERSION)
    dyn = check(["readelf", "-d", so]).stdout
    assert "Library soname: [libcordon.so.%s]" % SOVERSION in dyn
    assert os.readlink(os.path.join(inst.lib, "libcordon.so." + SOVERSION)) == \
        "libcordon.so." + VERSION
    assert os.path.realpath(os.path.join(inst.lib, "libcordon.so")) == os.path.realpath(so)
    nm = check(["nm", "-D", "--defined-only", so]).stdout
    exported = set()
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("T", "W", "D", "B", "R"):
            exported.add(parts[2].split("@")[0])
    declared = header_functions()
    assert declared, "no function found in cordon.h"
    symbols = re.findall(r"^ (cordon_[a-z0-9_]+)@", read("debian/libcordon0.symbols"), re.M)
    assert set(symbols) == declared, "debian/libcordon0.symbols and include/cordon.h disagree"
    assert exported == declared, (
        "libcordon.map and include/cordon.h disagree: missing from the library %s, "
        "exported but not declared %s" % (sorted(declared - exported),
                                          sorted(exported - declared)))


def test_header_and_pkgconfig(inst):
    assert open(inst.path("include/cordon.h")).read() == \
        open(os.path.join(REPO, "include", "cordon.h")).read()
    env = inst.pkg_env()
    assert check(["pkg-config", "--modversion", "cordon"], env=env).stdout.strip() == VERSION
    flags = check(["pkg-config", "--cflags", "--libs", "cordon"], env=env).stdout.split()
    assert "-I" + inst.path("include") in flags
    assert "-L" + inst.lib in flags and "-lcordon" in flags


def test_example_builds_and_runs_against_the_installed_library(inst):
    env = inst.pkg_env()
    flags = check(["pkg-config", "--cflags", "--libs", "cordon"], env=env).stdout.split()
    exe = os.path.join(inst.base, "example")
    check(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", exe,
           os.path.join(HERE, "example.c")] + flags)
    env["LD_LIBRARY_PATH"] = inst.lib
    ldd = check(["ldd", exe], env=env).stdout
    assert os.path.join(inst.lib, "libcordon.so." + SOVERSION) in ldd, ldd
    work = tempfile.mkdtemp(prefix="cordon-install-ex-", dir="/tmp")
    try:
        settings = os.path.join(work, "settings.json")
        with open(settings, "w") as f:
            f.write('{"network": {"allowedDomains": ["example.com"]}}')
        p = run([exe, settings], env=env, cwd=work)
        assert p.returncode == 0 and "example: ok" in p.stdout, p.stdout + p.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_example_links_the_installed_static_archive(inst):
    env = inst.pkg_env()
    # The archive's dependencies are the Requires.private of cordon.pc, linked
    # as shared libraries here (a fully static link needs every -dev package's
    # own private dependencies, libunistring-dev for libidn2 for one).
    requires = check(["pkg-config", "--print-requires-private", "cordon"], env=env).stdout
    names = [line.split()[0] for line in requires.splitlines() if line.strip()]
    assert "jansson" in names and "libseccomp" in names, requires
    libs = check(["pkg-config", "--libs"] + names).stdout.split()
    cflags = check(["pkg-config", "--cflags", "cordon"], env=env).stdout.split()
    exe = os.path.join(inst.base, "example-static")
    check(["cc", "-o", exe, os.path.join(HERE, "example.c")] + cflags +
          [os.path.join(inst.lib, "libcordon.a")] + libs)
    assert "libcordon" not in check(["ldd", exe]).stdout
    p = run([exe], cwd="/")
    assert p.returncode == 0 and "example: ok" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("page", ["man1/cordon.1", "man5/cordon-settings.5"])
def test_man_page_renders_without_warnings(inst, page):
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    env = dict(os.environ, MANWIDTH="80")
    p = run(["man", "--warnings", "-l", inst.path("share/man/" + page)], env=env)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    for section in ("NAME", "DESCRIPTION", "SEE ALSO"):
        assert "\n" + section in p.stdout
    width = max(len(line) for line in p.stdout.splitlines())
    assert width <= 80, "a line of %d columns" % width


# ---- the documentation says what the code does --------------------------------

def main_c():
    return open(os.path.join(REPO, "src", "cli", "main.c")).read()


def cli_options():
    """Long options of main.c's longopts (not the test-build-only ones) and
    the short options of its getopt string."""
    src = main_c()
    table = re.search(r"struct option longopts\[\] = \{(.*?)\n    \};", src, re.S).group(1)
    table = re.sub(r"#ifdef CORDON_TEST_SWITCHES.*?#endif", "", table, flags=re.S)
    longs = re.findall(r'\{ "([a-z-]+)",', table)
    shorts = re.search(r'getopt_long\(argc, argv, "\+?([^"]+)"', src).group(1)
    return ["--" + x for x in longs], ["-" + c for c in shorts.replace(":", "")]


def subcommands():
    return re.findall(r'strcmp\(argv\[1\], "([a-z-]+)"\)', main_c())


def read(rel):
    return open(os.path.join(REPO, rel)).read()


def test_cli_is_documented_and_completed():
    longs, shorts = cli_options()
    assert "--settings" in longs and "-s" in shorts
    man = read("docs/cordon.1.md")
    bash = read("completions/cordon.bash")
    zsh = read("completions/_cordon")
    for opt in longs + shorts:
        assert "`%s`" % opt in man, "cordon.1.md does not document " + opt
        assert re.search(r"(^|[\s|\"'])%s([\s|\"')]|$)" % re.escape(opt), bash, re.M), \
            "cordon.bash does not complete " + opt
        assert re.search(r"[{'(,)*]%s[+=,}\[)]" % re.escape(opt), zsh), \
            "_cordon does not complete " + opt
    subs = subcommands()
    assert "connect" in subs
    for sub in subs:
        assert "**cordon %s**" % sub in man and "`%s`" % sub in man, \
            "cordon.1.md does not document the subcommand " + sub
        assert re.search(r"\b%s\b" % sub, bash.split("_cordon_subcommands=")[1].split("\n")[0]), \
            "cordon.bash does not offer the subcommand " + sub
        assert "'%s:" % sub in zsh, "_cordon does not offer the subcommand " + sub


def settings_keys():
    src = read("src/policy/settings.c")
    keys = set(re.findall(r'\{ "([A-Za-z]+)", KEY_', src))
    # Request rule keys and limit names are parsed without a key table.
    keys |= set(re.findall(r'strcmp\(k, "([A-Za-z]+)"\) == 0', src))
    names = re.search(r"limit_names\[\d*\] = \{([^}]*)\}", src)
    keys |= set(re.findall(r'"([a-z]+)"', names.group(1)))
    return keys


def test_every_settings_key_is_documented():
    page = read("docs/cordon-settings.5.md")
    keys = settings_keys()
    assert {"allowedDomains", "denyRead", "tlsTerminate", "maxSessionBytes", "nproc"} <= keys
    missing = sorted(k for k in keys if not re.search(r"`[^`]*\b%s\b[^`]*`" % k, page))
    assert not missing, "cordon-settings.5.md does not mention: %s" % missing


def section(page, title):
    return page.split("## " + title + "\n", 1)[1].split("\n## ", 1)[0]


def test_ignored_and_refused_keys_are_listed_as_such():
    src = read("src/policy/settings.c")
    page = read("docs/cordon-settings.5.md")
    for kind, title in (("KEY_IGNORED", "KEYS IGNORED"), ("KEY_UNSUPPORTED", "KEYS REFUSED")):
        keys = re.findall(r'\{ "([A-Za-z]+)", %s\b' % kind, src)
        assert keys, kind
        text = section(page, title)
        missing = [k for k in keys if not re.search(r"`[^`]*\b%s`" % k, text)]
        assert not missing, "%s of cordon-settings.5.md does not list %s" % (title, missing)


def test_settings_page_example_loads(inst):
    page = read("docs/cordon-settings.5.md")
    example = page.split("## EXAMPLE", 1)[1].split("```")[1]
    work = tempfile.mkdtemp(prefix="cordon-install-ex-", dir="/tmp")
    try:
        path = os.path.join(work, "settings.json")
        with open(path, "w") as f:
            f.write(example)
        env = dict(os.environ, HOME=work)
        env.pop("ANTHROPIC_API_KEY", None)
        p = run([inst.bin, "-s", path, "--print-policy"], env=env, cwd=work)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["network"]["allowedDomains"] == \
            ["api.anthropic.com", "github.com"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_md2man_refuses_unsupported_markdown(tmp_path):
    src = tmp_path / "x.1.md"
    src.write_text("# x(1) -- y\n\n## A\n\n| a | b |\n|---|---|\n")
    p = run(["python3", os.path.join(REPO, "scripts", "md2man.py"), str(src),
             str(tmp_path / "x.1")])
    assert p.returncode == 1 and "line" in p.stderr


BASH_HARNESS = r'''
source "$1"
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _cordon
      printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '; echo; }
cd "$2"
t cordon --sett
t cordon -
t cordon con
t cordon --settings sett
t cordon -ds sett
t cordon --settings = sett
t cordon --debug doc
t cordon doctor --j
t cordon --audit-fd ""
'''


def test_bash_completion(inst, tmp_path):
    (tmp_path / "settings.json").write_text("{}")
    p = check(["bash", "--norc", "-c", BASH_HARNESS, "bash",
               inst.path("share/bash-completion/completions/cordon"), str(tmp_path)])
    lines = p.stdout.split("\n")
    assert lines[0].split() == ["--settings"]
    longs, shorts = cli_options()
    assert set(longs + shorts) <= set(lines[1].split())
    assert "connect" in lines[2].split()
    for i in (3, 4, 5):
        assert lines[i].split() == ["settings.json"], lines[i]
    assert "doctor" not in lines[6].split()  # a subcommand only as the first word
    assert lines[7].split() == ["--json"]
    assert lines[8].split() == []


def test_zsh_completion_parses(inst):
    if not shutil.which("zsh"):
        pytest.skip("zsh is not installed")
    check(["zsh", "-n", inst.path("share/zsh/site-functions/_cordon")])


# ---- the Debian packages (slow) -------------------------------------------------

PACKAGES = ["cordon", "libcordon0", "libcordon-dev"]


def dpkg_installed(pkg):
    p = run(["dpkg-query", "-W", "-f", "${Status}", pkg])
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


def source_files():
    if os.path.isdir(os.path.join(REPO, ".git")):
        out = check(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                     "--exclude-standard"]).stdout
        return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(REPO, f))]
    files = []
    for d, dirs, names in os.walk(REPO):
        dirs[:] = [x for x in dirs if not x.startswith(("build", ".git", "obj-"))]
        files += [os.path.relpath(os.path.join(d, n), REPO) for n in names]
    return files


# Slow (a full package build, a few minutes): only on request. (A mark of its
# own would need a conftest.py here, whose module name would shadow the one
# tests/integration imports from.)
slow = pytest.mark.skipif(os.environ.get("CORDON_TEST_DEB") != "1",
                          reason="slow: builds and installs the .deb; set CORDON_TEST_DEB=1")


@slow
def test_debian_packages_build_install_and_purge():
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root")
    for tool in ("dpkg-buildpackage", "dh"):
        if not shutil.which(tool):
            pytest.skip("%s is missing: apt-get install dpkg-dev debhelper" % tool)
    for pkg in PACKAGES:
        if dpkg_installed(pkg):
            pytest.skip("%s is already installed; not touching it" % pkg)
    if os.path.exists("/usr/bin/cordon"):
        pytest.skip("/usr/bin/cordon exists; not touching it")

    base = tempfile.mkdtemp(prefix="cordon-deb-", dir="/tmp")
    src = os.path.join(base, "cordon-" + VERSION)
    try:
        for rel in source_files():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, rel), os.path.join(src, rel))
        check(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=1800)
        arch = check(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.strip()
        multiarch = check(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()
        debs = {p: os.path.join(base, "%s_%s_%s.deb" % (p, VERSION, arch)) for p in PACKAGES}
        contents = {}
        for pkg, deb in debs.items():
            assert os.path.isfile(deb), "no %s among %s" % (deb, os.listdir(base))
            listing = check(["dpkg-deb", "-c", deb]).stdout
            contents[pkg] = {line.split()[5].lstrip(".") for line in listing.splitlines()}
        assert {"/usr/bin/cordon", "/usr/share/man/man1/cordon.1.gz",
                "/usr/share/man/man5/cordon-settings.5.gz",
                "/usr/share/bash-completion/completions/cordon",
                "/usr/share/zsh/site-functions/_cordon"} <= contents["cordon"]
        assert "/usr/lib/%s/libcordon.so.%s" % (multiarch, VERSION) in contents["libcordon0"]
        assert {"/usr/include/cordon.h", "/usr/lib/%s/pkgconfig/cordon.pc" % multiarch,
                "/usr/lib/%s/libcordon.a" % multiarch} <= contents["libcordon-dev"]

        try:
            check(["dpkg", "-i"] + [debs[p] for p in PACKAGES])
            p = check(["/usr/bin/cordon", "--version"])
            assert p.stdout.strip() == "cordon " + VERSION
            assert check(["man", "-w", "cordon-settings"]).stdout.strip().endswith(
                "cordon-settings.5.gz")
            # The example against the packaged library, found the usual way.
            flags = check(["pkg-config", "--cflags", "--libs", "cordon"]).stdout.split()
            exe = os.path.join(base, "example")
            check(["cc", "-o", exe, os.path.join(HERE, "example.c")] + flags)
            p = run([exe], cwd="/")
            assert p.returncode == 0 and "example: ok" in p.stdout, p.stdout + p.stderr
        finally:
            run(["dpkg", "--purge"] + PACKAGES)
        for pkg in PACKAGES:
            assert not dpkg_installed(pkg), pkg + " is still installed"
        for f in set().union(*contents.values()):
            if not f.endswith("/") and f.startswith("/usr/"):
                assert not os.path.lexists(f), f + " was left behind"
    finally:
        shutil.rmtree(base, ignore_errors=True)
