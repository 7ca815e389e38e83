#!/usr/bin/env python3
"""The longest Rust functions under the given folders (default: crates/), by lines from
`fn` to its closing brace. Test modules count too; pass --no-tests to leave out
`#[cfg(test)]` modules (everything after a `#[cfg(test)]` line at the file's top level).

    python3 scripts/fn-lengths.py [--no-tests] [--top N] [FOLDER...]
"""
import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:const\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def functions(path, no_tests):
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if no_tests:
        for i, line in enumerate(lines):
            if line.startswith("#[cfg(test)]"):
                lines = lines[:i]
                break
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            code = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'|//.*', "", lines[j])
            depth += code.count("{") - code.count("}")
            if "{" in code:
                started = True
            if started and depth <= 0:
                break
            if not started and code.rstrip().endswith(";"):
                break  # a declaration without a body
            j += 1
        if started:
            yield (j - i + 1, f"{path}:{i + 1}", m.group(1))
        i += 1


def main(argv):
    no_tests = "--no-tests" in argv
    top = 10
    if "--top" in argv:
        top = int(argv[argv.index("--top") + 1])
    folders = [a for a in argv if not a.startswith("--") and not a.isdigit()] or ["crates"]
    found = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.rs")):
            found.extend(functions(path, no_tests))
    for length, place, name in sorted(found, reverse=True)[:top]:
        print(f"{length:5}  {name:<32} {place}")


if __name__ == "__main__":
    main(sys.argv[1:])
