#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle.

A file's imports are the module paths it names through `crate::`, `super::`
or a child module's name in a `use`; each resolves to the longest prefix
that is a module file of the same crate. Test modules (`tests.rs`, files
under `tests/`) are left out: they may reach anywhere.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = ["macros/src", "runtime/src", "cli/src", "testkit/src"]
# Circles known and not yet broken, each as (crate, "a, a::b, ..") with a
# comment saying why; none is left. A circle not listed fails, and so does
# a listed one that is gone (so the list only shrinks).
KNOWN = set()
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\}", re.S)
LOCAL_USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([a-z_][a-z0-9_]*)::", re.M)


def module_of(src, file):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    # `#[cfg(test)] mod tests { .. }` at the end of a file.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: cut.start()] if cut else text


def inline_depths(text):
    """For each offset, how many inline `mod name { .. }` enclose it."""
    depths, stack, depth = [0] * (len(text) + 1), [], 0
    opener = re.compile(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*$")
    for i, ch in enumerate(text):
        if ch == "{":
            is_mod = bool(opener.search(text[max(0, i - 80) : i]))
            stack.append(is_mod)
            depth += is_mod
        elif ch == "}" and stack:
            depth -= stack.pop()
        depths[i] = depth
    return depths


def paths(text, here):
    depths = inline_depths(text)

    def absolute(root, rest, at):
        names = [n for n in rest.split("::") if n]
        if root == "super":
            # `super` out of an inline module stays in this file.
            names = ["super"] + names
            inner = depths[at]
            while inner and names and names[0] == "super":
                names, inner = names[1:], inner - 1
            if not names or names[0] != "super":
                return here
            root = "super"
        base = [] if root == "crate" else list(here)
        while names and names[0] == "super":
            base = base[:-1]
            names = names[1:]
        return tuple(base + names)

    for match in GROUP.finditer(text):
        root, rest, inner = match.groups()
        for item in re.split(r",", inner):
            item = item.strip().split(" as ")[0].replace("{", "").strip()
            if item and item != "self":
                yield absolute(root, rest + "::" + item.split("::")[0], match.start())
            elif item == "self":
                yield absolute(root, rest, match.start())
    for match in PATH.finditer(text):
        yield absolute(*match.groups(), match.start())
    for child in LOCAL_USE.findall(text):
        yield here + (child,)


def cycles(src):
    files = {}
    for file in sorted(src.rglob("*.rs")):
        rel = file.relative_to(src)
        if file.name == "tests.rs" or "tests" in rel.parts[:-1]:
            continue
        files[module_of(src, file)] = file
    graph = {}
    for module, file in files.items():
        targets = set()
        for path in paths(strip(file.read_text()), module):
            for cut in range(len(path), 0, -1):
                if path[:cut] in files:
                    if path[:cut] != module:
                        targets.add(path[:cut])
                    break
        graph[module] = targets
    # Tarjan's strongly connected components.
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main():
    bad, seen = False, set()
    for crate in CRATES:
        src = ROOT / crate
        if not src.is_dir():
            continue
        for component in cycles(src):
            names = ", ".join("::".join(m) or "lib" for m in component)
            if (crate, names) in KNOWN:
                seen.add((crate, names))
                print(f"{crate}: known circle: {names}")
                continue
            bad = True
            print(f"{crate}: modules import each other in a circle: {names}")
    for crate, names in sorted(KNOWN - seen):
        bad = True
        print(f"{crate}: the known circle {names} is gone: take it off KNOWN in {__file__}")
    if bad:
        sys.exit(1)
    print("no other import circles")


main()
