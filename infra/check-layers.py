#!/usr/bin/env python3
"""Layer rules and import cycles of the library crate (shared/src, and shared/domain/src once the
domain is its own crate: its `crate::x` is `domain::x` here). Stdlib only; never builds anything.

    python3 infra/check-layers.py            # enforce the layer rules (CI): exit 1 on a violation
    python3 infra/check-layers.py --verbose  # the same, also listing what KNOWN still allows
    python3 infra/check-layers.py --cycles   # file-level import cycles, edges against the order

Layers, top to bottom: lambda -> http -> service (and error, the services' OAuth error; its
wire forms are http's) -> {store, keys, fetch} -> domain; leaves: config (imports only domain, secret), clock, secret,
logging, aws, metrics (the metrics port and its sinks: imports nothing of ours, so that the store and the
signer may count into it). A file depends on the module file (longest prefix of the path that is one) of each
path it mentions: `use` trees, `pub use` re-exports, inline `crate::a::b::f()`, `super::`/`self::`,
and paths through a child module or a `use`d module. Comments, strings and test-only code
(`#[cfg(test)]` items, files of `#[cfg(test)] mod x;`) do not count. http must not read `x.repo`;
nothing below http (or lambda) may use axum.

KNOWN lists the violations still in the code (issue 20). The check fails on a violation not in
KNOWN and on a KNOWN entry that no longer occurs, so the list can only shrink.
"""

import re
import sys
import tomllib
from bisect import bisect_right
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_TOML = ROOT / "shared/domain/Cargo.toml"

# file -> forbidden top-level modules it still imports ("repo": it reads `app.repo`).
KNOWN = {
}

RULES = {  # layer -> ("only", layers it may import) or ("not", layers it must not import)
    "domain": ("only", {"domain", "secret"}),
    "config": ("only", {"config", "domain", "secret"}),
    # The metrics port (and its EMF and Prometheus sinks): every layer may count into it.
    "metrics": ("only", {"metrics"}),
    # The store implements the ports `keys` defines (keys::wrapped::RingStore), so it may
    # import keys; keys never import the store.
    "store": ("not", {"service", "http", "lambda", "error"}),
    "keys": ("not", {"service", "http", "lambda", "error", "store"}),
    "fetch": ("not", {"service", "http", "lambda", "error", "store", "keys"}),
    "service": ("not", {"http", "lambda"}),
    "http": ("not", {"store", "lambda"}),
    # The services' error (RFC 6749 codes): it may convert store and signer failures, never
    # know HTTP responses (axum) or the routers.
    "error": ("not", {"http", "lambda"}),
}
# For --cycles: edges to a higher rank (or sideways among store/keys/fetch) go against the order.
RANK = {"lambda": 4, "http": 3, "error": 2, "service": 2, "store": 1, "keys": 1, "fetch": 1,
        "domain": 0, "config": 0, "clock": -1, "secret": -1, "logging": -1, "aws": -1,
        "metrics": -1}
DOMAIN_BANNED = {"axum", "tokio", "hyper", "jsonwebtoken", "reqwest", "rusqlite", "lambda_http", "tower"}

LEXEME = re.compile(r"""//[^\n]*|/\*.*?\*/|(?<!\w)b?r(\#*)".*?"\1|b?"(?:\\.|[^"\\])*"|'(?:\\.[^']*|[^\\'])'""", re.S)
CFG = re.compile(r"#(!?)\[cfg\((.*?)\)\]")
BLOCK = re.compile(r"\b(?:mod\s+(\w+)|macro_rules!\s*\w+)\s*\{")
START = re.compile(r"(?<![\w:$>])(?:::)?(\$?crate|[a-z_][a-z0-9_]*)\s*::")
TOKEN, SEP = re.compile(r"\s*(\w+|\*|\{)"), re.compile(r"\s*::")
AS, GROUP_END = re.compile(r"\s+as\s+\w+"), re.compile(r"\s*([,}])")
REPO = re.compile(r"\b\w+(?:\s*\.\s*\w+)*?\s*\.\s*repo\b")
AXUM = re.compile(r"(?<![\w:])axum\s*::")


def blank(s):
    return re.sub(r"[^\n]", " ", s)


def close(text, i):
    """Index just past the brace matching the `{` at i."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return len(text)


def test_only(pred):
    """`test` or `all(.., test, ..)`; not `any(test, ..)` nor `not(test)`."""
    pred = re.sub(r"\s", "", pred)
    if not (inner := re.fullmatch(r"all\((.*)\)", pred)):
        return pred == "test"
    args = inner.group(1)
    while re.search(r"\w+\([^()]*\)", args):  # drop nested not(..), any(..)
        args = re.sub(r"\w+\([^()]*\)", "", args)
    return "test" in args.split(",")


def strip_tests(text):
    """Blank each `#[cfg(test)]` item: (text, file is `#![cfg(test)]`, names of `#[cfg(test)] mod x;`)."""
    test_mods, pos = set(), 0
    while m := CFG.search(text, pos):
        pos = m.end()
        if not test_only(m.group(2)):
            continue
        if m.group(1):  # #![cfg(test)]: the whole file
            return text, True, test_mods
        item = re.compile(r"(\s*#\[[^\]]*\])*\s*").match(text, pos).end()
        j = min((k for k in (text.find(";", item), text.find("{", item)) if k >= 0), default=len(text) - 1)
        end = close(text, j) if text[j] == "{" else j + 1
        if decl := re.fullmatch(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text[item:end]):
            test_mods.add(decl.group(1))
        text = text[:m.start()] + blank(text[m.start():end]) + text[end:]
    return text, False, test_mods


def parse_tree(text, i, segs, at):
    """The paths (with the offset of their last segment) of the path or `use` tree that continues
    `segs` at i; returns ([(segments, offset)], end)."""
    while m := TOKEN.match(text, i):
        i = m.end()
        if m.group(1) == "*":
            break
        if m.group(1) == "{":
            paths = []
            while True:
                if c := GROUP_END.match(text, i):
                    if c.group(1) == "}":
                        return paths, c.end()
                    i = c.end()
                    continue
                sub, j = parse_tree(text, i, segs, at)
                if j == i:  # not a use tree after all
                    return paths, i
                paths, i = paths + sub, j
        segs, at = segs + [m.group(1)], m.start(1)
        if not (sep := SEP.match(text, i)):
            i = (AS.match(text, i) or m).end()
            break
        i = sep.end()
    return [(segs, at)], i


class Source:
    def __init__(self, path, module):
        self.path, self.module = path.relative_to(ROOT).as_posix(), module
        text = LEXEME.sub(lambda m: blank(m.group()), path.read_text(encoding="utf-8"))
        self.text, self.test_file, self.test_mods = strip_tests(text)
        self.newlines = [i for i, c in enumerate(self.text) if c == "\n"]
        blocks = [(b.start(), close(self.text, b.end() - 1), b.group(1)) for b in BLOCK.finditer(self.text)]
        self.paths, pos = [], 0  # (segments, offset, module there, inside a macro body)
        while m := START.search(self.text, pos):
            here, in_macro = module, False
            for a, z, name in blocks:  # inline `mod x { .. }` and `macro_rules! m { .. }`
                if a < m.start() < z:
                    here, in_macro = (here + (name,), in_macro) if name else (here, True)
            trees, pos = parse_tree(self.text, m.end(), [m.group(1)], m.start())
            self.paths += [(segs, at, here, in_macro) for segs, at in trees]

    def line(self, offset):
        return bisect_right(self.newlines, offset - 1) + 1


def layer(module):
    return "domain" if module[0] == "domain" else (module[1] if len(module) > 1 else "lib")


def load():
    """Non-test module files by module path: ("crate", ..) in shared, ("domain", ..) in the domain crate."""
    sources = {}
    for base, crate in ((ROOT / "shared/src", "crate"), (ROOT / "shared/domain/src", "domain")):
        for p in sorted(base.rglob("*.rs")) if base.is_dir() else []:
            parts = p.relative_to(base).with_suffix("").parts
            module = (crate, *(parts[:-1] if parts[-1] in ("lib", "mod") else parts))
            sources[module] = Source(p, module)
    tests = {m + (name,) for m, s in sources.items() for name in s.test_mods}
    return {m: s for m, s in sources.items()
            if not s.test_file and not any(m[:k] in tests for k in range(2, len(m) + 1))}


def resolve_all(sources):
    """file -> [(target module file, resolved path, offset)]"""
    manifest = tomllib.loads(DOMAIN_TOML.read_text()) if DOMAIN_TOML.exists() else {}
    ext = manifest.get("lib", {}).get("name") or manifest.get("package", {}).get("name", "-").replace("-", "_")

    def full(segs, here, aliases):
        first, k, base = segs[0], 1, here
        if first in ("crate", "$crate"):
            base = here[:1]
        elif first == "super":
            k = 0
            while k < len(segs) and segs[k] == "super":
                base, k = base[:-1], k + 1
        elif first in aliases:
            base = aliases[first]
        elif here + (first,) in sources:  # a child module
            k = 0
        elif first == ext:  # the domain crate, from shared
            base = ("domain",)
        elif first != "self":
            return None  # another crate, a type, a variant
        return base + tuple(s for s in segs[k:] if s != "self") if base else None

    exports = {}  # crate root -> name -> path: its `pub use`s and #[macro_export] macros
    for m, s in sources.items():
        for name in re.findall(r"#\[macro_export\]\s*macro_rules!\s*(\w+)", s.text):
            exports.setdefault(m[:1], {})[name] = m
        for use in re.finditer(r"\bpub\s+use\s+(?:::)?", s.text) if len(m) == 1 else []:
            for segs, _ in parse_tree(s.text, use.end(), [], 0)[0]:
                exports.setdefault(m, {})[segs[-1]] = full(segs, m, {})
        for path, name in re.findall(r"\bpub\s+use\s+(?:::)?([\w:]+)\s+as\s+(\w+)\s*;", s.text) if len(m) == 1 else []:
            exports.setdefault(m, {})[name] = full(path.split("::"), m, {})

    def target(path):
        if len(path) > 1 and exports.get(path[:1], {}).get(path[1]):
            path = exports[path[:1]][path[1]] + path[2:]
        return next((path[:k] for k in range(len(path), 0, -1) if path[:k] in sources), None), path

    deps = {}
    for m, s in sources.items():
        aliases = {segs[-1]: f for segs, _, here, macro in s.paths if not macro and segs[0] in ("crate", "super", "self")
                   and (f := full(segs, here, {})) in sources and f != m}
        deps[m] = []
        for segs, offset, here, macro in s.paths:
            if macro and segs[0] != "$crate":
                continue  # `super::` in a macro body is the caller's module
            if (f := full(segs, here, aliases)) and (t := target(f))[0] not in (None, m):
                deps[m].append((*t, offset))
    return deps


def tarjan(graph):
    """Strongly connected components, iteratively."""
    index, low, on, stack, sccs = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root), on.add(root)
        while work:
            v, it = work[-1]
            if (w := next(it, None)) is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w), on.add(w)
                    work.append((w, iter(graph[w])))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                sccs.append([])
                while not sccs[-1] or sccs[-1][-1] != v:
                    sccs[-1].append(stack.pop())
                    on.discard(sccs[-1][-1])
    return sccs


def cycles(sources, deps):
    graph = {m: sorted({t for t, _, _ in deps[m]}) for m in sources}
    sccs = sorted(((sorted({layer(m) for m in c}), c) for c in tarjan(graph) if len(c) > 1),
                  key=lambda c: (-len(c[0]), -len(c[1])))
    for n, (layers, scc) in enumerate(sccs, 1):
        print(f"cycle {n}: {len(scc)} files across {len(layers)} layers ({', '.join(layers)})")
        print("".join(f"  {path}\n" for path in sorted(sources[m].path for m in scc)), end="")
    edges = {}
    for m, ds in deps.items():
        for t, f, offset in ds:
            a, b = layer(m), layer(t)
            if a != b and {a, b} <= RANK.keys() and (RANK[b] > RANK[a] or RANK[a] == RANK[b] == 1):
                edges.setdefault((a, b), {}).setdefault(sources[m].path, f"{sources[m].line(offset)}: {'::'.join(f)}")
    print("layer edges against the order (upward, or sideways between store/keys/fetch):")
    for (a, b), where in sorted(edges.items(), key=lambda e: (RANK[e[0][0]] - RANK[e[0][1]], e[0])):
        print(f"  {a} -> {b}" + ("  (sideways)" if RANK[a] == RANK[b] else ""))
        print("".join(f"      {path}:{what}\n" for path, what in sorted(where.items())), end="")
    across = [(ls, c) for ls, c in sccs if len(ls) > 1]
    within = ", ".join(f"{ls[0]}: {len(c)} files" for ls, c in sccs if len(ls) == 1)
    print(f"import cycles: {len(across)} ({sum(len(c) for _, c in across)} files across "
          f"{len(set().union(*(ls for ls, _ in across)))} layers)"
          + (f"; within one layer: {len(sccs) - len(across)} ({within})" if within else ""))


def violations(sources, deps):
    """(file, forbidden layer or "repo") -> [(line, message)], one per module file reached"""
    found = {}
    for m, s in sources.items():
        src, (kind, mods) = layer(m), RULES.get(layer(m), ("not", set()))
        for t, f, offset in deps[m]:
            if (layer(t) not in mods) if kind == "only" else (layer(t) in mods):
                found.setdefault((s.path, layer(t)), {}).setdefault(t, (s.line(offset), f"{src} imports {'::'.join(f)}"))
        # HTTP (axum: requests, responses, extractors) is http's and lambda's only.
        for r in AXUM.finditer(s.text) if src not in ("http", "lambda") else []:
            found.setdefault((s.path, "axum"), {}).setdefault(s.line(r.start()), (s.line(r.start()), f"{src} uses axum"))
        for r in REPO.finditer(s.text) if src == "http" else []:
            what = re.sub(r"\s", "", r.group())
            found.setdefault((s.path, "repo"), {}).setdefault(what, (s.line(r.start()), f"{src} reaches the store: {what}"))
    return {key: sorted(hits.values()) for key, hits in found.items()}


def manifest_problems():
    """The domain crate depends on no IO/HTTP/AWS crate and on no crate of this workspace."""
    if not DOMAIN_TOML.exists():
        return []
    manifest, workspace = tomllib.loads(DOMAIN_TOML.read_text()), tomllib.loads((ROOT / "Cargo.toml").read_text())
    workspace = workspace.get("workspace", {})
    ours = {"shared", "bulwark"} | {tomllib.loads((p / "Cargo.toml").read_text()).get("package", {}).get("name")
                                    for g in workspace.get("members", []) for p in ROOT.glob(g) if (p / "Cargo.toml").exists()}
    tables = [manifest.get("dependencies", {})] + [t.get("dependencies", {}) for t in manifest.get("target", {}).values()]
    problems = []
    for name, spec in (dep for table in tables for dep in table.items()):
        spec = spec if isinstance(spec, dict) else {}
        real = spec.get("package", name)
        inherited = workspace.get("dependencies", {}).get(name, {}) if spec.get("workspace") else {}
        if real in DOMAIN_BANNED or real.startswith("aws-"):
            problems.append(f"{name} is an IO/HTTP/AWS crate: the domain stays sans-IO")
        if "path" in spec or isinstance(inherited, dict) and "path" in inherited or real in ours or real.startswith("bulwark"):
            problems.append(f"{name} is a path dependency or a crate of this workspace: the domain depends on none")
    return [f"{DOMAIN_TOML.relative_to(ROOT)}: [dependencies] {p}" for p in problems]


def http_test_problems():
    """http's test files (exempt from the rules above as test code) still reach the store only
    through the services' test support (`service::testing`)."""
    problems = []
    for path in sorted((ROOT / "shared/src/http").rglob("*tests.rs")):
        text = re.sub(r"//[^\n]*", "", path.read_text())
        for m in re.finditer(r"crate::store\b|\.\s*repo\b", text):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{path.relative_to(ROOT)}:{line}: http's tests reach the store ({m.group()}): use service::testing")
    return problems


def check(sources, deps, verbose):
    found = violations(sources, deps)
    new = [key for key in found if key[1] not in KNOWN.get(key[0], set())]
    stale = sorted((path, d) for path, ds in KNOWN.items() for d in ds if (path, d) not in found)
    rows = [(path, line, ("" if (path, d) in new else "known (issue 20): ") + what)
            for (path, d), hits in found.items() if verbose or (path, d) in new for line, what in hits]
    for path, line, what in sorted(rows):
        print(f"{path}:{line}: {what}")
    for path, d in stale:
        print(f"{path}: no longer imports {d}: remove it from KNOWN")
    problems = manifest_problems() + http_test_problems()
    print("".join(f"{p}\n" for p in problems), end="")
    print(f"layer rules: {len(new)} new violations, {len(stale)} stale KNOWN entries, "
          f"{len(found) - len(new)} known (issue 20)" + (f", {len(problems)} other problems" if problems else ""))
    return 1 if new or stale or problems else 0


def main(argv):
    if set(argv) - {"--cycles", "--verbose", "-v"}:
        sys.exit(__doc__)
    sources = load()
    deps = resolve_all(sources)
    if "--cycles" in argv:
        return cycles(sources, deps) or 0
    return check(sources, deps, bool({"--verbose", "-v"} & set(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
