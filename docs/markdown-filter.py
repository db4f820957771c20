#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Doxygen input filter for the Markdown pages (FILTER_PATTERNS in docs/Doxyfile.in).

GitHub gives every heading an anchor made from its text ("## Spec grammar" -> #spec-grammar)
and the README links to them; Doxygen 1.9 does not. This filter adds an explicit
`{#<page>-<slug>}` to each heading and rewrites `(#slug)` and `(other.md#slug)` links to match,
so the files stay plain GitHub Markdown. <page> comes from the file's path in the repository
(README.md -> readme, affinity/README.md -> affinity-readme), keeping labels unique.
Usage: markdown-filter.py FILE   (writes the filtered text to stdout)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = re.compile(r"^(#{2,6})\s+(.*?)\s*$")
LINK = re.compile(r"\]\(([^)\s#]*\.md)?#([^)\s]+)\)")


def page(path):
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    return re.sub(r"[^a-z0-9]+", "-", os.path.splitext(rel)[0].lower()).strip("-")


def slug(text):
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).lower()  # link text only
    text = re.sub(r"[^\w\- ]", "", text)  # GitHub keeps letters, digits, _, - and spaces
    return text.replace(" ", "-")


def main(path):
    here = page(path)
    out = []
    fenced = False
    seen = {}  # GitHub numbers repeated headings: #added, #added-1, #added-2
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced:
                m = HEADING.match(line)
                if m and "{#" not in line:
                    base = slug(m.group(2))
                    n = seen.get(base, 0)
                    seen[base] = n + 1
                    label = base if n == 0 else f"{base}-{n}"
                    line = f"{m.group(1)} {m.group(2)} {{#{here}-{label}}}\n"

                def link(m):
                    target = here
                    if m.group(1):
                        target = page(os.path.join(os.path.dirname(os.path.abspath(path)), m.group(1)))
                    return f"](#{target}-{m.group(2)})"

                line = LINK.sub(link, line)
            out.append(line)
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
