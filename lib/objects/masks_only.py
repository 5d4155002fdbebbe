"""Extra training videos for the learned object model: masks-only synthetic videos generated for it alone.

Object tracks need only masks, so on a synthetic dataset (one with ``SYNTHETIC.json``) the learned model can
learn from cheap videos of frames 0-10 and 21 (``synth.generate_masks``): new ids of the unlabeled range right
after the dataset's own unlabeled videos (never a train, val or hidden video), the dataset's seed and generator
settings, rasterised at ``supersample``. Generated once into ``folder`` and reused (resumable). Real data has no
generator settings: ``why_not(data_root)`` says so, and notebook 06 learns from the U-Net labels of unlabeled instead.

    why_not("data/embedded")                                      # None: they can be generated here
    extra = extra_videos("data/embedded", run.objects, 9700)     # extra.masks: (9700, 22, 160, 240) memmap
    learned.train_dynamics([train.masks, extra.masks], ..., data={"extra": extra.record})
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.common.paths import resolve
from lib.data import synth

NAME = "extra_masks_s{seed}_{first}_{n}.npy"  # notebook 06's file in <run>/objects/


def why_not(data_root):
    """None if masks-only videos of the dataset at ``data_root`` can be generated, else the reason (a sentence):
    they need the generator's record ``SYNTHETIC.json`` (seed and settings), which real data does not have."""
    meta_path = resolve(data_root) / "SYNTHETIC.json"
    if meta_path.is_file():
        return None
    return f"{meta_path} does not exist (real data: no generator seed or settings to make more of its videos)"


@dataclass
class ExtraVideos:
    masks: np.ndarray  # (n, 22, H, W) uint8 memmap; frames 11-20 are zeros
    path: Path
    record: dict  # what the generator wrote next to it: first id, count, seed, settings (a data fingerprint)


def extra_videos(data_root, folder, n, *, supersample=1, workers=2, first=None, name=NAME, required=True):
    """``n`` masks-only videos of the synthetic dataset at ``data_root`` in ``folder`` (module doc), from id
    ``first`` (default: after the dataset's unlabeled videos), in a file ``name`` (formatted with seed, first, n,
    supersample). Without ``SYNTHETIC.json`` an error, or with ``required=False`` seed 0 and default settings."""
    why = why_not(data_root)
    if why and required:
        raise ValueError(f"extra_videos = {n} needs a synthetic dataset: {why}")
    meta = {} if why else json.loads((resolve(data_root) / "SYNTHETIC.json").read_text())
    seed = meta.get("seed", 0)
    if first is None:
        first = synth.extra_first_id(meta.get("counts", {}).get("unlabeled", 0))
    path = resolve(folder) / name.format(seed=seed, first=first, n=n, supersample=supersample)
    synth.generate_masks(path, n, first, seed, workers=workers, **{**meta.get("cfg", {}), "supersample": supersample})
    record = json.loads(Path(f"{path}.json").read_text())
    return ExtraVideos(np.load(path, mmap_mode="r"), path, record)
