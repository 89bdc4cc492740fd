"""No import circles among sal_ext's modules: the import graph read from the sources (ast, every
import statement, also those inside functions) has no strongly connected component."""
import textwrap
from pathlib import Path

from import_graph import cycles, graph

SAL_EXT = Path(__file__).resolve().parents[1] / "sal_ext"


def test_sal_ext_has_no_import_cycles():
    g = graph(SAL_EXT, "sal_ext")
    assert len(g) > 30 and "sal_ext.inference_config" in g["sal_ext.inference"]   # the sources were read
    assert cycles(g) == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles(g))


def _package(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_finds_planted_cycles(tmp_path):
    pkg = _package(tmp_path, {
        "__init__.py": "from . import e\nVERSION = 1\n",
        "a.py": "from .b import f\n",
        "b.py": "def f():\n    from . import a   # a lazy import is an edge too\n",
        "c.py": "import pkg.sub.d\ny = 1\n",        # runs pkg/sub/__init__ first
        "sub/__init__.py": "from ..c import y\n",
        "sub/d.py": "",
        "e.py": "from . import VERSION\n",         # its own package: not a cycle
        "free.py": "import os\nfrom .a import f\n",
    })
    g = graph(pkg, "pkg")
    assert g["pkg.c"] == {"pkg.sub", "pkg.sub.d"} and g["pkg.e"] == set()
    assert cycles(g) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub"]]
