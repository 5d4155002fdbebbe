"""The notebooks are the source people edit: what every notebook must hold, checked on the .ipynb files.

The smoke pipeline that executes them is in test_smoke_pipeline.py (marked slow).
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from lib.common.params import ParamError, load, notebook_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILES = sorted(p.name for p in (ROOT / "params").iterdir() if p.is_dir())
SETUP_CELL = ROOT / "notebooks" / "setup_cell.py"
COMMON = {
    "profile",
    "data_root",
    "run_dir",
    "seed",
    "policy",
    "cache_dir",
    "max_bad_fraction",
}  # every notebook reads these


def parameters(nb_path):
    """{name: value} of the parameters cell (lib.common.params reads it: plain `name = literal` lines only),
    which papermill must parse the same."""
    try:
        values = notebook_parameters(nb_path)
    except ParamError as e:
        pytest.fail(str(e))
    inferred = set(papermill.inspect_notebook(str(nb_path)))  # what papermill itself can parse and override
    assert set(values) == inferred, (
        f"{nb_path.name}: papermill cannot parse parameters {sorted(set(values) - inferred)}"
    )
    return values


def unknown_keys(param_file):
    """{notebook name: keys of param_file that its parameters cell does not define} (papermill only warns).
    Stricter than run_all.sh's check for common.yaml: its keys must be in every notebook."""
    values = load(param_file)
    assert all(not isinstance(v, dict) for v in values.values()), f"{param_file}: flat keys"
    stems = {p.stem: p for p in NOTEBOOKS}
    stem = Path(param_file).stem
    targets = NOTEBOOKS if stem == "common" else [stems.get(stem)]
    assert targets[0] is not None, f"{param_file}: no notebook named {stem}.ipynb"
    return {nb.name: set(values) - set(parameters(nb)) for nb in targets if set(values) - set(parameters(nb))}


def test_notebooks_exist_and_are_numbered():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{nb_path.name} has outputs: run nbstripout"
    nbformat.validate(nb)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_what_nbstripout_writes(nb_path, tmp_path):
    """Executed (outputs, counts, metadata added) then stripped by the repo's filter: the committed file again,
    with its parameters tag; so an edit saved in Jupyter and committed is exactly what run_all.sh runs."""
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
            c.execution_count = 3
            c.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    work = tmp_path / nb_path.name
    nbformat.write(nb, work)
    nbstripout = Path(sys.executable).parent / "nbstripout"
    clean = subprocess.run([str(nbstripout), "-t", str(work)], capture_output=True, text=True, check=True).stdout
    assert json.loads(clean) == json.loads(nb_path.read_text()), f"{nb_path.name} is not as nbstripout writes it"
    assert "parameters" in json.dumps(json.loads(clean)), "nbstripout dropped the parameters tag"


def test_same_nbformat_for_every_notebook():
    versions = {
        (nbformat.read(p, as_version=4).nbformat, nbformat.read(p, as_version=4).nbformat_minor) for p in NOTEBOOKS
    }
    assert len(versions) == 1, f"notebooks are written in several nbformat versions: {versions}"


def test_nbstripout_filter_is_declared():
    attrs = (ROOT / ".gitattributes").read_text()
    assert "*.ipynb filter=nbstripout" in attrs


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_is_the_canonical_setup_cell(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    assert nb.cells[0].cell_type == "code"
    assert nb.cells[0].source == SETUP_CELL.read_text().rstrip("\n"), (
        f"{nb_path.name}: the first cell differs from notebooks/setup_cell.py (copy that file into the cell)"
    )


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_the_common_keys(nb_path):
    values = parameters(nb_path)
    assert COMMON <= set(values), f"{nb_path.name}: parameters cell lacks {sorted(COMMON - set(values))}"
    first = parameters(NOTEBOOKS[0])
    differ = {k for k in COMMON if values[k] != first[k]}
    assert not differ, f"{nb_path.name}: common parameters {sorted(differ)} differ from {NOTEBOOKS[0].name}'s"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_data_load_reads_through_the_common_data_source(nb_path):
    """One way of reading the data for the whole run: each notebook builds one DataSource from its common
    parameters (policy, cache_dir, max_bad_fraction), packs splits only through it and hands it to the trainers,
    so no later notebook silently repacks with a default policy or reads another cache."""
    sources, loads = 0, 0
    for c in nbformat.read(nb_path, as_version=4).cells:
        if c.cell_type != "code" or "parameters" in c.metadata.get("tags", []):
            continue
        for node in ast.walk(ast.parse(c.source)):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            assert name != "load_split", f"{nb_path.name}: `{ast.unparse(node)}` bypasses the DataSource"
            if name == "DataSource":
                sources += 1
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert kw == {k: k for k in ("policy", "cache_dir", "max_bad_fraction")}, ast.unparse(node)
            if name == "split" and ast.unparse(f.value) == "source":
                loads += 1
            if name in {"train_unet", "train_simvp", "finetune_simvp"}:
                assert "source" in [ast.unparse(a) for a in node.args], f"{nb_path.name}: {ast.unparse(node)}"
    assert sources == 1, f"{nb_path.name} builds {sources} DataSources"
    assert loads or nb_path.name.startswith(("02", "04")), f"{nb_path.name} loads no split"


def test_common_policy_is_in_every_profile():
    for profile in PROFILES:
        common = yaml.safe_load((ROOT / "params" / profile / "common.yaml").read_text())
        assert common.get("policy") == parameters(NOTEBOOKS[0])["policy"], profile


@pytest.mark.parametrize("profile", PROFILES)
def test_parameter_files_name_only_defined_keys(profile):
    files = sorted((ROOT / "params" / profile).glob("*.yaml"))
    assert files and (ROOT / "params" / profile / "common.yaml") in files
    for f in files:
        assert not unknown_keys(f), f"{f} names keys that no parameters cell defines: {unknown_keys(f)}"


def test_parameter_check_catches_unknown_key(tmp_path):
    bad = tmp_path / "02_unet.yaml"
    bad.write_text("epochs: 1\nnot_a_parameter: 3\n")
    assert unknown_keys(bad) == {"02_unet.ipynb": {"not_a_parameter"}}
    common = tmp_path / "common.yaml"
    common.write_text("seed: 1\nepochs: 2\n")  # epochs is not in every notebook
    assert "00_synthetic_data.ipynb" in unknown_keys(common)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_import_shadows_a_stdlib_module(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or ""
                for a in node.names:
                    bound = a.asname or a.name.split(".")[0]
                    own = (module or a.name).split(".")[0] == bound
                    assert own or bound not in sys.stdlib_module_names, (
                        f"{nb_path.name}: `{ast.unparse(node)}` binds the name of the stdlib module {bound!r}"
                    )


def test_ruff_lints_and_formats_notebooks_like_the_code():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed: pip install -e '.[test]'"
    check = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, f"ruff check:\n{check.stdout[-3000:]}"
    fmt = subprocess.run([ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, f"ruff format --check (run `ruff format .`):\n{fmt.stdout[-3000:]}"
    listed = subprocess.run([ruff, "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True).stdout
    assert all(str(p) in listed for p in NOTEBOOKS), "ruff does not read the notebooks"


DEFAULT_SOURCES = [
    ("02_unet", "lib.segmentation.training", "DEFAULTS"),
    ("04_simvp", "lib.forecasting.training", "DEFAULTS"),
    ("05_finetune", "lib.forecasting.training", "FT_DEFAULTS"),
]


@pytest.mark.parametrize("stem,module,name", DEFAULT_SOURCES, ids=[s for s, _, _ in DEFAULT_SOURCES])
def test_notebook_defaults_equal_the_library_defaults(stem, module, name):
    """scripts/tools/train.py (library defaults) and the notebook (parameters cell) train the same recipe."""
    import importlib

    lib_defaults = getattr(importlib.import_module(module), name)
    nb = parameters(ROOT / "notebooks" / f"{stem}.ipynb")
    shared = set(lib_defaults) & set(nb)
    assert len(shared) >= 5
    differ = {k: (nb[k], lib_defaults[k]) for k in shared if nb[k] != lib_defaults[k]}
    assert not differ, f"{stem}.ipynb vs {module}.{name} (notebook, library): {differ}"


def test_notebook_reading_defaults_equal_the_library_defaults():
    """The parameters cells' limit on bad videos is lib/data/dataset.py's default (written once there)."""
    from lib.data.dataset import MAX_BAD_FRACTION

    assert parameters(NOTEBOOKS[0])["max_bad_fraction"] == MAX_BAD_FRACTION


# --------------------------------------------------------------------------- the set-up cell


def run_setup_cell(cwd, pythonpath="", preimport=False):
    code = ("import lib\n" if preimport else "") + SETUP_CELL.read_text() + "\nprint('LIB', lib.__path__[0])\n"
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def stray_lib(tmp_path):
    (tmp_path / "stray" / "lib").mkdir(parents=True)
    (tmp_path / "stray" / "lib" / "__init__.py").write_text("")
    return tmp_path / "stray"


def test_setup_cell_imports_this_repositorys_lib_from_notebooks(stray_lib):
    proc = run_setup_cell(ROOT / "notebooks", pythonpath=str(stray_lib))  # a stray `lib` on the path loses
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("LIB ")[1].strip() == str(ROOT / "lib")


def test_setup_cell_names_a_foreign_lib_already_imported(stray_lib):
    proc = run_setup_cell(ROOT / "notebooks", pythonpath=str(stray_lib), preimport=True)
    assert proc.returncode != 0
    assert "not from this repository" in proc.stderr and str(stray_lib / "lib") in proc.stderr


def test_setup_cell_outside_a_clone_says_what_to_do(tmp_path):
    proc = run_setup_cell(tmp_path)
    assert proc.returncode != 0 and "set REPO_URL" in proc.stderr and not (tmp_path / "futureseg").exists()
