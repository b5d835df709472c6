"""The command line and the settings file (issue: foundation): --print-policy,
the quick flags, where settings come from, and how bad settings are refused
(exit 125, one line naming the file, the JSON pointer and the problem, and
the command never runs). Every test runs as root and as uid 65534.
"""
import json
import os

import pytest

from helpers import own_tree, probe, shx

# Had the command run, it would have printed this on stdout and created the
# marker in the workspace.
RAN = "COMMAND-RAN"


def run_marked(sb, *opts, **kw):
    return sb.run(*opts, "--", "/bin/sh", "-c", 'echo %s; : > ran-marker' % RAN, **kw)


def assert_refused(sb, p, *needles):
    assert p.returncode == 125, p.stderr
    assert p.stderr.endswith("\n") and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("cordon: ")
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
    assert RAN not in p.stdout
    assert not os.path.exists(sb.ws + "/ran-marker")


# ---------------------------------------------------------------------------
# --print-policy and the quick flags

def print_policy(sb, *opts, **kw):
    p = sb.run("--print-policy", *opts, **kw)
    assert p.returncode == 0, p.stderr
    return p


def test_print_policy_is_srt_shaped_expanded_and_includes_flags(sb):
    s = sb.settings({"filesystem": {
        "denyRead": ["~/secret", "rel/../other"],
        "allowRead": ["/etc/**"],
        "allowWrite": ["."],
        "denyWrite": [{"path": "./we*ird", "literal": True}],
    }, "network": {"allowedDomains": [], "deniedDomains": ["evil.example"]}})
    p = print_policy(sb, "-s", s, "--allow-write", "~/aw", "--deny-write", "dw",
                     "--allow-read", "/ar", "--deny-read", "../dr", "--", "touch", "marker")
    pol = json.loads(p.stdout)
    h, ws = sb.home, sb.ws
    fs = pol["filesystem"]
    assert fs["denyRead"] == [h + "/secret", ws + "/other", h + "/dr"]
    assert fs["allowRead"] == ["/etc", "/ar"]
    assert fs["allowWrite"] == [ws, h + "/aw"]
    assert fs["denyWrite"] == [{"path": ws + "/we*ird", "literal": True}, ws + "/dw"]
    assert fs["disabled"] is False
    assert pol["network"]["allowedDomains"] == []
    assert pol["network"]["deniedDomains"] == ["evil.example"]
    # --print-policy exits before running anything
    assert not os.path.exists(ws + "/marker")


def test_print_policy_round_trips(sb):
    s = sb.settings({"filesystem": {
        "denyRead": ["~/.ssh", {"path": "x[1]", "literal": True}],
        "allowWrite": [".", "/var/tmp/**"],
        "denyWrite": ["~/.bashrc"],
    }, "network": {"deniedDomains": ["a.example"], "deniedDomainReasons": {"a.example": "no"}},
        "allowNestedUserNamespaces": True, "mandatoryDenySearchDepth": 5,
        "git": {"safeDirectories": ["~/repo"]}, "ignoreViolations": {"*": ["/usr/bin"]}})
    first = print_policy(sb, "-s", s, "--deny-read", "dr").stdout
    again = sb.settings(first, name="printed.json")
    # from another directory: the printed paths are absolute
    second = print_policy(sb, "-s", again, cwd=sb.outside).stdout
    assert second == first
    assert json.loads(first)["mandatoryDenySearchDepth"] == 5


def test_quick_flags_are_enforced(sb):
    sb.write("outside/secret.txt", "SECRET\n")
    sb.write("outside/w/keep.txt", "keep\n")
    sb.write("outside/w/locked/keep.txt", "locked\n")
    own_tree(sb, sb.outside)
    o = sb.outside
    s = sb.settings({"filesystem": {}})
    r = probe(sb, [["read", o + "/secret.txt"], ["write", o + "/w/new", "x"],
                   ["write", o + "/w/locked/new", "x"], ["read", o + "/w/keep.txt"]],
              "-s", s, "--allow-read", sb.base, "--deny-read", o + "/secret.txt",
              "--allow-write", o + "/w", "--deny-write", o + "/w/locked")
    assert r == [("EACCES", None), ("OK", None), ("EROFS", None), ("OK", "keep\n")]


# ---------------------------------------------------------------------------
# refused settings

BAD = [
    ('{"filesystem": {"allowWrite": ["a", 3]}}', "/filesystem/allowWrite/1", "got an integer"),
    ('{"filesystem": {"alowWrite": []}}', "/filesystem/alowWrite", "unknown key"),
    ('{"filesytem": {}}', "/filesytem", "unknown key"),
    ('{"network": {"allowedDomain": []}}', "/network/allowedDomain", "unknown key"),
    ('{"a/b~c": 1}', "/a~1b~0c", "unknown key"),  # RFC 6901 escaping
    ('{"filesystem": {"denyRead": "/etc"}}', "/filesystem/denyRead", "expected an array"),
    ('{"filesystem": {"denyRead": [{"path": "/x", "litreal": true}]}}',
     "/filesystem/denyRead/0/litreal", "unknown key"),
    ('{"filesystem": {"denyRead": [{"literal": true}]}}', "/filesystem/denyRead/0", "path"),
    ('{"filesystem": {"denyRead": ["/**/*.pem"]}}', "/filesystem/denyRead/0",
     "literal directory"),
    ('{"filesystem": {"denyRead": ["~root/.ssh"]}}', "/filesystem/denyRead/0", "~user"),
    ('{"filesystem": {"denyRead": [""]}}', "/filesystem/denyRead/0", "empty path"),
    ('{"filesystem": {"denyRead": ["/x\\u0000y"]}}', ":1:40: invalid JSON", "\\u0000"),
    ('{"filesystem": {"disabled": "yes"}}', "/filesystem/disabled", "expected a boolean"),
    ('{"mandatoryDenySearchDepth": 0}', "/mandatoryDenySearchDepth", "1 to 10"),
    ('{"mandatoryDenySearchDepth": 3.5}', "/mandatoryDenySearchDepth",
     "expected an integer from 1 to 10, got 3.5"),
    ('{"mandatoryDenySearchDepth": "3"}', "/mandatoryDenySearchDepth",
     "expected an integer from 1 to 10, got a string"),
    ('{"network": {"httpProxyPort": "8080"}}', "/network/httpProxyPort",
     "expected a port from 1 to 65535, got a string"),
    ('{"network": {"defaultPorts": [443, "80"]}}', "/network/defaultPorts/1",
     "expected a port from 1 to 65535, got a string"),
    ('{"network": {"socksProxyPort": 1e6}}', "/network/socksProxyPort",
     "expected a port from 1 to 65535, got 1000000"),
    ('["filesystem"]', "must be a JSON object", "got an array"),
    # srt keys that would change Linux policy and are not implemented
    ('{"credentials": {"GITHUB_TOKEN": {"hosts": ["api.github.com"]}}}',
     "/credentials/GITHUB_TOKEN", "unknown key"),
    ('{"credentials": {"awsPairs": [{"accessKeyIdVar": "A"}]}}', "/credentials/awsPairs/0",
     "needs accessKeyIdVar and secretAccessKeyVar"),
    ('{"network": {"tlsTerminate": {"caCertPath": "/ca.pem"}}}', "/network/tlsTerminate",
     "go together"),
    ('{"network": {"allowedDomains": ["example.com", "https://evil.example/"]}}',
     "/network/allowedDomains/1", "not a URL"),
    ('{"network": {"deniedDomains": ["*.com"]}}', "/network/deniedDomains/0", "too broad"),
    ('{"enableWeakerNestedSandbox": true}', "/enableWeakerNestedSandbox", "not supported"),
    ('{"network": {"allowUnixSockets": ["/run/*.sock"]}}', "/network/allowUnixSockets/0",
     "patterns are not supported"),
]


@pytest.mark.parametrize("text,pointer,problem", BAD,
                         ids=["%02d%s" % (i, b[1]) for i, b in enumerate(BAD)])
def test_bad_settings_are_refused(sb, text, pointer, problem):
    s = sb.write("bad.json", text)
    p = run_marked(sb, "-s", s)
    assert_refused(sb, p, "cordon: %s" % s, pointer, problem)


def test_integral_reals_are_integers_as_in_srt(sb):
    """srt (JavaScript) has one number type: 3.0 and 1e1 are integers."""
    s = sb.settings({"mandatoryDenySearchDepth": 3.0,
                     "network": {"allowedDomains": [], "defaultPorts": [443.0, 8e1],
                                 "httpProxyPort": 8080.0},
                     "limits": {"nproc": 1e3}})
    p = sb.run("-s", s, "--print-policy")
    assert p.returncode == 0, p.stderr
    pol = json.loads(p.stdout)
    assert pol["mandatoryDenySearchDepth"] == 3
    assert pol["network"]["defaultPorts"] == [443, 80]
    assert pol["network"]["httpProxyPort"] == 8080
    assert pol["limits"]["nproc"] == 1000
    s = sb.settings({"mandatoryDenySearchDepth": 1e1}, name="ten.json")
    p = sb.run("-s", s, "--print-policy")
    assert p.returncode == 0 and json.loads(p.stdout)["mandatoryDenySearchDepth"] == 10


def test_duplicate_keys_are_refused(sb):
    """A second "denyRead" must not silently replace the first."""
    s = sb.write("dup.json", '{"filesystem": {\n  "denyRead": ["/etc"],\n'
                                  '  "denyRead": []\n}}\n')
    p = run_marked(sb, "-s", s)
    assert_refused(sb, p, "cordon: %s:3:" % s, "duplicate")


def test_invalid_json_names_file_and_line(sb):
    s = sb.write("broken.json", '{\n  "filesystem": {\n    "denyRead": ["/a",,]\n  }\n}\n')
    p = run_marked(sb, "-s", s)
    assert_refused(sb, p, "cordon: %s:3:" % s, "invalid JSON")


@pytest.mark.parametrize("text", ["", " \n\t\n"], ids=["empty", "blank"])
def test_empty_settings_file_is_refused(sb, text):
    s = sb.write("empty.json", text)
    p = run_marked(sb, "-s", s)
    assert_refused(sb, p, "cordon: %s: " % s, "empty")


def test_missing_and_directory_settings_are_refused(sb):
    missing = sb.path("no-such-settings.json")
    assert_refused(sb, run_marked(sb, "-s", missing), missing, "No such file or directory")
    assert_refused(sb, run_marked(sb, "-s", sb.outside), sb.outside, "is a directory")


def test_unreadable_settings_are_refused(sb):
    if sb.uid == 0:
        pytest.skip("uid 0 reads a mode 000 file; the unprivileged run covers this")
    s = sb.settings({"filesystem": {}})
    os.chmod(s, 0o000)
    assert_refused(sb, run_marked(sb, "-s", s), s, "Permission denied")
    # at a default location, too: an unreadable file is never skipped
    xdg = sb.mkdir("home/.config/cordon")
    x = sb.write("home/.config/cordon/settings.json", "{}", mode=0o000)
    assert_refused(sb, run_marked(sb), x, "Permission denied")
    # nor is one that cannot even be looked at
    os.chmod(x, 0o644)
    os.chmod(xdg, 0o000)
    try:
        assert_refused(sb, run_marked(sb), x, "Permission denied")
    finally:
        os.chmod(xdg, 0o755)


def test_bad_default_location_files_are_refused_not_skipped(sb):
    x = sb.write("home/.config/cordon/settings.json", "")
    assert_refused(sb, run_marked(sb), x, "empty")
    os.unlink(x)
    h = sb.write("home/.srt-settings.json", '{"filesystem": {"alowRead": []}}')
    assert_refused(sb, run_marked(sb), h, "/filesystem/alowRead")


@pytest.mark.parametrize("flag,path,problem", [
    ("--deny-read", "", "empty path"),
    ("--allow-write", "/*", "literal directory"),
    ("--allow-read", "~nobody/x", "no ~user"),
])
def test_bad_quick_flags_are_refused(sb, flag, path, problem):
    p = run_marked(sb, flag, path)
    assert_refused(sb, p, "cordon: %s: " % flag, problem)


def test_unknown_option_and_missing_command(sb):
    p = sb.run("--bogus", "--", "echo", RAN)
    assert p.returncode == 125
    assert p.stderr == "cordon: unknown or incomplete option --bogus (see cordon --help)\n"
    assert p.stdout == ""
    p = sb.run("-s")
    assert p.returncode == 125 and p.stdout == ""
    p = sb.run()
    assert p.returncode == 125
    assert p.stderr == "cordon: no command given (see cordon --help)\n"
    p = sb.run("-c", "echo %s" % RAN, "extra")
    assert p.returncode == 125 and RAN not in p.stdout


# ---------------------------------------------------------------------------
# where the settings come from

def policy_source(sb, **kw):
    p = sb.run("-d", "--print-policy", **kw)
    assert p.returncode == 0, p.stderr
    src = [line for line in p.stderr.splitlines() if line.startswith("cordon: debug: settings: ")]
    assert len(src) == 1
    return src[0][len("cordon: debug: settings: "):], json.loads(p.stdout)


def test_settings_lookup_order(sb):
    # nothing anywhere: the embedded default
    src, pol = policy_source(sb)
    assert src == "embedded default policy"
    srt = sb.write("home/.srt-settings.json",
                   json.dumps({"filesystem": {"denyRead": ["/srt-marker"]}}))
    src, pol = policy_source(sb)
    assert (src, pol["filesystem"]["denyRead"]) == (srt, ["/srt-marker"])
    xdg = sb.write("home/.config/cordon/settings.json",
                   json.dumps({"filesystem": {"denyRead": ["/xdg-marker"]}}))
    src, pol = policy_source(sb)
    assert (src, pol["filesystem"]["denyRead"]) == (xdg, ["/xdg-marker"])
    # $XDG_CONFIG_HOME elsewhere: its cordon/settings.json, not ~/.config's
    other = sb.write("outside/cordon/settings.json",
                     json.dumps({"filesystem": {"denyRead": ["/other-marker"]}}))
    src, pol = policy_source(sb, env={"XDG_CONFIG_HOME": sb.outside})
    assert (src, pol["filesystem"]["denyRead"]) == (other, ["/other-marker"])
    # a relative $XDG_CONFIG_HOME is ignored (XDG base directory spec)
    src, pol = policy_source(sb, env={"XDG_CONFIG_HOME": "outside"}, cwd=sb.base)
    assert src == xdg
    # -s wins over all of them
    s = sb.settings({"filesystem": {"denyRead": ["/s-marker"]}})
    p = print_policy(sb, "-s", s)
    assert json.loads(p.stdout)["filesystem"]["denyRead"] == ["/s-marker"]


def test_home_falls_back_to_the_passwd_entry(sb):
    import pwd
    import subprocess
    env = sb.env()
    del env["HOME"]
    home = pwd.getpwuid(sb.uid).pw_dir
    if os.path.lexists(home + "/.srt-settings.json"):
        pytest.skip("the passwd home of uid %d holds a settings file" % sb.uid)
    p = subprocess.run(sb.argv(["--print-policy"]), env=env, cwd=sb.ws, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["filesystem"]["denyRead"][0] == home + "/.ssh"


DEFAULT_DENY_READ = [
    ".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".kube", ".docker/config.json",
    ".netrc", ".git-credentials", ".config/gh", ".npmrc", ".pypirc",
    ".cargo/credentials.toml", ".terraform.d", ".password-store", ".local/share/keyrings",
    ".mozilla", ".thunderbird", ".config/google-chrome", ".config/chromium",
    ".config/BraveSoftware", ".config/microsoft-edge", ".config/vivaldi", ".config/opera",
    "snap/firefox", "snap/chromium", ".var/app/org.mozilla.firefox",
    ".var/app/com.google.Chrome", ".var/app/org.chromium.Chromium",
]


def test_embedded_default_policy_when_no_file_exists(sb):
    assert os.listdir(sb.home) == ["ws"]  # an empty home
    src, pol = policy_source(sb)
    assert src == "embedded default policy"
    fs = pol["filesystem"]
    assert fs["denyRead"] == [sb.home + "/" + rel for rel in DEFAULT_DENY_READ]
    assert fs["allowWrite"] == [sb.ws]
    assert fs["allowRead"] == [] and fs["denyWrite"] == [] and fs["disabled"] is False
    assert pol["network"]["allowedDomains"] == []


# ---------------------------------------------------------------------------
# accepted keys

def test_other_platform_keys_are_accepted_and_noted_under_debug(sb):
    s = sb.settings({"allowPty": True, "enableWeakerNetworkIsolation": False,
                     "bwrapPath": "/usr/bin/bwrap", "ripgrep": {"command": "rg"},
                     "network": {"allowMachLookup": ["com.apple.x"],
                                 "allowUnixSockets": []},  # the inert default
                     "credentials": {},
                     "filesystem": {"allowWrite": ["."]}})
    p = run_marked(sb, "-s", s)
    assert p.returncode == 0 and p.stdout == RAN + "\n"
    assert p.stderr == ""  # quiet without --debug
    os.unlink(sb.ws + "/ran-marker")
    p = run_marked(sb, "-s", s, env={"SRT_DEBUG": ""})  # empty: off, as in srt
    assert p.returncode == 0 and p.stderr == ""
    os.unlink(sb.ws + "/ran-marker")
    # srt: SRT_DEBUG set to any non-empty value turns debugging on
    for opts, env in ((("-d", "-s", s), None), (("-s", s), {"SRT_DEBUG": "true"}),
                      (("-s", s), {"SRT_DEBUG": "1"}), (("-s", s), {"SRT_DEBUG": "yes"})):
        p = run_marked(sb, *opts, env=env)
        assert p.returncode == 0 and p.stdout == RAN + "\n"
        notes = [line for line in p.stderr.splitlines() if ": ignored: " in line]
        assert notes == [
            "cordon: debug: %s: /allowPty: ignored: macOS-only srt key" % s,
            "cordon: debug: %s: /enableWeakerNetworkIsolation: ignored: macOS-only srt key" % s,
            "cordon: debug: %s: /bwrapPath: ignored: srt plumbing; cordon does not use "
            "bubblewrap" % s,
            "cordon: debug: %s: /ripgrep: ignored: srt plumbing; cordon does not use ripgrep" % s,
            "cordon: debug: %s: /network/allowMachLookup: ignored: macOS-only srt key" % s,
        ]


# ---------------------------------------------------------------------------
# options

def test_version_and_help(sb):
    for opt in ("-V", "--version"):
        p = sb.run(opt)
        assert (p.returncode, p.stdout, p.stderr) == (0, "cordon 0.1.0\n", "")
    for opt in ("-h", "--help"):
        p = sb.run(opt)
        assert p.returncode == 0 and p.stderr == ""
        assert p.stdout.startswith("Usage: cordon [OPTIONS] [--] COMMAND [ARGS...]\n")


def test_options_stop_at_the_first_non_option(sb):
    p = sb.run("ls", "-d", "/")
    assert (p.returncode, p.stdout, p.stderr) == (0, "/\n", "")  # -d went to ls
    p = sb.run("echo", "-V", "--help", "-s", "x")
    assert (p.returncode, p.stdout) == (0, "-V --help -s x\n")
    p = sb.run("--", "echo", "-d")
    assert (p.returncode, p.stdout, p.stderr) == (0, "-d\n", "")
    p = shx(sb, 'echo "$@"', "--print-policy")
    assert p.stdout == "--print-policy\n"
