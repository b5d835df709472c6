#!/usr/bin/env python3
"""md2man.py: turn cordon's man page sources (docs/*.md) into roff for man(1).

The build runs it (docs/meson.build) so the pages are kept next to the code in
a form people read on GitHub, and installed as man(7) roff. It understands a
deliberately small Markdown subset and refuses anything else, so a page never
renders differently from how its source reads:

  # name(section) -- one-line description     first line: .TH and NAME
  ## HEADING                                  .SH
  ### Heading                                 .SS
  paragraph lines                             filled text, blank line = .PP
  | line                                      a line block: one output line each
  - item                                      bullet; continue with 2 spaces
  TERM                                        a definition (.TP): the term line,
  : definition                                then ": " and the text, continued
                                              with 2 spaces; a blank line then
                                              2-space text is a new paragraph
  ```                                         verbatim block (no filling);
  ```                                         indented by 2 inside a definition
  `code`  **bold**  *italic*  [text](url)     inline

Tables, nested lists, HTML and reference links are errors.

Usage: md2man.py [--version VERSION] INPUT.md OUTPUT
The date in the page header is SOURCE_DATE_EPOCH when set (reproducible
builds, Debian sets it from debian/changelog), else the source's mtime.
Only the Python standard library is used: python3 is already needed by meson.
"""
import argparse
import datetime
import os
import re
import sys

MANUALS = {"1": "User Commands", "5": "File Formats", "7": "Miscellaneous", "8": "System Administration"}


class Md2ManError(Exception):
    pass


def escape(text):
    """Escape plain text for roff (not at line starts; see emit_text)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ord(ch) > 126:
            out.append("\\[u%04X]" % ord(ch))
        elif ord(ch) < 32 and ch not in "\n\x00\x01":  # \x00, \x01: inline()'s markers
            raise Md2ManError("control character %r" % ch)
        else:
            out.append(ch)
    return "".join(out)


CODE_RE = re.compile(r"`([^`]+)`")
BOLD_RE = re.compile(r"\*\*(.+?)\*\*", re.S)
ITALIC_RE = re.compile(r"(?<![\w\\*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])", re.S)
LINK_RE = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def inline(text):
    """Markdown inline markup to roff font escapes."""
    codes = []

    def keep_code(m):
        codes.append(m.group(1))
        return "\x00%d\x00" % (len(codes) - 1)

    text = CODE_RE.sub(keep_code, text)
    if "`" in text:
        raise Md2ManError("unbalanced backtick in: " + text)
    links = []

    def keep_link(m):
        links.append((m.group(1), m.group(2)))
        return "\x01%d\x01" % (len(links) - 1)

    text = LINK_RE.sub(keep_link, text)
    text = escape(text)
    text = BOLD_RE.sub(lambda m: "\\fB" + m.group(1) + "\\fR", text)
    text = ITALIC_RE.sub(lambda m: "\\fI" + m.group(1) + "\\fR", text)
    if "**" in text:
        raise Md2ManError("unbalanced ** in: " + text)

    def put_link(m):
        label, url = links[int(m.group(1))]
        label = inline(label)
        # Anchors and files of this repository mean nothing in a man page.
        if url.startswith("#") or not re.match(r"[a-z]+:", url):
            return label
        return label + " <" + escape(url) + ">"

    text = re.sub("\x01(\\d+)\x01", put_link, text)
    # \% keeps groff from hyphenating a code word.
    text = re.sub("\x00(\\d+)\x00", lambda m: "\\fB\\%" + escape(codes[int(m.group(1))]) + "\\fR",
                  text)
    return text


def emit_text(out, text):
    """Write filled text: one roff line per source line, none starting with a
    control character."""
    for line in inline(text).split("\n"):
        line = line.strip()
        if not line:
            continue
        if line[0] in ".'":
            line = "\\&" + line
        out.append(line)


def emit_verbatim(out, lines):
    out.append(".nf")
    for line in lines:
        line = escape(line)
        if line[:1] in (".", "'"):
            line = "\\&" + line
        out.append(line)
    out.append(".fi")


def heading_arg(text):
    return '"' + inline(text).replace('"', "\\(dq") + '"'


def convert(src, version, date):
    lines = src.split("\n")
    out = []
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    m = re.match(r"^# ([a-z0-9][a-z0-9_.-]*)\(([1-9])\) -- (.+)$", lines[i] if i < len(lines) else "")
    if not m:
        raise Md2ManError("line %d: the first line must be '# name(section) -- description'" % (i + 1))
    name, section, desc = m.groups()
    out.append('.TH "%s" "%s" "%s" "cordon %s" "%s"' % (
        name.upper(), section, date, version, MANUALS.get(section, "")))
    out.append(".nh")
    out.append(".ad l")
    out.append(".SH NAME")
    out.append(escape(name) + " \\- " + inline(desc))
    i += 1

    def err(msg):
        raise Md2ManError("line %d: %s" % (i + 1, msg))

    # state: 'none' | 'def' (inside a definition's body) | 'list'
    context = "none"
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        # Continuation paragraphs of a definition or list item: indented text
        # after a blank line.
        if line.startswith("  ") and context in ("def", "list"):
            body = line.strip()
            if body.startswith("```"):
                i += 1
                block = []
                while i < len(lines) and lines[i].strip() != "```":
                    block.append(lines[i][2:] if lines[i].startswith("  ") else lines[i].lstrip())
                    i += 1
                if i >= len(lines):
                    err("unterminated ```")
                i += 1
                out.append(".IP")
                emit_verbatim(out, block)
                continue
            para = []
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                para.append(lines[i].strip())
                i += 1
            out.append(".IP")
            emit_text(out, "\n".join(para))
            continue
        if line.startswith(" "):
            err("unexpected indentation (only definition and list continuations are indented)")
        if line.startswith("### "):
            out.append(".SS " + heading_arg(line[4:].strip()))
            context = "none"
            i += 1
            continue
        if line.startswith("## "):
            out.append(".SH " + heading_arg(line[3:].strip()))
            context = "none"
            i += 1
            continue
        if line.startswith("#"):
            err("only one '#' title, then '##' and '###' headings")
        if line.startswith("```"):
            i += 1
            block = []
            while i < len(lines) and lines[i].strip() != "```":
                block.append(lines[i])
                i += 1
            if i >= len(lines):
                err("unterminated ```")
            i += 1
            out.append(".PP")
            out.append(".RS 4")
            emit_verbatim(out, block)
            out.append(".RE")
            context = "none"
            continue
        if line.startswith("| ") or line == "|":
            out.append(".PP")
            while i < len(lines) and (lines[i].startswith("| ") or lines[i] == "|"):
                emit_text(out, lines[i][2:] or " ")
                out.append(".br")
                i += 1
            context = "none"
            continue
        if line.startswith("- "):
            item = [line[2:]]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                item.append(lines[i].strip())
                i += 1
            out.append(".IP \\(bu 2")
            emit_text(out, "\n".join(item))
            context = "list"
            continue
        if line.startswith(("* ", "+ ", "|", "<", "[")) or re.match(r"^\d+\. ", line):
            err("unsupported Markdown: " + line)
        if i + 1 < len(lines) and lines[i + 1].startswith(": "):
            out.append(".TP")
            emit_text(out, line)
            i += 1
            body = [lines[i][2:]]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                body.append(lines[i].strip())
                i += 1
            emit_text(out, "\n".join(body))
            context = "def"
            continue
        # A paragraph.
        para = []
        while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "```", "- ", "| ")):
            if i + 1 < len(lines) and lines[i + 1].startswith(": ") and para:
                break
            if lines[i].startswith(" "):
                err("unexpected indentation inside a paragraph")
            para.append(lines[i])
            i += 1
        out.append(".PP")
        emit_text(out, "\n".join(para))
        context = "none"
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="restricted Markdown to man(7) roff")
    ap.add_argument("--version", default="")
    ap.add_argument("input")
    ap.add_argument("output")
    a = ap.parse_args(argv)
    with open(a.input, encoding="utf-8") as f:
        src = f.read()
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    ts = int(epoch) if epoch else int(os.stat(a.input).st_mtime)
    date = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")
    try:
        roff = convert(src, a.version, date)
    except Md2ManError as e:
        print("%s: %s" % (a.input, e), file=sys.stderr)
        return 1
    header = ('.\\" Generated by scripts/md2man.py from %s: edit that file, not this one.\n'
              % os.path.basename(a.input))
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(header + roff)
    os.replace(tmp, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
