"""prepare_dataset: generate only when asked, reuse, and refuse synthetic data made with other generator settings."""

import json
from dataclasses import asdict

import pytest

from lib.data import prepare, scene

COUNTS = {"train": 1, "val": 1}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep") / "data"
    out = prepare.prepare_dataset(root, COUNTS, seed=0, workers=1, progress=False, generate=True)
    assert out["action"] == "generated" and out["counts"] == COUNTS
    return root


def test_reuses_complete_data(root):
    marker = json.loads((root / prepare.MARKER).read_text())
    assert marker["config"] == json.loads(json.dumps(asdict(scene.make_config())))  # every setting, defaults too
    assert (
        prepare.prepare_dataset(root, COUNTS, seed=0, workers=1, progress=False, generate=True)["action"] == "existing"
    )


def test_other_overrides_or_seed_refused(root):
    with pytest.raises(ValueError, match="SYNTHETIC.json"):
        prepare.prepare_dataset(root, COUNTS, seed=1, workers=1, progress=False, generate=True)
    with pytest.raises(ValueError, match="SYNTHETIC.json"):
        prepare.prepare_dataset(root, COUNTS, seed=0, workers=1, progress=False, generate=True, friction=0.2)


def test_data_from_an_older_generator_refused(root, tmp_path):
    """Defaults changed by a newer lib/data/scene.py: reusing the old videos would mix two renderings."""
    marker = root / prepare.MARKER
    saved = marker.read_text()
    old = json.loads(saved)
    old["config"]["metal_sky"] = [0.15, 0.85]
    marker.write_text(json.dumps(old))
    try:
        with pytest.raises(ValueError, match=r"SYNTHETIC\.json.*older version of the generator.*metal_sky"):
            prepare.prepare_dataset(root, COUNTS, seed=0, workers=1, progress=False, generate=True)
        videos = sorted(p.name for p in (root / "train").iterdir())
        assert videos == ["video_00000"]  # nothing deleted
    finally:
        marker.write_text(saved)


def test_real_data_left_alone(tmp_path):
    (tmp_path / "train" / "video_00000").mkdir(parents=True)
    assert prepare.prepare_dataset(tmp_path, COUNTS, progress=False, generate=True)["action"] == "existing"
    assert not (tmp_path / prepare.MARKER).exists()


def test_counts_that_overlap_the_next_split_are_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "d"
    with pytest.raises(ValueError, match="n_train=1001 .*val"):
        prepare.prepare_dataset(root, {"train": 1001, "val": 1}, seed=0, workers=1, progress=False, generate=True)
    assert not (root / (prepare.MARKER + ".partial")).exists() and not (root / "train").exists()


def test_real_layout_without_generate_is_used(tmp_path):
    for split in prepare.REQUIRED:
        (tmp_path / split / "video_00000").mkdir(parents=True)
    assert prepare.prepare_dataset(tmp_path, COUNTS, progress=False)["action"] == "existing"


@pytest.mark.parametrize(
    "layout, says",
    [
        (None, "does not exist"),  # a typo, an unmounted drive
        ((), r"has no video_N folders in train/, val/, hidden/"),  # an empty folder
        (("train", "val"), r"has no video_N folders in hidden/"),
    ],
)
def test_missing_data_stops_instead_of_generating(tmp_path, layout, says):
    root = tmp_path / "data"
    if layout is not None:
        root.mkdir()
        for split in layout:
            (root / split / "video_00000").mkdir(parents=True)
    with pytest.raises(prepare.DataMissing, match=rf"data_root {root} {says}.*generate: true"):
        prepare.prepare_dataset(root, COUNTS, seed=0, workers=1, progress=False)
    assert not (root / "train" / "video_00000" / "mask.npy").exists()  # nothing generated
    assert not (root / (prepare.MARKER + ".partial")).exists()


def test_interrupted_generation_is_completed_only_when_asked(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / (prepare.MARKER + ".partial")).write_text("{}")
    with pytest.raises(prepare.DataMissing, match="generation was interrupted"):
        prepare.prepare_dataset(root, COUNTS, progress=False)
