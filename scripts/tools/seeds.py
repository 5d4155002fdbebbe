"""Rerun the headline comparisons over several seeds: is a difference larger than the seed-to-seed spread?

    python scripts/tools/seeds.py cpu --out runs/seeds-cpu                   # seeds 0 1 2 of the cpu profile
    python scripts/tools/seeds.py smoke --out /tmp/seeds --params my.yaml    # more parameters (e.g. data_root)
    python scripts/tools/seeds.py cpu --out runs/seeds-cpu --collect         # only summarize the finished runs

Each seed runs the notebooks through run_all.sh into ``<out>/seed<N>`` with ``seed: N`` (a RUN_PARAMS file,
``<out>/seed<N>.yaml``, after the ``--params`` files). The dataset is made once, by the first seed's run (notebook
00); the later seeds run notebooks 02-07 on it, so the seeds vary the training (initialisation, batches,
augmentation), not the data. A seed whose notebook 07 metrics exist is not run again.

``<out>/seeds.json`` then holds, for each headline comparison of notebook 07 (``val_diff_ci``: objects vs SimVP,
fine-tuned vs SimVP, learned vs physics, pipeline vs copy frame 11), each seed's difference and 95% paired
bootstrap interval over val videos, their mean and standard deviation over seeds, and how many seeds' intervals
exclude 0; and for each stage of the val table its IoU per seed, mean and standard deviation.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
LATER = "02 03 04 05 06 07"  # the notebooks a later seed reruns (00 made the data, 01 only looks at it)


def plan(out, seeds, params=()):
    """[(seed, run folder, RUN_PARAMS values, ONLY or None)]: the runs, in order."""
    extra = {}
    for f in params:
        extra.update(yaml.safe_load(Path(f).read_text()) or {})
    runs = []
    for i, seed in enumerate(seeds):
        run = Path(out) / f"seed{seed}"
        values = {**extra, "seed": int(seed)}
        runs.append((int(seed), run, values, None if i == 0 else LATER))
    return runs


def run_seed(profile, out, seed, run, values, only):
    if (run / "metrics" / "07_predict_hidden.json").is_file():
        print(f"[seeds] seed {seed}: {run} is complete, not run again", flush=True)
        return
    params = Path(out) / f"seed{seed}.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(yaml.safe_dump(values))
    env = {**os.environ, "RUN_PARAMS": str(params.resolve())}
    if only:
        env["ONLY"] = only
    print(f"[seeds] seed {seed}: run_all.sh {profile} {run}" + (f" (ONLY={only})" if only else ""), flush=True)
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), profile, str(run)], cwd=ROOT, env=env)
    if proc.returncode:
        sys.exit(f"[seeds] seed {seed} failed (exit {proc.returncode}); see {run}/logs")


def _spread(values):
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def summarize(runs):
    """{"seeds", "comparisons": {name: {...}}, "stages": {name: {...}}} from the runs' notebook 07 metrics."""
    metrics = {}
    for seed, run in runs:
        path = Path(run) / "metrics" / "07_predict_hidden.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: seed {seed} has no notebook 07 metrics (run it first)")
        metrics[seed] = json.loads(path.read_text())
    seeds = list(metrics)
    comparisons = {}
    for name in sorted({k for m in metrics.values() for k in m.get("val_diff_ci", {})}):
        per = {s: m["val_diff_ci"][name] for s, m in metrics.items() if name in m.get("val_diff_ci", {})}
        diffs = [d["diff"] for d in per.values()]
        comparisons[name] = {
            "a": next(iter(per.values())).get("a"),
            "b": next(iter(per.values())).get("b"),
            "per_seed": {str(s): {"diff": d["diff"], "ci": d["ci"]} for s, d in per.items()},
            **_spread(diffs),
            "seeds_ci_above_0": sum(d["ci"][0] > 0 for d in per.values()),
            "seeds_ci_below_0": sum(d["ci"][1] < 0 for d in per.values()),
            "seeds": len(per),
        }
    stages = {}
    for name in sorted({k for m in metrics.values() for k in m.get("val_table", {})}):
        per = {s: m["val_table"][name] for s, m in metrics.items() if name in m.get("val_table", {})}
        stages[name] = {"per_seed": {str(s): v for s, v in per.items()}, **_spread(list(per.values()))}
    return {"seeds": seeds, "comparisons": comparisons, "stages": stages}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", help="parameter profile (params/<profile>/)")
    ap.add_argument("--out", required=True, help="folder of the runs (<out>/seed<N>) and of seeds.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--params", action="append", default=[], help="more YAML parameters for every run")
    ap.add_argument("--collect", action="store_true", help="only summarize runs already made")
    a = ap.parse_args(argv)
    runs = plan(a.out, a.seeds, a.params)
    if not a.collect:
        for seed, run, values, only in runs:
            run_seed(a.profile, a.out, seed, run, values, only)
    summary = summarize([(seed, run) for seed, run, _, _ in runs])
    path = Path(a.out) / "seeds.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"[seeds] {len(summary['seeds'])} seeds -> {path}")
    for name, c in summary["comparisons"].items():
        cis = "  ".join(
            f"s{s} {d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" for s, d in c["per_seed"].items()
        )
        print(f"{name:34s} mean {c['mean']:+.4f} sd {c['sd']:.4f} | {cis}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
