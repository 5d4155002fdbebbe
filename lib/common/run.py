"""A run folder as one object: a named place for what each stage writes.

    run = RunFolder("runs/cpu-ref")
    run.unet_checkpoint        # runs/cpu-ref/unet/best.pt (notebook 02)
    run.labels                 # runs/cpu-ref/labels/ (notebook 03)
    run.save_metrics("06_objects", {...})

Every folder is created when it is first asked for; relative paths resolve from the project root
(``lib.common.paths``).
"""

import json
from pathlib import Path

from lib.common.files import save_json
from lib.common.paths import resolve


class RunFolder:
    def __init__(self, run_dir):
        self.root = resolve(run_dir)

    def __repr__(self):
        return f"RunFolder({str(self.root)!r})"

    def folder(self, name):
        """``<run>/<name>/``, created."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, *parts):
        """A file path inside the run folder (its parent created)."""
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path):
        """``path`` as run files store it: relative to the run folder when inside it (so a copied or moved run
        folder is self-contained), absolute otherwise."""
        path = resolve(path)
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def path(self, stored):
        """The path a run file stored (``relative``): inside this run folder when relative. Absolute paths (runs
        written before paths were stored relative) are taken as they are."""
        stored = Path(stored)
        return stored if stored.is_absolute() else self.root / stored

    unet = property(lambda self: self.folder("unet"), doc="notebook 02: the U-Net's checkpoints")
    labels = property(lambda self: self.folder("labels"), doc="notebook 03: U-Net labels per split")
    simvp = property(lambda self: self.folder("simvp"), doc="notebook 04: SimVP's checkpoints")
    objects = property(lambda self: self.folder("objects"), doc="notebook 06: the object predictor")
    metrics = property(lambda self: self.folder("metrics"), doc="every notebook: its numbers as JSON")
    figures = property(lambda self: self.folder("figures"), doc="every notebook: its figures as PNG")

    @property
    def unet_checkpoint(self):
        return self.unet / "best.pt"

    @property
    def simvp_checkpoint(self):
        return self.simvp / "best.pt"

    def finetune(self, name):
        """notebook 05: the folder of one fine-tuning run."""
        return self.folder(f"finetune_{name.replace('+', '_')}")

    def save_metrics(self, notebook, metrics):
        """Write a notebook's metrics as ``<run>/metrics/<notebook>.json`` (what tests and reports read)."""
        path = self.metrics / f"{notebook}.json"
        save_json(path, metrics)
        return path

    def load_metrics(self, notebook):
        path = self.root / "metrics" / f"{notebook}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run notebook {notebook} into {self.root} first")
        return json.loads(path.read_text())
