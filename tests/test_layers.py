"""Dependencies point one way: each package of asm imports only packages of lower layers.

Every import counts, lazy ones inside functions too (they are dependencies all the same). Same-layer
packages do not import each other: the synth host knows nothing of the database, the render pool
nothing of datasets, the schema nothing of preset formats.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "asm"

# Lowest first. Packages named here but not yet written are placed where DESIGN.md puts them.
LAYERS: list[set[str]] = [
    {"errors"},
    {"paths", "atomic", "progress"},
    {"locks"},  # file locks held by datasets and models (they name the data directory)
    {"midi"},
    {"audio"},
    {"synth"},  # host, plugins, built-in Faust synths, parameter space
    {"registry", "render"},  # rows and sessions (and registry-backed loading); the render pool
    {"presets", "data"},
    {"runs"},
    {"models"},
    {"proxy"},  # neural proxies reuse the estimators' training loop; searches use proxies
    {"search"},
    {"match", "ddsp"},
    {"bench"},
    {"perf"},  # speed and sanity measurements may use the benchmarks' targets
    {"serve"},  # the web app; `asm serve` (cli) starts it
    {"cli", "fixtures"},
]
RANK = {name: level for level, names in enumerate(LAYERS) for name in names}

# Edges known to be wrong whose fix is under way elsewhere. When one is gone, delete it here.
PENDING: dict[tuple[str, str], str] = {}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path, text: str | None = None) -> set[str]:
    """The asm packages/modules ``path`` imports (absolute and relative imports)."""
    tree = ast.parse(path.read_text() if text is None else text, str(path))
    module = ["asm", *path.relative_to(ROOT).with_suffix("").parts]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module[:-1]  # a module's package; for __init__.py the package itself
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [prefix] if prefix != "asm" else [f"asm.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "asm" and len(parts) > 1:
                found.add(parts[1])
    return found


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = _package(path)
        for target in _imports(path) - {source}:
            edges.setdefault((source, target), []).append(str(path.relative_to(ROOT.parent)))
    return edges


def test_every_package_has_a_layer():
    packages = {_package(p) for p in ROOT.rglob("*.py")} - {"__init__"}
    assert packages - set(RANK) == set(), "place new packages in LAYERS"


def test_imports_point_down_only():
    wrong = {edge: files for edge, files in _edges().items()
             if edge not in PENDING and RANK.get(edge[1], -1) >= RANK.get(edge[0], len(LAYERS))}
    assert wrong == {}, "imports against the layering (source, target): files"


def test_pending_exemptions_are_still_needed():
    edges = _edges()
    gone = [edge for edge in PENDING if edge not in edges]
    assert gone == [], f"these edges are gone: remove them from PENDING {gone}"


def test_the_checker_sees_lazy_and_relative_imports():
    """It would have caught the edges removed here (synth -> registry lazily, midi -> data relatively)."""
    text = "def f():\n    from asm.registry.synths import space_of\n    from ..data import shards\n    import asm.cli\n"
    assert _imports(ROOT / "synth" / "probe.py", text) == {"registry", "data", "cli"}
    assert _imports(ROOT / "midi" / "__init__.py", "from ..data.shards import write_atomic\n") == {"data"}
