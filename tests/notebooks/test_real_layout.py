"""The smoke pipeline on data in the real layout alone (slow tier): the generated smoke data without what the
generator adds to it (``SYNTHETIC.json``, ``hidden_answers.npz``, ``.hidden_truth/``, ``.true_states/``, the
packed cache).

Every profile must run there: notebook 00 uses the data as it is, notebook 06 cannot generate its
``extra_videos`` (no generator settings) and learns from the U-Net labels of unlabeled instead, saying so, and
notebook 07 writes a submission it cannot score.
"""

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import read_metrics, run_all

from lib.data import prepare

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GENERATED_ONLY = ["SYNTHETIC.json", "hidden_answers.npz", ".hidden_truth", ".true_states", ".cache"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-layout")
    smoke = yaml.safe_load((ROOT / "params/smoke/00_synthetic_data.yaml").read_text())
    counts = {s: smoke[f"n_{s}"] for s in ("train", "val", "unlabeled", "hidden")}
    root = tmp / "data"
    prepare.prepare_dataset(root, counts, seed=0, workers=2, progress=False, generate=True)
    for name in GENERATED_ONLY:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    assert sorted(p.name for p in root.iterdir()) == ["hidden", "train", "unlabeled", "val"]
    proc = run_all("smoke", tmp / "run", {"data_root": str(root)})
    assert proc.returncode == 0, (
        f"run_all.sh smoke on real-layout data failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return root, tmp / "run"


def test_smoke_pipeline_runs_on_real_layout_data(real_run):
    root, run = real_run
    rows = (run / "timings.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[0] for r in rows] == [nb.stem for nb in NOTEBOOKS] and all(r.endswith("ok") for r in rows)
    assert read_metrics(run, "00_synthetic_data")["action"] == "existing"  # used as it is, nothing generated
    assert not (root / "SYNTHETIC.json").exists()
    # 06: the smoke profile asks for extra videos; here they cannot be made, the U-Net labels of unlabeled are used
    requested = yaml.safe_load((ROOT / "params/smoke/06_objects.yaml").read_text())["extra_videos"]
    m6 = read_metrics(run, "06_objects")
    assert requested > 0 and m6["extra_videos"]["requested"] == requested and m6["extra_videos"]["used"] == 0
    assert "SYNTHETIC.json" in m6["extra_videos"]["why"]
    assert m6["training_sets"] == ["train (true masks)", "unlabeled (U-Net labels)"]
    assert not list((run / "objects").glob("extra_masks_*"))
    log = (run / "logs" / "06_objects.log").read_text()
    assert "not generated" in log and "U-Net labels of unlabeled instead" in log
    # re-simulation needs masks only: it has its row, or the metrics and the log say why it has none
    resim = m6["resim"]
    assert resim["used"] == ("re-simulation (3-D states, rigid bodies)" in m6["val_table"])
    assert resim["used"] or (resim["why"] and resim["why"] in log)
    # 07: a submission, no hidden score (no hidden_answers.npz)
    m7 = read_metrics(run, "07_predict_hidden")
    assert (run / m7["submission"]).is_file() and m7["hidden_iou"] is None and m7["hidden_ci"] is None
