"""Videos/s reading whole videos from PNG files versus from the packed memory-mapped cache.

python scripts/bench/bench_data.py --data-root data/embedded --split train --videos 50
"""

import argparse
import time

import numpy as np

from lib.common.paths import resolve
from lib.data import dataset as data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="data/embedded")
    ap.add_argument("--split", default="train")
    ap.add_argument("--videos", type=int, default=50)
    a = ap.parse_args()
    videos = data.list_videos(resolve(a.data_root) / a.split)[: a.videos]
    t0 = time.perf_counter()
    packed = data.load_split(a.data_root, a.split, progress=False)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _, path in videos:
        data.read_video(path, a.split)
    png = len(videos) / (time.perf_counter() - t0)
    order = np.random.default_rng(0).permutation(len(videos))
    t0 = time.perf_counter()
    for i in order:  # random access, whole videos, copied out of the memmap as a DataLoader would
        np.array(packed.frames[i])
        if packed.masks is not None:
            np.array(packed.masks[i])
    cache = len(videos) / (time.perf_counter() - t0)
    print(f"split {a.split}: {len(videos)} videos (cache load/build {build:.1f}s)")
    print(f"PNG decoding : {png:8.1f} videos/s")
    print(f"packed cache : {cache:8.1f} videos/s")
    print(f"speed-up     : {cache / png:8.1f}x")


if __name__ == "__main__":
    main()
