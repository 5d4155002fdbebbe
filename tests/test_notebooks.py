"""Notebook hygiene, parameter files, and the smoke pipeline through run_all.sh and papermill."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILES = sorted(p.name for p in (ROOT / "params").iterdir() if p.is_dir())
REQUIRED = {"profile", "data_root", "run_dir", "figures_dir", "seed"}  # run_all.sh and common.yaml pass these


def parameters_cell(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{nb_path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    return cells[0]


def parameter_names(nb_path):
    tree = ast.parse(parameters_cell(nb_path).source)
    names = set()
    for node in tree.body:
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"{nb_path.name}: parameters cell holds plain assignments only"
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names |= {t.id for t in targets}
        ast.literal_eval(node.value)  # plain literals, nothing derived
    inferred = set(papermill.inspect_notebook(str(nb_path)))  # what papermill itself can parse and override
    assert names == inferred, f"{nb_path.name}: papermill cannot parse parameters {sorted(names - inferred)}"
    return names


def test_notebooks_exist_and_are_numbered():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_tagged(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{nb_path.name} is committed with outputs: run nbstripout"
    assert "import lib" in nb.cells[0].source, f"{nb_path.name}: first cell must install the repo on Colab"
    assert REQUIRED <= parameter_names(nb_path), f"{nb_path.name}: parameters cell lacks {REQUIRED - parameter_names(nb_path)}"


@pytest.mark.parametrize("profile", PROFILES)
def test_parameter_files_name_only_defined_keys(profile):
    folder = ROOT / "params" / profile
    stems = {p.stem: p for p in NOTEBOOKS}
    for f in sorted(folder.glob("*.yaml")):
        values = yaml.safe_load(f.read_text()) or {}
        assert isinstance(values, dict) and all(not isinstance(v, dict) for v in values.values()), f"{f}: keep it flat"
        targets = list(stems.values()) if f.stem == "common" else [stems.get(f.stem)]
        assert targets[0] is not None, f"{f}: no notebook named {f.stem}.ipynb"
        for nb in targets:
            unknown = set(values) - parameter_names(nb)
            assert not unknown, f"{f} names {sorted(unknown)}, which {nb.name}'s parameters cell does not define"


def test_parameter_check_catches_unknown_key(tmp_path):
    nb = NOTEBOOKS[0]
    assert "not_a_parameter" not in parameter_names(nb)


# --------------------------------------------------------------------------- the smoke pipeline

@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """run_all.sh smoke, with data, figures and the run folder in a temporary directory."""
    tmp = tmp_path_factory.mktemp("smoke")
    over = tmp / "override.yaml"
    over.write_text(yaml.safe_dump({"data_root": str(tmp / "data"), "figures_dir": str(tmp / "figures")}))
    env = {**os.environ, "RUN_PARAMS": str(over), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "smoke", str(tmp / "run")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"run_all.sh smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return tmp, proc.stdout


def metrics(run, name):
    return json.loads((run / "metrics" / f"{name}.json").read_text())


def test_run_all_smoke_runs_every_notebook(smoke_run):
    tmp, out = smoke_run
    run = tmp / "run"
    for nb in NOTEBOOKS:
        assert (run / "notebooks" / nb.name).is_file() and (run / "logs" / f"{nb.stem}.log").is_file()
        assert (run / "metrics" / f"{nb.stem}.json").is_file(), f"{nb.stem} wrote no metrics"
    rows = (run / "timings.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[0] for r in rows] == [nb.stem for nb in NOTEBOOKS]
    assert all(r.endswith("ok") for r in rows) and "all done" in out


def test_notebook_00_generated_and_packed(smoke_run):
    tmp, _ = smoke_run
    m = metrics(tmp / "run", "00_synthetic_data")
    smoke = yaml.safe_load((ROOT / "params/smoke/00_synthetic_data.yaml").read_text())
    assert m["action"] == "generated"
    assert m["counts"] == {"train": smoke["n_train"], "val": smoke["n_val"], "unlabeled": smoke["n_unlabeled"],
                           "hidden": smoke["n_hidden"]}
    for split in ("train", "val", "unlabeled", "hidden"):
        assert (tmp / "data" / ".cache" / split / "meta.json").is_file()
    assert (tmp / "figures" / "00_samples.png").stat().st_size > 10_000
    assert 0.0 <= m["val_summary"]["copy_frame_iou"] <= 1.0


def test_run_all_stops_at_first_failure(smoke_run, tmp_path):
    tmp, _ = smoke_run
    over = tmp_path / "bad.yaml"
    over.write_text(yaml.safe_dump({"data_root": str(tmp / "data"), "policy": "not-a-policy"}))
    env = {**os.environ, "RUN_PARAMS": str(over), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "smoke", str(tmp_path / "run")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "FAILED: 00_synthetic_data" in proc.stderr
    assert not (tmp_path / "run" / "notebooks" / "01_explore.ipynb").exists()


def test_notebook_01_figures_and_metrics(smoke_run):
    tmp, _ = smoke_run
    m = metrics(tmp / "run", "01_explore")
    assert m["figures"] and all((tmp / "figures" / Path(f).name).is_file() for f in m["figures"])
    assert 0.0 <= m["copy_frame_iou_val"] <= 1.0


def smoke_n(key):
    return yaml.safe_load((ROOT / "params/smoke/00_synthetic_data.yaml").read_text())[key]


def test_notebooks_02_03_unet_and_labels(smoke_run):
    tmp, _ = smoke_run
    run = tmp / "run"
    m2 = metrics(run, "02_unet")
    assert 0.0 <= m2["val_iou_all_frames"] <= 1.0 and (run / "unet" / "best.pt").is_file()
    assert (run / "unet" / "log.csv").read_text().startswith("epoch")
    for name in ("02_unet_curves", "02_unet_per_class_iou", "02_unet_confusion", "02_unet_qualitative"):
        assert (tmp / "figures" / f"{name}.png").is_file()
    m3 = metrics(run, "03_label")
    import numpy as np
    for split, frames in (("train", 22), ("val", 22), ("unlabeled", 22), ("hidden", 11)):
        labels = np.load(run / "labels" / f"{split}.npy")
        ids = np.load(run / "labels" / f"{split}.ids.npy")
        assert labels.shape == (len(ids), frames, 160, 240) and labels.dtype == np.uint8 and labels.max() < 49
        assert not (run / "labels" / f"{split}.partial.npy").exists()
        first = run / "labels" / "npy" / split / f"video_{ids[0]:05d}" / "mask.npy"
        assert np.array_equal(np.load(first), labels[0])  # write_mask_npy: true in the smoke profile
    assert set(m3["baselines"]) >= {"copy frame 11 (true mask)", "copy frame 11 (U-Net mask)"}
    # 02 labelled val with its best checkpoint while scoring it; 03 reused those labels
    assert m2["labelling_frames_per_s"] > 0 and m3["labelling"]["val"]["labelled"] == 0
    assert m3["labelling"]["hidden"]["labelled"] == smoke_n("n_hidden")
    assert m3["frames_per_s"] > 0


def test_notebooks_04_05_simvp_and_finetune(smoke_run):
    tmp, _ = smoke_run
    run = tmp / "run"
    m4 = metrics(run, "04_simvp")
    assert (run / "simvp" / "best.pt").is_file() and "SimVP rollout (U-Net masks in)" in m4["val_table"]
    assert (tmp / "figures" / "04_simvp_rollouts.png").is_file()
    m5 = metrics(run, "05_finetune")
    assert set(m5["histories"]) == {"ce", "ce+jaccard"} and Path(m5["checkpoint"]).is_file()
    assert (tmp / "figures" / "05_schedule.png").is_file()


def test_notebook_06_objects(smoke_run):
    import json

    tmp, _ = smoke_run
    run = tmp / "run"
    m = metrics(run, "06_objects")
    assert {"constant velocity", "constant velocity + friction", "physics (floor + collisions)"} <= set(m["val_table"])
    assert any(k.startswith("learned") for k in m["val_table"])
    assert json.loads((run / "objects" / "selected.json").read_text())["name"] == m["chosen"]
    for name in ("06_trajectories", "06_objects_failures"):
        assert (tmp / "figures" / f"{name}.png").is_file()


def test_notebook_07_submission_contract(smoke_run):
    import torch
    from lib.pipeline import check_submission

    tmp, _ = smoke_run
    m = metrics(tmp / "run", "07_predict_hidden")
    smoke = yaml.safe_load((ROOT / "params/smoke/00_synthetic_data.yaml").read_text())
    sub = torch.load(m["submission"], weights_only=True)
    check_submission(sub, smoke["n_hidden"])
    assert sub["ids"].tolist() == [15000 + i for i in range(smoke["n_hidden"])]
    assert 0.0 <= m["hidden_iou"] <= 1.0
    assert {"copy frame 11 (U-Net mask)", "SimVP fine-tuned (notebook 05)", "U-Net on true frame 22 (ceiling)",
            "combined: objects + confident SimVP fill (cross-validated)"} <= set(m["val_table"])
    assert m["unet_masks"] == "labels"  # the U-Net masks of notebook 03, made by the same checkpoint
    assert m["combine_threshold"] in (0.5, 0.7, 0.9, 0.95, 0.99, 1.0)
    assert m["predictor"] in ("simvp", "objects", "combined")
