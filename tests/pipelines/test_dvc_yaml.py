"""dvc.yaml lists, for every stage, exactly the project modules the stage runs.

A stage's command is ``churn <subcommand>``; its module is ``pipelines/<subcommand>.py``
(``-`` becomes ``_``). The modules it runs are the transitive closure of the project modules
that module imports, found statically with ``ast`` (imports inside functions included, since
stages import lazily; nothing is imported, so the test stays fast and needs no heavy library).
A module missing from ``deps`` means a change to it does not rerun the stage (stale outputs);
a project module in ``deps`` that the stage never imports reruns the stage for nothing.

Only Python modules are followed: data files a module reads (presets, the playbook) are not
detected and must be listed by hand.
"""

from __future__ import annotations

import ast
import posixpath
import re
import shlex
from collections import deque
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "models", "pipelines")
RUNTIME_SECTION = "runtime"  # params.yaml settings that change no output: no stage may depend on them
INTERPOLATED = ("paths", "data")  # the params.yaml sections dvc.yaml paths may interpolate


# --- import closure (static) ---------------------------------------------------------------------


def module_file(root: Path, dotted: str) -> Path | None:
    """The file defining module ``dotted`` under ``root`` (package ``__init__.py`` or ``.py``), if any."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every import statement, at any depth (functions, classes, try blocks), except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the body never runs
        else:
            stack.extend(ast.iter_child_nodes(node))


def _prefixes(dotted: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs every package ``__init__`` on the way."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def _direct_imports(root: Path, path: Path, packages: tuple[str, ...]) -> tuple[Path, ...]:
    """Project module files that importing ``path`` runs directly, in source order (no duplicates)."""
    rel = path.relative_to(root).with_suffix("")
    own_package = rel.parent.parts  # for pkg/__init__.py too: the package it defines
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[Path, None] = {}

    def add(dotted: str, required: bool) -> None:
        if dotted.split(".")[0] not in packages:
            return
        file = module_file(root, dotted)
        if file is None:
            if required:
                raise ImportError(f"{rel.as_posix()}.py imports {dotted!r}, which is not a module under {root}")
            return
        found[file] = None

    for node in sorted(_import_nodes(tree), key=lambda n: (n.lineno, n.col_offset)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                for name in _prefixes(alias.name):
                    add(name, required=True)
            continue
        if node.level:  # relative: from . import x / from ..pkg import x
            keep = len(own_package) - (node.level - 1)
            if keep <= 0:
                raise ImportError(f"{rel.as_posix()}.py: relative import goes above the top-level package")
            base = ".".join(own_package[:keep])
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        for name in _prefixes(source):
            add(name, required=True)
        for alias in node.names:
            if alias.name != "*":
                add(f"{source}.{alias.name}", required=False)  # a submodule, or just a name in `source`
    return tuple(found)


def import_closure(root: Path, start: Path, packages: tuple[str, ...] = PACKAGES) -> dict[Path, Path | None]:
    """Every project module file importing ``start`` runs, mapped to the file that first imports it.

    ``start`` maps to None. Breadth first, so following the parents gives a shortest import chain.
    """
    root, start = root.resolve(), start.resolve()
    parents: dict[Path, Path | None] = {start: None}
    queue = deque([start])
    # Running the module as `pkg.sub.mod` first runs pkg/__init__.py and pkg/sub/__init__.py.
    package = ".".join(start.relative_to(root).parent.parts)
    for name in _prefixes(package) if package else []:
        init = module_file(root, name)
        if init is not None and init not in parents:
            parents[init] = start
            queue.append(init)
    while queue:
        current = queue.popleft()
        for imported in _direct_imports(root, current, tuple(packages)):
            if imported not in parents:
                parents[imported] = current
                queue.append(imported)
    return parents


def import_chain(parents: dict[Path, Path | None], file: Path, root: Path) -> str:
    """``pipelines/train.py -> models/__init__.py`` style chain from the start module to ``file``."""
    chain = []
    node: Path | None = file
    while node is not None:
        chain.append(node.relative_to(root).as_posix())
        node = parents[node]
    return " -> ".join(reversed(chain))


# --- dvc.yaml ------------------------------------------------------------------------------------


@cache
def load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def stages(root: Path = ROOT) -> dict[str, dict]:
    return load_yaml(root / "dvc.yaml").get("stages") or {}


def interpolate(value: str, params: dict) -> str:
    """Resolve ``${paths.x}`` / ``${data.x}`` from params.yaml, as DVC does."""

    def lookup(match: re.Match) -> str:
        key = match.group(1).strip()
        if key.split(".")[0] not in INTERPOLATED:
            raise ValueError(f"dvc.yaml interpolates ${{{key}}}: this test resolves only {INTERPOLATED} keys")
        node = params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"dvc.yaml interpolates ${{{key}}}, which params.yaml does not define")
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([^}]*)\}", lookup, value)


def stage_deps(name: str, root: Path = ROOT) -> list[str]:
    """The stage's deps as normalised paths relative to the project root."""
    params = load_yaml(root / "params.yaml")
    deps = []
    for dep in stages(root)[name].get("deps") or []:
        path = next(iter(dep)) if isinstance(dep, dict) else dep  # `- path: {options}` or `- path`
        deps.append(posixpath.normpath(interpolate(str(path), params)).rstrip("/"))
    return deps


def stage_module(name: str, root: Path = ROOT) -> Path:
    """``churn demo-data ...`` -> pipelines/demo_data.py, or a clear error when there is no such file."""
    cmd = stages(root)[name].get("cmd")
    if not isinstance(cmd, str):
        raise ValueError(f"stage {name!r}: cmd must be one `churn <subcommand>` string, got {cmd!r}")
    words = shlex.split(cmd)
    if len(words) < 2 or words[0] != "churn" or words[1].startswith("-"):
        raise ValueError(f"stage {name!r}: cmd {cmd!r} is not `churn <subcommand> ...`")
    module = Path("pipelines") / f"{words[1].replace('-', '_')}.py"
    if not (root / module).is_file():
        raise FileNotFoundError(
            f"stage {name!r} runs `{cmd}`, so its module should be {module.as_posix()}, which does not exist: "
            "rename the subcommand or the module so they match (`churn a-b` -> pipelines/a_b.py)"
        )
    return root / module


def covers(dep: str, file: str) -> bool:
    """A dep covers a file when it is the file itself or a folder above it."""
    return file == dep or file.startswith(dep + "/")


def stage_closure(name: str, root: Path = ROOT) -> tuple[dict[Path, Path | None], list[str]]:
    """The stage's import closure and the same files as root-relative posix paths."""
    closure = import_closure(root, stage_module(name, root))
    return closure, [file.relative_to(root.resolve()).as_posix() for file in closure]


def missing_deps(name: str, root: Path = ROOT) -> list[str]:
    """One message per project module the stage imports that no dep covers."""
    closure, files = stage_closure(name, root)
    deps = stage_deps(name, root)
    return [
        f"stage {name!r} imports {rel} (via {import_chain(closure, file, root.resolve())}) "
        "but dvc.yaml does not list it in deps"
        for file, rel in zip(closure, files, strict=True)
        if not any(covers(dep, rel) for dep in deps)
    ]


def stale_deps(name: str, root: Path = ROOT) -> list[str]:
    """One message per project .py file or package folder in the stage's deps that its imports never reach."""
    _, files = stage_closure(name, root)
    start = files[0]
    stale = []
    for dep in stage_deps(name, root):
        if dep.split("/")[0] not in PACKAGES:
            continue  # data, reports, ...
        path = root / dep
        if not path.exists():
            if dep.endswith(".py") or not path.suffix:
                stale.append(f"stage {name!r} lists {dep} in deps, which does not exist")
            continue
        if path.is_dir():
            if not any(path.rglob("*.py")):
                continue  # a folder of data files (presets, ...): not an import, not checked
        elif path.suffix != ".py":
            continue  # a data file the stage reads
        if not any(covers(dep, file) for file in files):
            what = "any module in it" if path.is_dir() else "it"
            stale.append(
                f"stage {name!r} lists {dep} in deps but {start} never imports {what} "
                "(directly or not): a change to it reruns the stage for nothing"
            )
    return stale


STAGES = sorted(stages())


def test_dvc_yaml_has_stages():
    assert STAGES, "dvc.yaml defines no stages"


@pytest.mark.parametrize("stage", STAGES)
def test_deps_cover_imported_modules(stage: str):
    missing = missing_deps(stage)
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_no_module_the_stage_never_imports(stage: str):
    stale = stale_deps(stage)
    assert not stale, "\n".join(stale)


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_another_stage(stage: str):
    """Stages share library code, never each other: a stage module is a thin command (two stages may run
    one command with different arguments, e.g. `churn train` and `churn train --target renewal`)."""
    own = stage_module(stage).resolve()
    modules = {stage_module(other).resolve(): other for other in STAGES if other != stage}
    modules.pop(own, None)
    closure, _ = stage_closure(stage)
    reached = [modules[f.resolve()] for f in closure if f.resolve() in modules]
    assert not reached, f"stage {stage!r} imports the stage module(s) of {', '.join(reached)}"


def test_no_stage_depends_on_runtime_params():
    """`runtime` holds settings that change no output (chunk sizes, workers, memory caps): never a stage param."""
    offending = []
    for name, stage in stages().items():
        for entry in stage.get("params") or []:
            keys = [entry] if isinstance(entry, str) else [k for keys in entry.values() for k in (keys or [])]
            offending += [
                f"stage {name!r} lists params {key!r}" for key in keys if str(key).split(".")[0] == RUNTIME_SECTION
            ]
    assert not offending, (
        f"params.yaml's {RUNTIME_SECTION!r} section changes no output, so no stage may depend on it "
        "(a change would rerun the stage for nothing):\n" + "\n".join(offending)
    )


# --- the helpers themselves, on a tiny fake tree -------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_import_closure_on_a_fake_tree(tmp_path: Path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/stage.py": (
                "import json\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg import typing_only\n"
                "def main():\n"
                "    from pkg import lazy\n"  # function-level import of a submodule
                "    return lazy\n"
            ),
            "pkg/lazy.py": "from pkg.helpers import NAME\n",  # `from pkg.mod import name`
            "pkg/helpers.py": "NAME = 1\nfrom . import sibling\nfrom .sub import deep\n",  # relative imports
            "pkg/sibling.py": "import pkg.sub.other\n",  # plain import: runs pkg/sub/__init__.py too
            "pkg/sub/__init__.py": "from pkg import CONSTANT_NOT_A_MODULE\n",  # a name -> pkg/__init__.py only
            "pkg/sub/deep.py": "",
            "pkg/sub/other.py": "",
            "pkg/typing_only.py": "",
            "pkg/unused.py": "",
            "other/__init__.py": "",
            "other/ignored.py": "",
        },
    )
    closure = import_closure(tmp_path, tmp_path / "pkg/stage.py", packages=("pkg",))
    reached = {file.relative_to(tmp_path).as_posix() for file in closure}
    assert reached == {
        "pkg/stage.py",
        "pkg/__init__.py",
        "pkg/lazy.py",
        "pkg/helpers.py",
        "pkg/sibling.py",
        "pkg/sub/__init__.py",
        "pkg/sub/deep.py",
        "pkg/sub/other.py",
    }
    assert import_chain(closure, tmp_path / "pkg/sub/other.py", tmp_path) == (
        "pkg/stage.py -> pkg/lazy.py -> pkg/helpers.py -> pkg/sibling.py -> pkg/sub/other.py"
    )


def test_import_closure_reports_an_import_of_a_missing_module(tmp_path: Path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/stage.py": "from pkg.moved.away import thing\n"})
    with pytest.raises(ImportError, match="pkg/stage.py imports 'pkg.moved'"):
        import_closure(tmp_path, tmp_path / "pkg/stage.py", packages=("pkg",))


def test_stage_module_mapping(tmp_path: Path):
    _write(
        tmp_path,
        {
            "pipelines/demo_data.py": "",
            "dvc.yaml": "stages:\n  demo:\n    cmd: churn demo-data --seed 1\n  gone:\n    cmd: churn renamed-stage\n",
        },
    )
    assert stage_module("demo", tmp_path) == tmp_path / "pipelines/demo_data.py"
    with pytest.raises(
        FileNotFoundError, match=r"stage 'gone' runs `churn renamed-stage`.*pipelines/renamed_stage\.py"
    ):
        stage_module("gone", tmp_path)


def test_interpolation_and_coverage():
    params = {"paths": {"interim": "data/interim"}, "data": {"export_dir": "data/raw/demo"}, "train": {"seed": 1}}
    assert interpolate("${paths.interim}/x.parquet", params) == "data/interim/x.parquet"
    assert interpolate("${ data.export_dir }", params) == "data/raw/demo"
    with pytest.raises(ValueError, match="train.seed"):
        interpolate("${train.seed}", params)
    with pytest.raises(KeyError, match="paths.nope"):
        interpolate("${paths.nope}", params)
    assert covers("features", "features/build.py")
    assert covers("features/build.py", "features/build.py")
    assert not covers("feat", "features/build.py")
    assert not covers("features/build", "features/build.py")


def test_missing_and_stale_deps_on_a_fake_project(tmp_path: Path):
    _write(
        tmp_path,
        {
            "params.yaml": "paths:\n  interim: data/interim\n",
            "dvc.yaml": (
                "stages:\n"
                "  train:\n"
                "    cmd: churn train\n"
                "    deps:\n"
                "      - ${paths.interim}\n"  # not a module: ignored by both checks
                "      - pipelines/train.py\n"
                "      - models\n"  # whole package: fine, models/fit.py is reached
                "      - features/unused.py\n"  # stale
                "      - features/gone.py\n"  # stale: moved away
                "      - pipelines/presets\n"  # data folder: not checked
            ),
            "pipelines/__init__.py": "",
            "pipelines/train.py": "def main():\n    from models.fit import fit\n    from features import errors\n",
            "pipelines/presets/a.yaml": "",
            "models/__init__.py": "",
            "models/fit.py": "",
            "models/other.py": "",
            "features/__init__.py": "",
            "features/errors.py": "",
            "features/unused.py": "",
        },
    )
    assert missing_deps("train", tmp_path) == [
        "stage 'train' imports pipelines/__init__.py (via pipelines/train.py -> pipelines/__init__.py) "
        "but dvc.yaml does not list it in deps",
        "stage 'train' imports features/__init__.py (via pipelines/train.py -> features/__init__.py) "
        "but dvc.yaml does not list it in deps",
        "stage 'train' imports features/errors.py (via pipelines/train.py -> features/errors.py) "
        "but dvc.yaml does not list it in deps",
    ]
    assert stale_deps("train", tmp_path) == [
        "stage 'train' lists features/unused.py in deps but pipelines/train.py never imports it "
        "(directly or not): a change to it reruns the stage for nothing",
        "stage 'train' lists features/gone.py in deps, which does not exist",
    ]
