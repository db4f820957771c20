#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes every ```cpp block of the Markdown docs as a C++ translation unit, so the build can
compile them exactly as they stand in the documents.

Each ```cpp fence must have, on the line right before it, a comment saying how to compile it:

    <!-- compiled: scope=function context=counter needs=asio -->

  scope=file       the block is a whole translation unit (with main() or not)
  scope=namespace  declarations, compiled at namespace scope after the context
  scope=function   statements, compiled as the body of a function that is never called
  scope=coroutine  statements with co_await, compiled as the body of a coroutine returning
                   the context's `snippet_coroutine` type
  context=NAME     docs/snippets/NAME.hpp declares what the block uses (a pool, request types,
                   helper functions); included first, the block sees its names unqualified
  needs=asio|mpi   compiled only in builds that have that adapter (default: the core)

A ```cpp block without that comment is an error naming the document and line. `#include`
lines inside a namespace, function or coroutine block are moved to the top of the file.
Every generated file carries `#line` directives, so compiler errors point into the document.

Usage:
  extract-snippets.py DOC_OR_DIR... --out DIR   writes DIR/<doc>_<line>.cpp and DIR/snippets.cmake
                                                (MTP_DOC_SNIPPETS_core / _asio / _mpi: the files)
  extract-snippets.py DOC_OR_DIR... --check     only checks that every block is marked correctly
A directory stands for the *.md files directly in it. Exit status 1 on any error.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTEXT_DIR = os.path.join(ROOT, "docs", "snippets")
SCOPES = ("file", "namespace", "function", "coroutine")
NEEDS = ("core", "asio", "mpi")
CPP_INFO = ("cpp", "c++", "cxx")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
MARKER = re.compile(r"^\s*<!--\s*compiled:(.*?)-->\s*$")
INCLUDE = re.compile(r"^\s*#\s*include\b")
NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class Block:
    def __init__(self, doc, line, code, options):
        self.doc = doc  # the document's path as given
        self.line = line  # 1-based line of the opening fence
        self.code = code  # the lines between the fences
        self.scope = options.get("scope")
        self.context = options.get("context")
        self.needs = options.get("needs", "core")


def expand(paths):
    docs = []
    for p in paths:
        if os.path.isdir(p):
            docs += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".md"))
        else:
            docs.append(p)
    return docs


def parse_marker(text):
    options = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not eq or not value:
            raise ValueError(f"'{item}' is not key=value")
        if key not in ("scope", "context", "needs"):
            raise ValueError(f"unknown key '{key}' (scope, context, needs)")
        if key in options:
            raise ValueError(f"'{key}' given twice")
        options[key] = value
    if "scope" not in options:
        raise ValueError(f"no scope= ({', '.join(SCOPES)})")
    if options["scope"] not in SCOPES:
        raise ValueError(f"unknown scope '{options['scope']}' ({', '.join(SCOPES)})")
    if options.get("needs", "core") not in NEEDS:
        raise ValueError(f"unknown needs '{options['needs']}' ({', '.join(NEEDS)})")
    context = options.get("context")
    if context is not None:
        if not NAME.match(context):
            raise ValueError(f"bad context name '{context}'")
        if not os.path.isfile(os.path.join(CONTEXT_DIR, context + ".hpp")):
            raise ValueError(f"no context file docs/snippets/{context}.hpp")
    if options["scope"] == "coroutine" and context is None:
        raise ValueError("scope=coroutine needs a context= that defines snippet_coroutine")
    return options


def read_blocks(doc, errors):
    """The ```cpp blocks of one document; problems are appended to `errors`."""
    try:
        with open(doc, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        errors.append(f"{doc}: error: cannot read: {e.strerror}")
        return []
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).lower()
        start = i
        i += 1
        code = []
        closed = False
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) \
                    and not close.group(3):
                closed = True
                break
            line = lines[i]
            code.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        if info not in CPP_INFO:
            continue
        where = f"{doc}:{start + 1}"
        if not closed:
            errors.append(f"{where}: error: this ```{info} block is never closed")
            continue
        marker = MARKER.match(lines[start - 1]) if start > 0 else None
        if not marker:
            errors.append(f"{where}: error: this ```{info} block has no "
                          "'<!-- compiled: scope=... [context=...] [needs=...] -->' on the line "
                          "before it (see tools/extract-snippets.py)")
            continue
        try:
            options = parse_marker(marker.group(1))
        except ValueError as e:
            errors.append(f"{doc}:{start}: error: compiled: {e}")
            continue
        blocks.append(Block(doc, start + 1, code, options))
    return blocks


def slug(doc):
    path = os.path.abspath(doc)
    rel = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else os.path.basename(path)
    return re.sub(r"[^a-z0-9]+", "_", os.path.splitext(rel)[0].lower()).strip("_")


def cpp_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def translation_unit(block):
    doc = cpp_string(os.path.abspath(block.doc))
    first = block.line + 1  # the block's first line in the document
    name = f"{slug(block.doc)}_{block.line}"
    out = [f"// Generated from {os.path.basename(block.doc)} line {block.line} by "
           "tools/extract-snippets.py: edit the document, not this file."]
    if block.context:
        out.append(f"#include {cpp_string(os.path.join(CONTEXT_DIR, block.context + '.hpp'))}")
    if block.scope == "file":
        out.append(f"#line {first} {doc}")
        out += block.code
        return name, "\n".join(out) + "\n"
    body = []
    for n, line in enumerate(block.code):
        if INCLUDE.match(line):
            out.append(f"#line {first + n} {doc}")
            out.append(line)
            body.append("")
        else:
            body.append(line)
    out.append("namespace mtp_snippets {")
    if block.scope == "function":
        out.append(f"void snippet_{name}() {{")
    elif block.scope == "coroutine":
        out.append(f"snippet_coroutine snippet_{name}() {{")
    out.append(f"#line {first} {doc}")
    out += body
    if block.scope in ("function", "coroutine"):
        out.append("}")
    out.append("}  // namespace mtp_snippets")
    return name, "\n".join(out) + "\n"


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def cmake_quote(path):
    return '"' + path.replace("\\", "/").replace('"', '\\"') + '"'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", nargs="+", metavar="DOC_OR_DIR")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="DIR", help="write the translation units and snippets.cmake here")
    mode.add_argument("--check", action="store_true", help="only check the markers")
    args = parser.parse_args()

    errors = []
    blocks = []
    for doc in expand(args.docs):
        blocks += read_blocks(doc, errors)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"extract-snippets: {len(errors)} error(s); see the usage at the top of "
              "tools/extract-snippets.py", file=sys.stderr)
        return 1
    if args.check:
        print(f"extract-snippets: {len(blocks)} C++ blocks, all marked")
        return 0

    os.makedirs(args.out, exist_ok=True)
    files = {need: [] for need in NEEDS}
    written = set()
    for block in blocks:
        name, text = translation_unit(block)
        path = os.path.join(os.path.abspath(args.out), name + ".cpp")
        write_if_changed(path, text)
        written.add(os.path.basename(path))
        files[block.needs].append(path)
    for stale in os.listdir(args.out):  # blocks that moved or went away
        if stale.endswith(".cpp") and stale not in written:
            os.remove(os.path.join(args.out, stale))
    listing = ["# Generated by tools/extract-snippets.py: the C++ blocks of the docs, by what they need."]
    for need in NEEDS:
        listing.append(f"set(MTP_DOC_SNIPPETS_{need}")
        listing += [f"  {cmake_quote(p)}" for p in files[need]]
        listing.append(")")
    write_if_changed(os.path.join(args.out, "snippets.cmake"), "\n".join(listing) + "\n")
    print(f"extract-snippets: {len(blocks)} C++ blocks written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
