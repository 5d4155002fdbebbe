"""Generation speed of the synthetic dataset: videos/s for a few worker counts and render scales.

python scripts/bench/bench_synth.py --videos 60 --workers 1 2 --supersample 2 1
"""

import argparse
import shutil
import tempfile
import time

from lib.data.synth import generate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40, help="train videos per measurement")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--supersample", type=int, nargs="+", default=[2])
    args = ap.parse_args()
    for ss in args.supersample:
        for w in args.workers:
            root = tempfile.mkdtemp(prefix="bench_synth_")
            try:
                t0 = time.time()
                res = generate(root, counts={"train": args.videos}, workers=w, progress=False, supersample=ss)
                wall = time.time() - t0
            finally:
                shutil.rmtree(root, ignore_errors=True)
            print(
                f"supersample={ss} workers={w}: {res['videos_per_s']:.2f} videos/s "
                f"({args.videos} videos in {wall:.1f} s with start-up; 1500 videos ~ {1500 / res['videos_per_s'] / 60:.1f} min)"
            )


if __name__ == "__main__":
    main()
