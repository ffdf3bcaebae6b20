"""Execute the analysis notebooks with parameters, and render them to HTML for sharing.

Parameters work as in papermill: the cell tagged ``parameters`` holds the defaults, and an
injected cell right after it overrides them. Used by ``make notebooks`` and by the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path("notebooks")


def notebook_paths(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict) -> nbformat.NotebookNode:
    """Insert a cell that overrides the defaults of the ``parameters`` cell."""
    if not parameters:
        return nb
    lines = ["# Injected parameters"] + [f"{k} = {v!r}" for k, v in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    nb.cells.insert(index + 1, cell)
    return nb


def execute(path: Path, cwd: Path, parameters: dict | None = None, timeout: int = 600) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in ``cwd``; a failing cell raises with its traceback."""
    nb = inject_parameters(nbformat.read(path, as_version=4), parameters or {})
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def render(out_dir: Path = Path("reports/notebooks"), cwd: Path = Path(".")) -> list[Path]:
    """Execute every notebook on the pipeline's outputs and write self-contained HTML."""
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebook_paths(cwd / NOTEBOOKS_DIR):
        nb = execute(path, cwd=cwd)
        html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        target = out_dir / f"{path.stem}.html"
        target.write_text(html)
        written.append(target)
        print(f"rendered {target}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["render"])
    parser.add_argument("--out", type=Path, default=Path("reports/notebooks"))
    args = parser.parse_args(argv)
    render(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
