"""lib.common.run.RunFolder: the named places of a run folder."""

import pytest

from lib.common.run import RunFolder


def test_places_are_folders_of_the_run_created_on_first_use(tmp_path):
    run = RunFolder(tmp_path / "r")
    assert not (tmp_path / "r").exists()
    for name in ("unet", "labels", "simvp", "objects", "metrics", "figures"):
        place = getattr(run, name)
        assert place == tmp_path / "r" / name and place.is_dir()
    assert run.unet_checkpoint == tmp_path / "r" / "unet" / "best.pt"
    assert run.simvp_checkpoint == tmp_path / "r" / "simvp" / "best.pt"
    assert run.finetune("ss+iou") == tmp_path / "r" / "finetune_ss_iou" and run.finetune("ss+iou").is_dir()
    f = run.file("a", "b.json")
    assert f == tmp_path / "r" / "a" / "b.json" and f.parent.is_dir() and not f.exists()


def test_metrics_round_trip_and_a_missing_notebook_is_named(tmp_path):
    run = RunFolder(tmp_path)
    path = run.save_metrics("06_objects", {"iou": 0.5, "rows": [1, 2]})
    assert path == tmp_path / "metrics" / "06_objects.json"
    assert run.load_metrics("06_objects") == {"iou": 0.5, "rows": [1, 2]}
    with pytest.raises(FileNotFoundError, match="07_predict_hidden"):
        run.load_metrics("07_predict_hidden")


def test_relative_run_folders_resolve_from_the_project_root():
    from lib.common.paths import PROJ_ROOT

    assert RunFolder("runs/x").root == PROJ_ROOT / "runs" / "x"


def test_paths_are_stored_relative_to_the_run_folder(tmp_path):
    """A run file stores paths inside the run relative to it, so a copied or moved run folder uses its own files."""
    run = RunFolder(tmp_path / "run")
    stored = run.relative(run.simvp_checkpoint)
    assert stored == "simvp/best.pt"
    moved = RunFolder(tmp_path / "moved")
    assert moved.path(stored) == tmp_path / "moved" / "simvp" / "best.pt"
    outside = tmp_path / "elsewhere" / "best.pt"
    assert run.relative(outside) == str(outside) and run.path(str(outside)) == outside  # older runs: absolute
