"""How the pipeline reads a dataset, written once: the data root and the settings of its packed caches.

    source = DataSource(data_root, policy=policy, cache_dir=cache_dir, max_bad_fraction=max_bad_fraction)
    val = source.split("val")

Every notebook builds one from its common parameters and hands it to the trainers (``train_unet``,
``train_simvp``, ``finetune_simvp``), so the packing policy, the cache's place and the limit on bad videos
cannot differ between the notebook and the code it calls. What each setting does is
``lib.data.dataset.load_split``'s business.
"""

from dataclasses import dataclass

from lib.data.dataset import load_split


@dataclass(frozen=True)
class DataSource:
    root: str
    policy: str = "skip"  # bad train/val/unlabeled videos: skip, pad or raise
    cache_dir: str | None = None  # None: <root>/.cache (or the project's .cache/ when root is read-only)
    max_bad_fraction: float | None = None  # None: load_split's default

    def split(self, name, *, progress=True, rebuild=False):
        """The packed split ``name`` (lib.data.dataset.PackedSplit)."""
        limit = {} if self.max_bad_fraction is None else {"max_bad_fraction": self.max_bad_fraction}
        return load_split(
            self.root, name, policy=self.policy, cache_dir=self.cache_dir, progress=progress, rebuild=rebuild, **limit
        )


def as_source(data):
    """``data`` itself if it is a DataSource, else a DataSource reading the data root ``data`` with the defaults."""
    return data if isinstance(data, DataSource) else DataSource(str(data))
