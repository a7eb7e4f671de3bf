"""The house stays drawn: imports point down the pipeline, no private name crosses a module, modules and
functions stay small. Read with ``ast`` only (nothing is imported), imports inside functions included.

Layers, bottom up (a module may import its own layer and any layer below; never up, never sideways):

| rank | layer      | modules                                                                  |
|------|------------|--------------------------------------------------------------------------|
| 0    | base       | speechtl (package), errors, fileio, config, settings, runtime, text,     |
|      |            | audio, synth_words — utilities anyone may import                         |
| 1    | data       | data/ (manifests, datasets, batching, importers, augmentation), tts,     |
|      |            | espeak (the TTS engines),                                                |
|      |            | text_sources (speech and sentences that data sets are made of)           |
| 2    | models     | models/ (loading, adapters, routing, vocabulary heads)                   |
| 3    | decode     | decode/, writers (writers formats decode's timed words into files)       |
| 4    | eval       | eval/                                                                    |
| 4    | transcribe | transcribe (files in, transcripts out: decode's, not eval's)             |
| 5    | adapt      | adapt/                                                                   |
| 5    | compare    | compare/                                                                 |
| 5    | check      | check (reads manifests and audio, loads a model for its vocabulary)      |
| 5    | synth      | synth, synth_tts (render data sets: base + data only; the demo and       |
|      |            | scripts use them)                                                        |
| 6    | demo       | demo, demo_config (its torch-free config)                                |
| 7    | cli        | cli (the entry point: everything), __main__ (python -m speechtl),        |
|      |            | prepare, pretrain, combine, lm (those verbs' parsers and runs)           |
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "speechtl"

LAYERS = {  # module name (or package prefix) -> layer; the longest matching prefix wins
    "speechtl": "base", "speechtl.errors": "base", "speechtl.fileio": "base", "speechtl.config": "base",
    "speechtl.settings": "base", "speechtl.runtime": "base", "speechtl.text": "base", "speechtl.audio": "base", "speechtl.synth_words": "base",
    "speechtl.data": "data", "speechtl.tts": "data", "speechtl.espeak": "data", "speechtl.text_sources": "data",
    "speechtl.models": "models",
    "speechtl.decode": "decode", "speechtl.writers": "decode",
    "speechtl.eval": "eval",
    "speechtl.adapt": "adapt", "speechtl.compare": "compare", "speechtl.transcribe": "transcribe",
    "speechtl.check": "check", "speechtl.synth": "synth", "speechtl.synth_tts": "synth",
    "speechtl.demo": "demo", "speechtl.demo_config": "demo",
    "speechtl.cli": "cli", "speechtl.__main__": "cli", "speechtl.prepare": "cli", "speechtl.pretrain": "cli",
    "speechtl.combine": "cli", "speechtl.lm": "cli",
}
RANK = {"base": 0, "data": 1, "models": 2, "decode": 3, "eval": 4, "transcribe": 4, "adapt": 5, "compare": 5,
        "check": 5, "synth": 5, "demo": 6, "cli": 7}

# Upward arrows that other branches of the issue-16 refactor remove; the lead deletes an entry when its fix lands.
# (importing file, imported module)
KNOWN_UPWARD: set[tuple[str, str]] = set()

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
WORD_LISTS = {"speechtl/synth_words.py"}  # long literal word lists, not code
# Over the limits today, in files other branches of the issue-16 refactor split up; the lead deletes an entry
# when its split lands. Module entries are paths, function entries "path::qualified.name".
KNOWN_OVER_LIMIT: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> str | None:
    """The layer of a module name; None for a top-level module nobody placed in LAYERS yet."""
    match = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return None if match == "speechtl" and name != "speechtl" else LAYERS[match]


def _target(module: str, name: str, modules: set[str]) -> str:
    """``from module import name``: the submodule when ``name`` is one, else ``module``."""
    return f"{module}.{name}" if f"{module}.{name}" in modules else module


def imports(tree: ast.AST, here: str, is_package: bool, modules: set[str]):
    """(line, imported speechtl module, imported names) for every import of the package, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "speechtl" or alias.name.startswith("speechtl."):
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = here.split(".") if is_package else here.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module == "speechtl" or module.startswith("speechtl."):
                for alias in node.names:
                    yield node.lineno, _target(module, alias.name, modules), [alias.name]


def check_imports(rel: str, source: str, modules: set[str]) -> list[str]:
    """Violations of one file (``rel``: path from the repository root) as 'file:line: why'."""
    path = PACKAGE.parent / rel
    here = module_name(path)
    mine = layer_of(here)
    if mine is None:
        return [f"{rel}:1: {here} has no layer: add it to LAYERS in tests/test_architecture.py"]
    found: list[str] = []
    for line, target, names in imports(ast.parse(source), here, path.name == "__init__.py", modules):
        theirs = layer_of(target)
        upward = theirs is not None and theirs != mine and RANK[theirs] >= RANK[mine]
        arrow = (f"{rel}:{line}: {mine} (rank {RANK[mine]}) imports {target} ({theirs}, rank "
                 f"{RANK.get(theirs)}): arrows point down only")
        if upward and (rel, ".".join(target.split(".")[:2])) not in KNOWN_UPWARD and arrow not in found:
            found.append(arrow)
        for name in names:
            if name.startswith("_") and not name.endswith("__") and target != here:
                found.append(f"{rel}:{line}: private {name} imported from {target}: make it public (__all__) "
                             f"or move it")
    return found


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def all_modules() -> set[str]:
    return {module_name(p) for p in package_files()}


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_every_import_points_down_and_no_private_name_crosses_a_module():
    modules = all_modules()
    found = [v for p in package_files() for v in check_imports(rel(p), p.read_text(encoding="utf-8"), modules)]
    assert not found, "\n".join(found)


def test_the_known_upward_arrows_still_exist():
    """An entry whose arrow is gone must leave KNOWN_UPWARD, so the list never hides a new one."""
    modules = all_modules()
    for file, target in KNOWN_UPWARD:
        source = (PACKAGE.parent / file).read_text(encoding="utf-8")
        here = module_name(PACKAGE.parent / file)
        hits = [t for _, t, _ in imports(ast.parse(source), here, file.endswith("__init__.py"), modules)
                if t == target or t.startswith(target + ".")]
        assert hits, f"{file} no longer imports {target}: delete it from KNOWN_UPWARD"


@pytest.mark.parametrize("file, source", [
    ("speechtl/data/dataset.py", "from speechtl.eval import evaluate\n"),  # up two layers
    ("speechtl/models/router.py", "def f():\n    from speechtl.decode import greedy_decode\n"),  # inside a function
    ("speechtl/audio.py", "import speechtl.data.manifest\n"),  # base imports data
    ("speechtl/transcribe.py", "from speechtl.adapt import run\n"),  # sideways
    ("speechtl/transcribe.py", "from speechtl.eval import evaluate\n"),  # sideways: transcribe sits beside eval
    ("speechtl/decode/lm.py", "from ..eval import mismatch\n"),  # relative
    ("speechtl/decode/lm.py", "from speechtl.audio import _decode\n"),  # private, though the arrow is fine
    ("speechtl/newthing.py", "import os\n"),  # a module without a layer
])
def test_the_checker_catches_wrong_arrows(file, source):
    assert check_imports(file, source, all_modules())


@pytest.mark.parametrize("file, source", [
    ("speechtl/eval/mismatch.py", "from speechtl.decode import iter_batches\nfrom speechtl import audio\n"),
    ("speechtl/cli.py", "def f():\n    from speechtl.demo import run_accent_demo\n"),
    ("speechtl/models/router.py", "from speechtl.models.adapter import digest_tensors\n"),
    ("speechtl/decode/longform.py", "from . import forward_arrays\nfrom .chunking import plan_chunks\n"),
])
def test_the_checker_lets_downward_arrows_pass(file, source):
    assert check_imports(file, source, all_modules()) == []


def over_limit() -> list[str]:
    found = []
    for p in package_files():
        if rel(p) in WORD_LISTS:
            continue
        source = p.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            found.append(rel(p))
        found += [f"{rel(p)}::{name}" for name, n in function_lengths(ast.parse(source)) if n > MAX_FUNCTION_LINES]
    return found


def function_lengths(tree: ast.AST, prefix: str = ""):
    """(qualified name, lines from ``def`` to its last line) of every function and method, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node.end_lineno - node.lineno + 1
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield from function_lengths(node, f"{prefix}{node.name}.")


def test_modules_and_functions_stay_small():
    found = [f for f in over_limit() if f not in KNOWN_OVER_LIMIT]
    assert not found, (f"over {MAX_MODULE_LINES} lines (module) or {MAX_FUNCTION_LINES} lines (function): split "
                       f"them\n" + "\n".join(found))


def test_the_known_oversized_still_are():
    """An entry that got small must leave KNOWN_OVER_LIMIT, so the list never hides a new one."""
    gone = sorted(KNOWN_OVER_LIMIT - set(over_limit()))
    assert not gone, "now within the limits, delete from KNOWN_OVER_LIMIT: " + ", ".join(gone)


def test_function_lengths_literal():
    tree = ast.parse("def a():\n    pass\n\n\nclass K:\n    def b(self):\n        def c():\n            pass\n"
                     "        return c\n")
    assert list(function_lengths(tree)) == [("a", 2), ("K.b", 4), ("K.b.c", 2)]
