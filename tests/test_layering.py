"""The layers of the package, read from the source (ast): who may import whom, and who may
reach inside a generator. See SPEC.md's architecture sketch and docs/generator-interface.md."""
import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src" / "ganprior"
FILES = sorted(ROOT.rglob("*.py"))

# The networks know nothing of what is built on them.
NETS_MAY_NOT_IMPORT = {"inversion", "train", "metrics", "editing", "cli", "demo", "restore", "app"}

# Imports that close a cycle between subpackages, waiting for their owner to switch them
# (file -> imported subpackage). Remove an entry when its import is gone.
PENDING_CYCLE_EDGES: set = set()

# Only the networks, their checkpoint formats and the StyleGAN2 trainer (which trains the
# mapping and synthesis networks themselves) may touch `G.mapping` / `G.synthesis`; everything
# else goes through the generator interface (nets/base.py).
INSIDE_ALLOWED = ("nets/", "checkpoints/", "train/stylegan2.py")
PENDING_INSIDE: set = set()  # files whose attribute uses still move to the interface


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every ganprior module `path` imports, at the top or inside a function."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in found if m == "ganprior" or m.startswith("ganprior.")}


def part_of(module: str) -> str:
    """'ganprior.nets.stylegan2' -> 'nets'; 'ganprior.images' -> 'images'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "__main__.py"], ids=rel)
def test_every_module_imports(path):  # (a __main__ runs the program when imported)
    importlib.import_module(module_name(path))


def test_the_import_scan_sees_relative_and_lazy_imports():
    found = imported_modules(ROOT / "train" / "encoder.py")
    assert "ganprior.nets.encoders" in found       # from ..nets.encoders import ...
    assert "ganprior.inversion.losses" in found    # inside train_encoder()


def test_nets_import_nothing_built_on_them():
    bad = [f"{rel(p)} imports {m}" for p in FILES if rel(p).startswith("nets/")
           for m in sorted(imported_modules(p)) if part_of(m) in NETS_MAY_NOT_IMPORT]
    assert not bad, bad


def test_no_import_cycle_between_subpackages():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    edges = {}
    for p in FILES:
        a = part_of(module_name(p))
        for m in imported_modules(p):
            b = part_of(m)
            if a != b and {a, b} <= packages and (rel(p), b) not in PENDING_CYCLE_EDGES:
                edges.setdefault(a, {}).setdefault(b, rel(p))

    def path_back(start, node, seen):
        for nxt, where in edges.get(node, {}).items():
            if nxt == start:
                return [f"{node} -> {nxt} ({where})"]
            if nxt not in seen:
                rest = path_back(start, nxt, seen | {nxt})
                if rest:
                    return [f"{node} -> {nxt} ({where})"] + rest
        return None

    cycles = [path_back(a, a, {a}) for a in sorted(edges)]
    assert not any(cycles), [c for c in cycles if c]


def test_only_the_networks_reach_inside_a_generator():
    found = {}
    for p in FILES:
        if rel(p).startswith(INSIDE_ALLOWED):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("mapping", "synthesis"):
                found.setdefault(rel(p), []).append(f"{node.attr}:{node.lineno}")
    unexpected = {k: v for k, v in found.items() if k not in PENDING_INSIDE}
    assert not unexpected, unexpected
