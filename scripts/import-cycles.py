#!/usr/bin/env python3
"""Lists import cycles between the files of each crate of the workspace.

A file depends on another when it names one of that file's items through a path: `use
crate::a::b::X`, `super::X`, `self::child::X`, a child module's name, or the same paths written
inline in code (`crate::a::f()`). Declaring a module (`mod a;`) is not a dependency. A path
inside an inline module (`mod tests { use super::*; }`) is read from that inline module, so a
file's own tests do not count as the file importing its parent.

Usage: scripts/import-cycles.py [crate directory ...]   (default: crates/* and fuzz)
Prints every cycle found (as files) and exits with 1 when there is one, 0 otherwise.
A module re-exporting (`pub use`) an item of one of its own submodules is not counted as
depending on it: that is the module's public face, as `lib.rs` is the crate's.
`-v` also prints each crate's edges.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """The text without comments, string and char literals (kept as spaces, lines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif re.match(r'b?r#*"', text[i:i + 8]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            m = re.match(r'b?r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(" " + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"' or (c == "b" and text.startswith('b"', i)):
            i += 2 if c == "b" else 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append(" ")
            i += 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" ")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(tree):
    """`a::{b::C, d}` -> [[a, b, C], [a, d]]."""
    tree = re.sub(r"\s+", "", tree)
    paths = []

    def walk(prefix, s):
        # Split s at top-level commas.
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for part in parts:
            if not part:
                continue
            if "{" in part:
                head, rest = part.split("{", 1)
                head = [x for x in head.split("::") if x]
                walk(prefix + head, rest[: rest.rfind("}")])
            else:
                part = re.sub(r"\bas\b.*", "", part)
                paths.append(prefix + [x for x in part.split("::") if x])

    walk([], tree)
    return paths


class Crate:
    def __init__(self, root):
        self.root = root
        src = root / "src"
        self.files = {}  # module path (tuple) -> file
        roots = [src / "lib.rs"] if (src / "lib.rs").exists() else [src / "main.rs"]
        for f in sorted(src.rglob("*.rs")):
            rel = f.relative_to(src)
            if f not in roots and rel.parts[0] == "bin":
                continue
            if (src / "lib.rs").exists() and rel == Path("main.rs"):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
                parts = parts[:-1]
            self.files[tuple(parts)] = f

    def resolve(self, module, segments):
        """The module file a path written in `module` (a module path) names, or None."""
        if not segments:
            return None
        first = segments[0]
        if first == "crate":
            base, rest = (), segments[1:]
        elif first == "super":
            base, rest = module, segments
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif first == "self":
            base, rest = module, segments[1:]
        elif module + (first,) in self.files:
            base, rest = module, segments
        else:
            return None  # another crate, std or a local item
        path = base
        for seg in rest:
            if path + (seg,) in self.files:
                path = path + (seg,)
            else:
                break
        return path


def scan(crate):
    """Edges (from file, to file) of one crate."""
    edges = set()
    for module, f in crate.files.items():
        text = strip(f.read_text())
        # Inline modules: track `mod name {` by brace depth; paths inside are read from it.
        stack = []  # (name, depth at which it opened)
        depth = 0
        tokens = re.finditer(
            r"\bmod\s+(" + IDENT + r")\s*\{|\{|\}|(\bpub\s*(?:\([^)]*\))?\s*)?\buse\s+([^;]+);|"
            r"(?<![\w:])((?:crate|super|self)(?:\s*::\s*" + IDENT + r")+)",
            text,
        )
        for m in tokens:
            tok = m.group(0)
            if m.group(1):
                depth += 1
                stack.append((m.group(1), depth))
                continue
            if tok == "{":
                depth += 1
                continue
            if tok == "}":
                if stack and stack[-1][1] == depth:
                    stack.pop()
                depth -= 1
                continue
            inner = tuple(name for name, _ in stack)
            here = module + inner
            reexport = bool(m.group(2))
            paths = expand(m.group(3)) if m.group(3) else [re.sub(r"\s", "", m.group(4)).split("::")]
            for segs in paths:
                target = crate.resolve(here, segs)
                if target is None or target == module:
                    continue
                # A module re-exporting what its own submodules define is their facade, not
                # their user.
                if reexport and target[: len(module)] == module:
                    continue
                # A path into the file's own inline modules stays in the file.
                if target[: len(module)] == module and len(target) > len(module) and target not in crate.files:
                    continue
                edges.add((module, target))
    return edges


def cycles(nodes, edges):
    """Strongly connected components of more than one file (Tarjan)."""
    graph = {n: [] for n in nodes}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    verbose = "-v" in argv
    argv = [a for a in argv if a != "-v"]
    here = Path(__file__).resolve().parent.parent
    dirs = [Path(a) for a in argv] or sorted((here / "crates").iterdir()) + [here / "fuzz"]
    found = False
    for d in dirs:
        if not (d / "src").is_dir():
            continue
        crate = Crate(d)
        edges = scan(crate)
        name = lambda m: str(crate.files[m].relative_to(d))
        if verbose:
            for a, b in sorted(edges):
                print(f"{d.name}: {name(a)} -> {name(b)}")
        for comp in cycles(crate.files, edges):
            found = True
            files = sorted(name(m) for m in comp)
            print(f"{d.name}: cycle between {', '.join(files)}")
            for a, b in sorted(edges):
                if a in comp and b in comp:
                    print(f"    {name(a)} -> {name(b)}")
    if not found:
        print("no import cycle between the files of a crate")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
