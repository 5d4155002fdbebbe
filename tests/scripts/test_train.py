"""scripts/tools/train.py, run as a user runs it: a key it does not know or a value of the wrong type stops it
before training, and it says which data_root it uses and where that came from. The data roots here do not
exist, so a run that gets as far as training stops at once (it would otherwise train on data/embedded)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "scripts" / "tools" / "train.py"


def train(*args):
    cmd = [sys.executable, str(TRAIN), *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_typo_in_an_override_stops_before_training(tmp_path):
    out = tmp_path / "out"
    proc = train("unet", "--data-root", tmp_path / "none", "--out", out, "epoch=50", "width=8")
    assert proc.returncode != 0 and not out.exists()
    assert "stopped before training" in proc.stderr, proc.stderr[-2000:]
    assert "override 'epoch=50': unknown key 'epoch'" in proc.stderr and "(closest: epochs" in proc.stderr


def test_a_key_of_no_trainer_and_no_notebook_in_a_params_file_stops(tmp_path):
    params = tmp_path / "mine.yaml"
    params.write_text("epcohs: 50\n")
    proc = train("unet", "--params", params, "--data-root", tmp_path / "none", "--out", tmp_path / "out")
    assert proc.returncode != 0 and not (tmp_path / "out").exists()
    assert f"{params}: unknown key 'epcohs'" in proc.stderr and "epochs" in proc.stderr.split("epcohs")[1]


def test_an_override_of_a_notebook_key_the_trainer_lacks_stops(tmp_path):
    """n_train is notebook 00's: fine in a --params file (listed as left out), refused as an override."""
    proc = train("unet", "--data-root", tmp_path / "none", "--out", tmp_path / "out", "n_train=5")
    assert proc.returncode != 0 and "unknown key 'n_train': the unet trainer does not take it" in proc.stderr


def test_wrong_types_stop_and_a_float_string_is_converted(tmp_path):
    proc = train("unet", "--data-root", tmp_path / "none", "--out", tmp_path / "out", "epochs=2.5", "lr=1e-4")
    assert proc.returncode != 0 and not (tmp_path / "out").exists()
    assert "epochs: 2.5 is a float; the parameter takes an int" in proc.stderr
    assert "lr: '1e-4' read as the float 0.0001" in proc.stdout


def test_says_which_data_root_it_uses_and_where_it_came_from(tmp_path):
    """common.yaml's data_root, a later --data-root flag winning over it; the run then stops on the missing data."""
    common = tmp_path / "common.yaml"
    common.write_text(f"data_root: {tmp_path / 'from-file'}\nseed: 0\npolicy: skip\n")
    proc = train("unet", "--params", common, "--out", tmp_path / "out")
    assert proc.returncode != 0 and "split folder not found" in proc.stderr
    assert f"data_root {tmp_path / 'from-file'} (from {common})" in proc.stdout
    proc = train("unet", "--params", common, "--data-root", tmp_path / "flag", "--out", tmp_path / "out")
    assert f"data_root {tmp_path / 'flag'} (from --data-root)" in proc.stdout


def test_docstring_examples_pass_the_profiles_common_file():
    """Every example command of the docstring that passes a profile's --params also passes its common.yaml."""
    doc = TRAIN.read_text().split('"""')[1].replace("\\\n", " ")
    examples = [line for line in doc.splitlines() if "--params params/" in line]
    assert examples and all("--params params/full/common.yaml" in line for line in examples), examples
