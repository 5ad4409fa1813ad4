"""Package layout: the extension inside the package, typed stubs in sync, the sibling packages."""

import ast
import importlib
from pathlib import Path

import mptvc_latents
from mptvc_latents import _coder

PKG = Path(mptvc_latents.__file__).parent


def test_extension_lives_inside_the_package_and_is_typed():
    assert Path(_coder.__file__).parent == PKG
    assert (PKG / "py.typed").is_file()
    assert (PKG / "_coder.pyi").is_file()


def test_stub_declares_exactly_the_extension_public_names():
    tree = ast.parse((PKG / "_coder.pyi").read_text())
    declared = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
    public = {n for n in dir(_coder) if not n.startswith("_")}
    assert declared == public
    for cls in ("CdfTables", "StreamDecoder"):
        stub_methods = {
            f.name
            for c in tree.body
            if isinstance(c, ast.ClassDef) and c.name == cls
            for f in c.body
            if isinstance(f, ast.FunctionDef) and not f.name.startswith("__")
        }
        assert stub_methods == {n for n in dir(getattr(_coder, cls)) if not n.startswith("_")}, cls


def test_heads_and_generation_use_only_the_public_api():
    """`heads` and `generation` build on mptvc_latents, never on its private modules."""
    root = PKG.parent
    for pkg in ("heads", "generation"):
        importlib.import_module(pkg)
        for path in (root / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "mptvc_latents":
                        assert not any(p.startswith("_") for p in parts[1:]), f"{path} imports private {name}"


def test_the_core_never_imports_heads_or_generation():
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in ("heads", "generation"), path
            elif isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] not in ("heads", "generation") for a in node.names), path
