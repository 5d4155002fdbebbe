"""Comparing runs (notebook 08, lib/compare.py, docs/compare.md).

Fast: lib/compare.py on hand-made run folders (tiny arrays): the parameter diff, the metric table, the paired
difference and its refusals, the curves, the side-by-side data and viewer. Slow: two smoke runs (one full, one a
copy with notebooks 04-07 rerun with another SimVP width), then notebook 08 comparing them through run_all.sh.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import read_metrics, run_all

from lib import compare
from lib.common.metrics import bootstrap_diff_ci, per_video_confusion, stacked_iou
from lib.viz import widgets

ROOT = Path(__file__).resolve().parents[2]
H, W = 8, 12
COMMON = {"profile": "smoke", "data_root": "data/x", "seed": 0, "policy": "skip"}
NOTEBOOKS = ("00_synthetic_data", "02_unet", "04_simvp", "07_predict_hidden")


def square(cid, x, y=2, size=3):
    m = np.zeros((H, W), np.uint8)
    m[y : y + size, x : x + size] = cid
    return m


def tiny_truth(n=6):
    """(ids, true frame-22 masks (n, H, W)): a square of class 5 + i a video."""
    return np.arange(1000, 1000 + n), np.stack([square(5 + i, 1 + i) for i in range(n)])


def shifted(true, dx):
    """The true masks moved dx pixels right: a prediction that is off by dx."""
    return np.roll(true, dx, axis=-1)


def make_run(
    path,
    ids,
    true,
    preds,
    pipeline="objects",
    params=None,
    commit="a" * 40,
    logs=None,
    hidden=(0.5, [0.4, 0.6]),
    reruns=None,
):
    """A run folder as run_all.sh leaves it, made by hand: parameters/, provenance.json, metrics of 02 and 07
    (val_table, val_ci from ``preds`` {stage: (N, H, W)} against ``true``), 07's confusions and predictions,
    training logs ``{folder: [(train_loss, val_iou), ...]}`` and timings."""
    path = Path(path)
    for d in ("parameters", "metrics"):
        (path / d).mkdir(parents=True, exist_ok=True)
    params = params or {}
    for nb in NOTEBOOKS:
        values = {**COMMON, "run_dir": str(path), **params.get("common", {}), **params.get(nb, {})}
        (path / "parameters" / f"{nb}.json").write_text(json.dumps(values))
    prov = {"git_commit": commit, "git_dirty": False, "python": "3.12", "device": "cpu", "packages": {"torch": "2"}}
    if reruns:
        prov["reruns"] = [{"notebooks": r, "git_commit": commit} for r in reruns]
    (path / "provenance.json").write_text(json.dumps(prov))
    cms = {k: per_video_confusion(v, true) for k, v in preds.items()}
    table = {k: float(stacked_iou(cm.sum(0))) for k, cm in cms.items()}
    m7 = {
        "val_table": table,
        "val_ci": {k: [v - 0.1, v + 0.1] for k, v in table.items()},
        "pipeline": pipeline,
        "hidden_iou": hidden[0],
        "hidden_ci": hidden[1],
        "gap_closed": 0.5,
    }
    (path / "metrics" / "07_predict_hidden.json").write_text(json.dumps(m7))
    (path / "metrics" / "02_unet.json").write_text(json.dumps({"val_iou_all_frames": 0.9, "seconds": 12.0}))
    np.savez(
        path / "metrics" / compare.CONFUSIONS,
        ids=ids,
        stages=np.array(list(cms)),
        confusion=np.stack(list(cms.values())).astype(np.int32),
    )
    np.savez(
        path / "metrics" / compare.PREDICTIONS,
        ids=ids,
        stages=np.array(list(preds)),
        masks=np.stack([np.asarray(v, np.uint8) for v in preds.values()]),
    )
    for folder, rows in (logs or {}).items():
        (path / folder).mkdir(exist_ok=True)
        log = [{"epoch": e, "train_loss": t, "val_iou": v, "lr": 1e-3} for e, (t, v) in enumerate(rows, 1)]
        (path / folder / "log.json").write_text(json.dumps(log))
    (path / "timings.tsv").write_text("notebook\tseconds\tstatus\n00_synthetic_data\t3\tok\n07_predict_hidden\t5\tok\n")
    return path


@pytest.fixture
def two_runs(tmp_path):
    """a: objects off by 2 pixels; b: objects off by 1 (better), another SimVP width, seed and commit."""
    ids, true = tiny_truth()
    a = make_run(
        tmp_path / "a" / "run",
        ids,
        true,
        {"copy": shifted(true, 3), "objects": shifted(true, 2)},
        logs={"unet": [(2.0, 0.3), (1.5, 0.5)], "simvp": [(1.0, 0.2)]},
    )
    b = make_run(
        tmp_path / "b" / "run",
        ids,
        true,
        {"copy": shifted(true, 3), "objects": shifted(true, 1), "combined": shifted(true, 1)},
        pipeline="combined",
        params={"common": {"seed": 1}, "04_simvp": {"hid_S": 8}},
        commit="b" * 40,
        logs={"unet": [(2.1, 0.35)], "finetune_ce": [(0.5, 0.4)]},
        reruns=["04 05 06 07"],
    )
    return compare.load_runs([a, b]), ids, true


# ------------------------------------------------------------------------------------------ loading
def test_runs_are_found_named_and_chosen(tmp_path, two_runs):
    runs, _, _ = two_runs
    assert [r.name for r in runs] == ["a/run", "b/run"]  # the shortest distinct trailing parts
    assert compare.short_names(["/x/one", "/y/two"]) == ["one", "two"]
    assert runs[0].pipeline_stage == "objects" and set(runs[1].logs) == {"unet", "finetune_ce"}
    assert runs[0].timings == {"00_synthetic_data": 3.0, "07_predict_hidden": 5.0}
    (tmp_path / "a" / "not-a-run").mkdir()
    assert compare.find_runs(tmp_path / "a") == [tmp_path / "a" / "run"]
    # runs = []: run_dir alone; a folder without metrics is refused, naming it
    assert compare.run_paths([], tmp_path / "a" / "run") == [(tmp_path / "a" / "run").resolve()]
    with pytest.raises(FileNotFoundError, match="not-a-run"):
        compare.run_paths([tmp_path / "a" / "not-a-run"], tmp_path / "a" / "run")
    picker = compare.run_picker([str(runs[1].path), str(runs[0].path)], tmp_path / "out", root=tmp_path / "a")
    assert list(picker.value) == [str(runs[1].path.resolve()), str(runs[0].path.resolve())]
    assert compare.run_picker([], tmp_path / "empty", root=tmp_path / "a").value == ()  # nothing picked yet
    with pytest.raises(ValueError, match="no run folder"):
        compare.load_runs([])


# ------------------------------------------------------------------------------------------ parameters
def test_parameter_diff_names_what_differs(two_runs):
    runs, _, _ = two_runs
    rows = {r["parameter"]: r for r in compare.parameter_diff(runs)}
    assert rows["04_simvp.hid_S"]["values"] == [None, 8]  # one notebook's key: a row of that notebook
    assert rows["seed"]["values"] == [0, 1] and rows["seed"]["notebooks"] == list(NOTEBOOKS)  # one row for all
    assert rows["provenance.git_commit"]["values"] == ["a" * 40, "b" * 40]
    assert rows["provenance.reruns"]["values"] == [None, "04 05 06 07"]
    assert not any("run_dir" in k for k in rows) and "profile" not in rows and "policy" not in rows
    md = compare.diff_markdown(compare.parameter_diff(runs), runs)
    assert "04_simvp.hid_S" in md and "| a/run | b/run |" in md


def test_parameter_diff_of_equal_runs_is_empty(tmp_path):
    ids, true = tiny_truth()
    paths = [make_run(tmp_path / n, ids, true, {"objects": true}) for n in ("x", "y")]
    runs = compare.load_runs(paths)
    assert compare.parameter_diff(runs) == []  # run_dir differs, and is left out
    assert "same parameters" in compare.diff_markdown([], runs)
    assert "One run" in compare.diff_markdown([], runs[:1])


# ------------------------------------------------------------------------------------------ the table
def test_metric_table_lists_every_metric_with_its_interval_and_paired_difference(two_runs):
    runs, _, _ = two_runs
    rows = {r["metric"]: r for r in compare.metric_table(runs, n_boot=200)}
    objects = rows["objects"]
    assert objects["values"][1] > objects["values"][0] and all(len(c) == 2 for c in objects["ci"])
    a, b = (r.confusions() for r in runs)
    expected = bootstrap_diff_ci(b["confusion"][1], a["confusion"][1], n_boot=200)
    assert objects["diff"] == [{"run": "b/run", **expected}] and expected["diff"] > 0
    assert rows["combined"]["values"][0] is None and "diff" not in rows["combined"]  # a stage run a lacks
    pipeline = rows[compare.PIPELINE_ROW]  # each run's own submitted stage, paired across them
    assert pipeline["labels"] == ["objects", "combined"] and pipeline["diff"][0]["diff"] > 0
    assert rows["hidden IoU"]["values"] == [0.5, 0.5] and rows["hidden IoU"]["ci"] == [[0.4, 0.6], [0.4, 0.6]]
    assert rows["U-Net val IoU, all frames"]["values"] == [0.9, 0.9]
    assert rows["wall time, every notebook (s)"]["values"] == [8.0, 8.0]
    assert "SimVP rollout, U-Net masks in (val)" not in rows  # no run has notebook 04's metrics: no row
    md = compare.table_markdown(list(rows.values()), runs)
    assert "b/run − a/run" in md.splitlines()[0] and f"{expected['diff']:+.3f} (" in md


# ------------------------------------------------------------------------------------------ paired difference
def test_paired_difference_of_the_submitted_stages(two_runs):
    runs, ids, true = two_runs
    d = compare.paired_difference(runs[0], runs[1], n_boot=200)
    assert (d["stage_reference"], d["stage_run"], d["videos"]) == ("objects", "combined", len(ids))
    assert d["diff"] == pytest.approx(d["iou_run"] - d["iou_reference"]) and d["diff"] > 0
    assert 0 < d["ci"][0] <= d["ci"][1]  # better on every resample (a percentile interval may miss the point)
    same = compare.paired_difference(runs[0], runs[1], stage="copy", n_boot=200)
    assert same["diff"] == 0.0 and same["ci"] == [0.0, 0.0]  # the same predictions in both runs
    with pytest.raises(compare.RunsNotComparable, match="no val stage 'combined'"):
        compare.paired_difference(runs[0], runs[1], stage="combined")
    done, refused = compare.paired_differences(runs[:1])
    assert done == [] and "pick a second run" in refused[0]


def test_paired_difference_refuses_other_val_videos(tmp_path, two_runs):
    runs, ids, true = two_runs
    other = make_run(tmp_path / "c", ids + 100, true, {"objects": true})
    c = compare.load_run(other)
    with pytest.raises(compare.RunsNotComparable, match=r"different val videos \(6 videos, ids 1000..1005 vs"):
        compare.paired_difference(runs[0], c)
    done, refused = compare.paired_differences([runs[0], c])
    assert done == [] and "0 in common" in refused[0]
    table = compare.metric_table([runs[0], c])
    assert not any("diff" in row for row in table)  # the table still compares, without paired intervals


def test_paired_difference_refuses_other_true_masks(tmp_path, two_runs):
    runs, ids, true = two_runs
    moved = np.roll(true, 1, axis=-2)
    moved[0] = 0  # the same ids, but video 1000's truth differs in its class counts
    c = compare.load_run(make_run(tmp_path / "c", ids, moved, {"objects": moved}))
    with pytest.raises(compare.RunsNotComparable, match="different true masks in 1 of 6 videos"):
        compare.paired_difference(runs[0], c)


def test_paired_difference_pairs_the_same_videos_in_another_order(tmp_path, two_runs):
    runs, ids, true = two_runs
    p = np.array([3, 0, 5, 1, 4, 2])
    b_preds = {"objects": shifted(true, 1)[p]}
    c = compare.load_run(make_run(tmp_path / "c", ids[p], true[p], b_preds))
    assert compare.paired_difference(runs[0], c, n_boot=200) == {
        **compare.paired_difference(runs[0], runs[1], stage="objects", n_boot=200),
        "run": c.name,
    }


def test_a_run_without_notebook_07_files_is_named(tmp_path, two_runs):
    runs, _, _ = two_runs
    (runs[1].path / "metrics" / compare.CONFUSIONS).unlink()
    (runs[1].path / "metrics" / compare.PREDICTIONS).unlink()
    with pytest.raises(compare.RunsNotComparable, match="b/run: no metrics/07_val_confusion.npz"):
        compare.paired_difference(runs[0], runs[1])
    with pytest.raises(compare.RunsNotComparable, match="rerun it, ONLY=07"):
        runs[1].predictions()


# ------------------------------------------------------------------------------------------ curves
def test_spread_lays_each_number_of_the_runs_side_by_side_with_mean_and_sd(two_runs):
    runs, _, _ = two_runs
    a, b = runs
    a.metrics["06_objects"] = {
        "val_table": {"physics": {"true": 0.6, "unet": 0.5}},
        "val_diff_ci": {"learned - physics": {"a": "learned", "b": "physics", "diff": 0.04, "ci": [0.01, 0.07]}},
    }
    b.metrics["06_objects"] = {
        "val_table": {"physics": {"true": 0.7, "unet": 0.6}},
        "val_diff_ci": {"learned - physics": {"a": "learned", "b": "physics", "diff": -0.02, "ci": [-0.05, 0.01]}},
    }
    b.metrics["05_finetune"] = {"histories": {"ce": [{"epoch": 1, "val_iou": 0.3}, {"epoch": 2, "val_iou": 0.25}]}}
    s = compare.spread(runs)
    assert s["runs"] == [a.name, b.name]
    phys = s["stages"]["06_objects: physics / unet"]
    assert phys["per_run"] == {a.name: 0.5, b.name: 0.6}
    assert phys["mean"] == pytest.approx(0.55) and phys["sd"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    objects = s["stages"]["07_predict_hidden: objects"]
    assert objects["per_run"] == {r.name: r.metrics["07_predict_hidden"]["val_table"]["objects"] for r in runs}
    assert objects["ci"] == {r.name: r.metrics["07_predict_hidden"]["val_ci"]["objects"] for r in runs}
    assert "ci" not in phys  # notebook 06's tables here have no interval
    assert s["stages"]["07_predict_hidden: combined"]["per_run"] == {
        b.name: b.metrics["07_predict_hidden"]["val_table"]["combined"]
    }
    assert s["stages"]["05_finetune: ce epoch 2"] == {"per_run": {b.name: 0.25}, "mean": 0.25, "sd": 0.0}
    c = s["comparisons"]["06_objects: learned - physics"]
    assert (c["a"], c["b"], c["above_0"], c["below_0"]) == ("learned", "physics", 1, 0)
    assert c["mean"] == pytest.approx(0.01) and c["per_run"][b.name] == {"diff": -0.02, "ci": [-0.05, 0.01]}
    lines = compare.spread_lines(s)
    assert any(
        line.startswith("06_objects: learned - physics: mean +0.0100") and "above 0 in 1/2" in line for line in lines
    )


def test_curves_overlay_a_line_a_run(two_runs):
    runs, _, _ = two_runs
    fig = compare.curves_figure(runs)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        f"{f}: {k}" for f in ("unet", "simvp", "finetune_ce") for k in ("train loss", "val IoU")
    ]
    assert [len(ax.lines) for ax in axes] == [2, 2, 1, 1, 1, 1]
    assert [tuple(line.get_ydata()) for line in axes[0].lines] == [(2.0, 1.5), (2.1,)]
    assert axes[0].lines[0].get_color() == axes[1].lines[0].get_color() != axes[0].lines[1].get_color()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a/run", "b/run"]
    for r in runs:
        r.logs = {}
    assert compare.curves_figure(runs) is None


# ------------------------------------------------------------------------------------------ side by side
def test_side_by_side_data_and_viewer(two_runs):
    runs, ids, true = two_runs
    order = np.array([5, 4, 3, 2, 1, 0])  # the val split read here, in another order
    side = compare.side_by_side_data(runs[0], runs[1], ids[order], true[order])
    assert np.array_equal(ids[order][side["index"]], side["ids"])
    assert np.array_equal(side["pred_run"], shifted(true, 1)) and np.array_equal(
        side["pred_reference"], shifted(true, 2)
    )
    assert np.allclose(side["diff"], side["iou_run"] - side["iou_reference"])
    assert compare.difference_order([0.1, -0.3, 0.2]) == [1, 2, 0]
    assert compare.difference_order([0.1, -0.3, 0.2], "worst") == [1, 0, 2]
    assert compare.difference_order([0.1, -0.3, 0.2], "best") == [2, 0, 1]
    summary = compare.viewer_summary(side, top=2)
    assert summary["videos"] == 6 and summary["better"] + summary["worse"] <= 6 and len(summary["largest"]) == 2
    with pytest.raises(compare.RunsNotComparable, match="not those the runs were scored against"):
        compare.side_by_side_data(runs[0], runs[1], ids, np.zeros_like(true))
    with pytest.raises(compare.RunsNotComparable, match="not in the val split read here"):
        compare.side_by_side_data(runs[0], runs[1], ids[:3], true[:3])
    assert compare.viewer_data(runs, [], ids, true)[0] is None

    images = np.full((6, H, W, 3), 90, np.uint8)
    diff_order = compare.difference_order(side["diff"])
    v = widgets.pair_viewer(
        images, true, side["pred_reference"], side["pred_run"], ids, diff_order, side["diff"], names=("a", "b")
    )
    assert v.order == diff_order and int(v.video.value) == diff_order[0]
    assert v.panel().shape == (2 * H + 3, 3 * W + 6, 3)  # image | a | b over true | a errors | b errors
    assert "wrong pixels: a" in v.info.value and "b errors" in v.info.value
    v.rank.value = 3
    assert int(v.video.value) == diff_order[3]
    assert v._repr_mimebundle_()["image/png"]  # the static picture of the executed notebook
    fig = compare.per_video_figure(side, ("a", "b"))
    assert len(fig.axes[0].collections[0].get_offsets()) == 6


# ------------------------------------------------------------------------------------------ notebook 08, slow
@pytest.fixture(scope="module")
def two_smoke_runs(smoke_run, tmp_path_factory):
    """The session's smoke run copied as run1, and a copy of it with notebooks 04-07 rerun with another SimVP
    width (hid_S) as run2."""
    smoke, _ = smoke_run
    tmp = tmp_path_factory.mktemp("compare")
    (tmp / "data").symlink_to(smoke / "data")
    data = {"data_root": str(tmp / "data")}
    for name in ("run1", "run2"):
        shutil.copytree(smoke / "run", tmp / name, ignore=shutil.ignore_patterns(".lock"))
    for folder in ["simvp", *(p.name for p in (tmp / "run2").glob("finetune_*"))]:  # else resumed: another config
        shutil.rmtree(tmp / "run2" / folder)
    hid_s = yaml.safe_load((ROOT / "params/smoke/04_simvp.yaml").read_text())["hid_S"] * 2
    proc = run_all("smoke", tmp / "run2", {**data, "hid_S": hid_s}, timeout=900, only="04 05 06 07")
    assert proc.returncode == 0, f"rerun of 04-07 failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return tmp, hid_s


@pytest.mark.slow
def test_notebook_08_in_the_smoke_pipeline_shows_one_run(smoke_run):
    """run_all.sh ran notebook 08 after 07 with runs = []: run_dir alone, and it says a second run is needed."""
    tmp, _ = smoke_run
    m = read_metrics(tmp / "run", "08_compare_runs")
    assert [r["name"] for r in m["runs"]] == ["run"] and m["paired"] == [] and "second run" in m["refused"][0]
    assert m["parameters"] == [] and m["side_by_side"] is None
    assert (tmp / "run" / "figures" / "08_curves.png").stat().st_size > 10_000


@pytest.mark.slow
def test_notebook_08_compares_two_smoke_runs(two_smoke_runs):
    tmp, hid_s = two_smoke_runs
    out = tmp / "compare"
    proc = run_all(
        "smoke", out, {"data_root": str(tmp / "data"), "runs": [str(tmp / "run1"), str(tmp / "run2")]}, only="08"
    )
    assert proc.returncode == 0, f"notebook 08 failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    m = read_metrics(out, "08_compare_runs")
    assert [r["name"] for r in m["runs"]] == ["run1", "run2"] and m["reference"] == "run1"
    rows = {r["parameter"]: r for r in m["parameters"]}
    assert rows["04_simvp.hid_S"]["values"] == [hid_s // 2, hid_s]
    assert rows["provenance.reruns"]["values"][1].startswith("04 05 06 07")
    (d,) = m["paired"]
    assert m["refused"] == [] and d["videos"] == read_metrics(tmp / "run1", "07_predict_hidden")["val_videos"]
    assert d["ci"][0] <= d["ci"][1] and d["diff"] == pytest.approx(d["iou_run"] - d["iou_reference"])
    table = {r["metric"]: r for r in m["table"]}
    assert table[compare.PIPELINE_ROW]["diff"][0]["diff"] == pytest.approx(d["diff"])
    assert "hidden IoU" in table and all(len(r["values"]) == 2 for r in m["table"])
    assert m["side_by_side"]["videos"] == d["videos"] and m["figures"] == ["08_curves.png", "08_per_video.png"]
    for name in m["figures"]:
        assert (out / "figures" / name).stat().st_size > 5_000
    executed = (out / "notebooks" / "08_compare_runs.ipynb").read_text()
    assert "PairViewer" in executed and "image/png" in executed  # the side-by-side viewer and its picture
