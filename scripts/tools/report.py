"""The results of a run folder as Markdown and figures: what the README and docs/experiments.md show.

    python scripts/tools/report.py runs/cpu-ref                           # print the tables of a run
    python scripts/tools/report.py runs/cpu-ref --collect results/cpu     # copy its metrics, timings, provenance,
                                                                          # and its figures into figures/
    python scripts/tools/report.py results/cpu --readme README.md         # rewrite the README's results block
    python scripts/tools/report.py --experiments docs/experiments.md      # rewrite the experiments page
    python scripts/tools/report.py results/cpu --readme README.md --experiments docs/experiments.md --check
                                                                          # exit 1 if either differs (a test runs it)

The README's block sits between the two marker lines below; everything in it is rendered from the files of
``results/<profile>/`` (committed), so the README's numbers are the committed run's. ``--collect`` and
``--readme`` also draw the headline figure (``figures/headline.png``: each stage's val IoU with its interval).
The experiments page is rendered from ``results/experiments/index.yaml`` (question, command, decision and result
files of each experiment, written by hand) and the result files it names (written by the scripts).
"""

import sys

from lib import report

if __name__ == "__main__":
    sys.exit(report.main(description=__doc__))
