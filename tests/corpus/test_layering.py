"""The other packages use `corpus` through its declared names (and `corpus.wire`) only."""

from __future__ import annotations

import ast
from pathlib import Path

import corpus
import corpus.wire

ROOT = Path(__file__).resolve().parents[2]


def _imports() -> list[tuple[str, int, str, list[str]]]:
    found = []
    for package in ("capture", "replay", "stats"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("corpus"):
                    names = [a.name for a in node.names]
                    found.append((str(path.relative_to(ROOT)), node.lineno, node.module, names))
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith("corpus."):
                            found.append((str(path.relative_to(ROOT)), node.lineno, alias.name, []))
    return found


def test_other_packages_import_only_declared_corpus_names() -> None:
    allowed = {"corpus": set(corpus.__all__), "corpus.wire": set(corpus.wire.__all__)}
    bad = [
        f"{where}:{line}: from {module} import {', '.join(names)}"
        for where, line, module, names in _imports()
        if module not in allowed or not set(names) <= allowed[module]
    ]
    assert not bad, "\n".join(bad)
