"""Write a notebook from a list of cells (used to author the numbered notebooks; outputs-free by design).

    from tools.nbbuild import build
    build("notebooks/00_x.ipynb", [("md", "# Title"), ("params", "a = 1"), ("code", "print(a)")])

Every notebook gets the same first cell, which installs the repository's package on Colab or in a
fresh kernel where ``lib`` cannot be imported. A "params" cell (tagged ``parameters`` for papermill) starts
with ``COMMON_PARAMS``, the keys of ``params/<profile>/common.yaml``, followed by the notebook's own.
"""
import nbformat

SETUP = '''# On Colab or a fresh kernel: install this repository's package if `lib` is not importable yet.
try:
    import lib
except ImportError:
    import pathlib, subprocess, sys
    root = next((p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "pyproject.toml").exists()), None)
    if root is None:
        raise SystemExit("Clone the repository first (git clone <repo-url>), then open this notebook from it.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(root)], check=True)
    sys.path.insert(0, str(root))'''

COMMON_PARAMS = '''profile = "cpu"
data_root = "data/embedded"   # relative paths resolve from the project root
run_dir = "runs/interactive"
figures_dir = "figures"       # where the notebook's figures go
seed = 0'''


def build(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    out = [nbformat.v4.new_code_cell(SETUP)]
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            out.append(nbformat.v4.new_markdown_cell(src))
        else:
            c = nbformat.v4.new_code_cell(src)
            if kind == "params":
                c.source = COMMON_PARAMS + "\n" + src
                c.metadata["tags"] = ["parameters"]
            out.append(c)
    for c in out:
        c.pop("id", None)
    nb.cells = out
    nb.nbformat_minor = 4
    nbformat.write(nb, path)
