"""The package's layers (README, "Layout"): imports only go down the list, and no module imports another
module's underscore names. Read from the source with ``ast``, so that the test covers every module, imported
or not, and every import, at the top of a file or inside a function."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minivrnn"

# Lowest first: a module may import from its own layer and the layers above it in this list, never below.
LAYERS = [
    ("foundations", ["gradcheck", "validate", "params"]),
    ("the maths, one component per file", ["ops"]),
    ("the readable VRNN", ["readable"]),
    ("the fast engine", ["fast"]),
    ("the model", ["model", "sampling", "evaluation"]),
    ("training's parts", ["optim", "data", "checkpoint", "plots", "cli", "files"]),
    ("commands and tools", ["train", "sample", "evaluate", "bench", "experiment", "reference_kit", "torch_twin"]),
]
LAYER = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(dotted):
    """The layer of ``minivrnn.<top>...``: by its first name below the package (the package itself: None)."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return None
    assert parts[1] in LAYER, f"{dotted}: a module no layer lists (add it to LAYERS and to the README's Layout)"
    return LAYER[parts[1]]


def _imports(path):
    """(line, imported module, names imported from it) for every import of a minivrnn module in ``path``."""
    module = _dotted(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "minivrnn":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "minivrnn":
                continue
            names = [a.name for a in node.names]
            if node.module is None or all(_is_module(f"{target}.{n}") for n in names):  # from . import x, y
                for n in names:
                    yield node.lineno, f"{target}.{n}", []
            else:
                yield node.lineno, target, names


def _is_module(dotted):
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_down_the_layers(path):
    me = _layer(_dotted(path))
    if me is None:
        return  # minivrnn/__init__.py re-exports the public contract from above
    upward = [f"line {line}: {target} (layer {_layer(target)}: {LAYERS[_layer(target)][0]})"
              for line, target, _ in _imports(path)
              if _layer(target) is not None and _layer(target) > me]
    assert not upward, f"{path.name} is in layer {me} ({LAYERS[me][0]}) but imports from above: {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_underscore_name_is_imported_from_another_module(path):
    private = [f"line {line}: {name} from {target}" for line, target, names in _imports(path)
               for name in names if name.startswith("_")]
    private += [f"line {line}: module {target}" for line, target, _ in _imports(path)
                if any(part.startswith("_") and part != "__init__" for part in target.split("."))]
    assert not private, f"{path.name} imports private names: {private}"


def test_the_layers_list_every_module_and_the_readme_names_every_module():
    """Every module belongs to a layer, and the README's file map names every file of the package."""
    readme = (PACKAGE.parent / "README.md").read_text()
    missing = []
    for path in _modules():
        _layer(_dotted(path))  # asserts the module is in a layer
        if path.name != "__init__.py" and path.name not in readme:
            missing.append(str(path.relative_to(PACKAGE.parent)))
    assert not missing, f"the README's Layout does not name: {missing}"


def test_the_maths_layer_is_plain_numpy():
    """minivrnn/ops/ and minivrnn/readable.py: no Numba, nothing from the fast engine (a reader meets no kernel)."""
    readable = [PACKAGE / "readable.py"] + sorted((PACKAGE / "ops").glob("*.py"))
    for path in readable:
        text = path.read_text()
        assert "numba" not in text and "njit" not in text, path.name
        assert all(_layer(target) < LAYER["fast"] for _, target, _ in _imports(path)), path.name
