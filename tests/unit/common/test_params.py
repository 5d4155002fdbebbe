"""lib.common.params: the checks run_all.sh makes before its first notebook, and the parameters each notebook
gets (for the committed profiles: exactly what papermill merged from the profile's files before)."""

import json
import shutil

import pytest
import yaml
from papermill.iorw import read_yaml_file

from lib.common import params
from lib.common.paths import PROJ_ROOT

CELLS = {p.stem: params.notebook_parameters(p) for p in params.notebooks()}
RUNS = [("smoke", None), ("cpu", None), ("full", None), ("full", "params/full-rehearsal.yaml")]


@pytest.mark.parametrize("profile,extra", RUNS, ids=[f"{p}+{e}" if e else p for p, e in RUNS])
def test_each_notebook_gets_what_papermill_merged_from_the_profile(profile, extra):
    """Same keys, values, types and order as papermill's own merge of `-f common -f NN -f extra -p run_dir -p
    profile`, less the keys the notebook does not define, and the same again once written to and read from YAML."""
    merged, stems, notes = params.check_run(profile, "runs/x", extra=extra)
    assert stems == list(CELLS) and not notes
    for stem, cell in CELLS.items():
        before = {}
        for f in [f"params/{profile}/common.yaml", f"params/{profile}/{stem}.yaml", extra]:
            if f and (PROJ_ROOT / f).is_file():
                before.update(read_yaml_file(str(PROJ_ROOT / f)) or {})
        before.update(run_dir="runs/x", profile=profile)
        expected = {k: v for k, v in before.items() if k in cell or k in ("run_dir", "profile")}
        if extra is None:
            assert expected == before, f"{profile}/{stem}: a profile file names a key the notebook lacks"
        assert repr(merged[stem]) == repr(expected), stem
        written = yaml.load(yaml.safe_dump(merged[stem], sort_keys=False), Loader=params.Loader)
        assert repr(written) == repr(merged[stem]), stem


def test_unknown_key_of_an_extra_file_names_the_file_the_key_and_the_closest(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("epcohs: 3\nn_train: 2\nwidht: 8\n")
    with pytest.raises(params.ParamError) as e:
        params.check_run("smoke", tmp_path / "run", extra=extra)
    lines = str(e.value).splitlines()
    assert lines == [
        f"{extra}: unknown key 'epcohs': no notebook defines it (closest: epochs)",
        f"{extra}: unknown key 'widht': no notebook defines it (closest: width)",
    ]


def test_a_key_for_some_notebooks_reaches_only_those(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("n_train: 2\nepochs: 1\n")
    merged, _, _ = params.check_run("smoke", "r", extra=extra)
    assert merged["00_synthetic_data"]["n_train"] == 2 and "epochs" not in merged["00_synthetic_data"]
    assert merged["02_unet"]["epochs"] == 1 and "n_train" not in merged["02_unet"]


@pytest.fixture
def profile_root(tmp_path):
    """A project root with the real notebooks and a profile `p` copied from smoke."""
    shutil.copytree(PROJ_ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(PROJ_ROOT / "params" / "smoke", tmp_path / "params" / "p")
    return tmp_path


def test_a_notebook_file_with_a_key_its_notebook_lacks_is_an_error(profile_root):
    f = profile_root / "params" / "p" / "02_unet.yaml"
    f.write_text(f.read_text() + "n_train: 3\n")  # notebook 00's key
    (profile_root / "params" / "p" / "02_unnet.yaml").write_text("epochs: 1\n")
    with pytest.raises(params.ParamError) as e:
        params.check_run("p", "r", root=profile_root)
    msg = str(e.value)
    assert f"{f}: unknown key 'n_train': notebook 02_unet does not define it" in msg
    assert f"{profile_root / 'params' / 'p' / '02_unnet.yaml'}: names no notebook (notebooks: 00_synthetic_data" in msg


def test_a_common_file_that_is_not_a_mapping_is_an_error(profile_root):
    common = profile_root / "params" / "p" / "common.yaml"
    common.write_text("- data_root\n")
    with pytest.raises(params.ParamError, match="common.yaml: holds a list"):
        params.check_run("p", "r", root=profile_root)


@pytest.mark.parametrize(
    "default,value,expected",
    [
        (0.001, 0.002, 0.002),
        (0.001, 1, 1),  # an int as it is
        (0.001, "1e-4", 0.0001),  # YAML 1.1 reads 1e-4 as a string
        (6, 12, 12),
        (True, False, False),
        ("argmax", "vote_video", "vote_video"),
        (["val"], ["val", "hidden"], ["val", "hidden"]),
        (None, [48, 64], [48, 64]),
        (None, "anything", "anything"),
    ],
)
def test_values_that_fit_the_default(default, value, expected):
    got, note = params.convert("k", value, default, "f.yaml")
    assert repr(got) == repr(expected)
    assert (note is not None) == (isinstance(value, str) and isinstance(default, float))


@pytest.mark.parametrize(
    "default,value",
    [(0.001, "fast"), (0.001, True), (6, 2.5), (6, 3.0), (6, "12"), (6, True), (True, 1), (True, "yes"),
     ("argmax", 3), (["val"], "val"), (6, [1, 2])],
)  # fmt: skip
def test_values_of_the_wrong_type_name_the_key_and_the_file(default, value):
    with pytest.raises(params.ParamError, match=r"^f\.yaml: k: .* is a \w+; the parameter takes "):
        params.convert("k", value, default, "f.yaml")


def test_a_float_string_is_converted_with_a_note(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("lr: 1e-4\n")
    merged, _, notes = params.check_run("smoke", "r", extra=extra)
    assert merged["02_unet"]["lr"] == merged["05_finetune"]["lr"] == 0.0001
    assert notes == [f"{extra}: lr: '1e-4' read as the float 0.0001"]


STEMS = list(CELLS)


@pytest.mark.parametrize(
    "only",
    ["2 3", "02 03", "02,03", "2,3", " 2 , 03 ", "02_unet 03_label", "03_label.ipynb,2", "3\t2", "02 2 03"],
)
def test_only_spellings(only):
    assert params.select(only, STEMS) == ["02_unet", "03_label"]


def test_no_only_selects_every_notebook():
    assert params.select(None, STEMS) == params.select("", STEMS) == STEMS


@pytest.mark.parametrize("only", ["9", "2 09", "002", "unet", "02_unnet", ",", " "])
def test_only_that_names_no_notebook_lists_the_notebooks(only):
    with pytest.raises(params.ParamError) as e:
        params.select(only, STEMS)
    assert f"ONLY={only!r}" in str(e.value) and " ".join(STEMS) in str(e.value)


def test_the_check_command_writes_nothing_when_it_fails(tmp_path, capsys):
    extra = tmp_path / "extra.yaml"
    extra.write_text("epcohs: 3\n")
    assert params.main(["smoke", str(tmp_path / "run"), "--extra", str(extra)]) == 2
    assert not (tmp_path / "run").exists()
    assert "stopped before running any notebook" in capsys.readouterr().err
    assert params.main(["smoke", str(tmp_path / "run"), "--only", "2,3"]) == 0
    assert capsys.readouterr().out.split() == ["02_unet", "03_label"]
    assert sorted(p.name for p in (tmp_path / "run" / "parameters").iterdir()) == ["02_unet.yaml", "03_label.yaml"]


def test_a_parameters_cell_of_more_than_literals_is_an_error(tmp_path):
    nb = tmp_path / "00_x.ipynb"
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "epochs = 3\nlr = 1 / 3\n"}
    nb.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(params.ParamError, match="parameter lr is not a plain literal"):
        params.notebook_parameters(nb)
    cell["source"] = "epochs = 3\nprint(epochs)\n"
    nb.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(params.ParamError, match="plain `name = literal` lines only"):
        params.notebook_parameters(nb)
