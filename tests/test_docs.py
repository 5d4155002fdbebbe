"""The README and docs/ quote the committed results, and everything they point at is in the repository and runs.

The results block of the README and the whole of docs/experiments.md are rendered by scripts/tools/report.py;
every relative link of README.md and docs/*.md reaches a file (and its anchor), every script, notebook, parameter
file, test and `lib` module they quote exists, and every `python scripts/...py` command they quote answers --help.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lib import report

ROOT = Path(__file__).resolve().parents[1]

TEXT = [".py", ".md", ".yaml", ".ipynb", ".sh", ".toml", ".yml"]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXPERIMENTS = ROOT / "results" / "experiments"


def tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git clone")
    files = [ROOT / f for f in out.stdout.splitlines() if Path(f).suffix in TEXT or f.endswith("run_all.sh")]
    return [f for f in files if f.is_file() and f.name != "test_docs.py"]


def prose(text):
    """The text without fenced code blocks and inline code (links inside code are not links)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))


def anchors(page):
    """GitHub's anchors of a Markdown page: its headings' slugs and explicit ids."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    out, seen = set(re.findall(r'id="([^"]+)"', text)), {}
    for title in re.findall(r"^#+\s+(.*?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)  # repeated headings get -1, -2, ...
        seen[slug] = seen.get(slug, 0) + 1
    return out


# the README's results block and the experiments page are what report.py renders


def test_readme_results_block_is_the_committed_results():
    assert (ROOT / "results" / "cpu" / "metrics" / "07_predict_hidden.json").is_file(), "results/cpu is not committed"
    assert report.main([str(ROOT / "results" / "cpu"), "--readme", str(ROOT / "README.md"), "--check"]) == 0, (
        "README.md's results block differs from results/cpu: python scripts/tools/report.py results/cpu --readme README.md"
    )


def test_readme_check_fails_when_a_number_changes(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    head, block, tail = report.readme_block(readme)
    number = re.search(r"\d\.\d{3}", block).group(0)
    changed = block.replace(number, f"{float(number) + 0.001:.3f}", 1)
    readme.write_text(f"{head}{report.BEGIN}\n{changed}{report.END}{tail}")
    assert report.main([str(ROOT / "results" / "cpu"), "--readme", str(readme), "--check"]) == 1


def test_experiments_page_is_what_report_renders(tmp_path):
    page = ROOT / "docs" / "experiments.md"
    assert report.main(["--experiments", str(page), "--check"]) == 0, (
        "docs/experiments.md differs from results/experiments: python scripts/tools/report.py --experiments docs/experiments.md"
    )
    changed = tmp_path / "experiments.md"
    changed.write_text(page.read_text().replace("(", "[", 1))
    assert report.main(["--experiments", str(changed), "--check"]) == 1


COMMANDS = (
    "python scripts/experiments/",
    "python scripts/tools/sweep.py sweeps/",
    "cp runs/sweeps/",
    "./run_all.sh ",
    "python scripts/tools/report.py --experiments",
)


def test_every_experiment_result_belongs_to_an_entry():
    index = yaml.safe_load((EXPERIMENTS / "index.yaml").read_text())
    entries = index["experiments"]
    named = [f for e in entries for f in e["files"]]
    assert len(named) == len(set(named)), "a result file is named by two entries"
    on_disk = sorted(p.name for p in EXPERIMENTS.glob("*.json"))
    assert sorted(named) == on_disk, (
        f"results/experiments/index.yaml and the JSON files differ: not in the index {sorted(set(on_disk) - set(named))}, "
        f"missing {sorted(set(named) - set(on_disk))}"
    )
    for e in entries:
        assert {"id", "title", "question", "commands", "files", "table", "decision"} <= set(e), e.get("id")
        assert e["table"] in report.TABLES, f"{e['id']}: no table {e['table']!r} in report.TABLES"
        assert not e.get("figure") or (EXPERIMENTS / e["figure"]).is_file(), e["figure"]
        for f in e["files"]:
            assert any(f in c for c in e["commands"]), f"{e['id']}: no command writes {f}"
        for c in e["commands"]:  # a script, a sweep (and copying its summary), the run it starts from, the page
            assert c.startswith(COMMANDS), f"{e['id']}: {c}"
            sweep = re.match(r"python scripts/tools/sweep.py (\S+)", c)
            assert not sweep or (ROOT / sweep.group(1)).is_file(), f"{e['id']}: {c}: no such sweep file"


def test_results_carry_provenance_and_parameters():
    prov = json.loads((ROOT / "results" / "cpu" / "provenance.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"]) and prov["packages"]["torch"]
    params = sorted(p.stem for p in (ROOT / "results" / "cpu" / "parameters").glob("*.json"))
    ran = [line.split("\t")[0] for line in (ROOT / "results" / "cpu" / "timings.tsv").read_text().splitlines()[1:]]
    assert params == sorted(set(ran))  # every notebook of the reference run (a rerun adds a row), with its parameters
    # the reference run predates notebook 08, which compares runs and adds no number (docs/results.md)
    later = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")} - set(ran)
    assert later <= {"08_compare_runs"}, f"results/cpu lacks notebooks {sorted(later)}: rerun the reference"


# figures


def test_collect_copies_the_figures_and_draws_the_headline(tmp_path):
    run = tmp_path / "runs" / "ref"
    shutil.copytree(ROOT / "results" / "cpu", run)
    (run / "figures").mkdir()
    (run / "figures" / "07_best_and_worst.png").write_bytes(b"png")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "00_stale.png").write_bytes(b"old")
    assert report.main([str(run), "--collect", str(tmp_path / "results" / "cpu")]) == 0
    assert (tmp_path / "results" / "cpu" / "metrics" / "07_predict_hidden.json").is_file()
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["07_best_and_worst.png", "headline.png"], figures
    assert (tmp_path / "figures" / "headline.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_shows_the_committed_headline_figure():
    readme = (ROOT / "README.md").read_text()
    assert "](figures/headline.png)" in readme
    assert (ROOT / "figures" / "headline.png").is_file(), (
        "python scripts/tools/report.py results/cpu --readme README.md"
    )


# the README is a manual, and what it and docs/ point at exists


def test_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move details to docs/"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup/test.sh" in readme and re.search(r"^bash scripts/setup/test\.sh\s*$", ci, flags=re.M)
    assert "./run_all.sh cpu" in readme


def test_every_relative_link_reaches_a_file_and_anchor():
    bad = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text())):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such anchor)")
    assert not bad, "\n".join(bad)


def test_docs_index_lists_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    missing = [p.name for p in PAGES[1:] if p.name != "README.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/README.md does not list {missing}"


QUOTED = re.compile(r"(?<![\w./-])((?:scripts|notebooks|params|tests|lib)/[\w./-]*\.(?:py|sh|ipynb|yaml))\b")


def test_every_quoted_path_exists():
    bad = []
    for page in PAGES:
        for path in set(QUOTED.findall(page.read_text())):
            parts = Path(path).parts
            if any(re.fullmatch(r"[A-Z_]+|NN_\w*", p) for p in parts):  # placeholders: PROFILE, NN_name
                continue
            if (
                path.startswith(("lib/", "scripts/")) and page.name == "history.md"
            ):  # the journal keeps its time's names
                continue
            if not (ROOT / path).exists():
                bad.append(f"{page.relative_to(ROOT)}: {path}")
    assert not bad, "quoted but missing:\n" + "\n".join(sorted(bad))


def test_readme_map_names_existing_lib_modules():
    readme = (ROOT / "README.md").read_text()
    rows = [r for r in readme.splitlines() if re.match(r"\| `\d\d_\w+` \|", r)]
    assert len(rows) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))), "one row per notebook"
    missing = []
    for row in rows:
        for module in re.findall(r"`([a-z_]+(?:/[a-z_]+)?)`", row.split("|")[3]):
            if not ((ROOT / "lib" / f"{module}.py").is_file() or (ROOT / "lib" / module).is_dir()):
                missing.append(f"lib/{module}")
    assert not missing, f"README's notebook table names missing modules: {missing}"


def test_no_document_outside_the_repository_is_cited():
    for f in tracked_text_files() + PAGES:
        text = f.read_text(errors="replace")
        assert "DESIGN.md" not in text, f"{f.relative_to(ROOT)} cites DESIGN.md (use the pages in docs/)"
        assert "CONVENTIONS.md" not in text, f"{f.relative_to(ROOT)} cites CONVENTIONS.md"
        assert "../shared" not in text and "shared/DESIGN" not in text, f"{f.relative_to(ROOT)} cites ../shared"


def test_every_cited_doc_exists():
    cited = set()
    for f in tracked_text_files() + PAGES:
        for m in re.finditer(r"\b((?:docs|results)/[\w./-]+\.(?:md|json|tsv|png|yaml))", f.read_text(errors="replace")):
            cited.add(m.group(1))
    assert any(c.startswith("docs/") for c in cited), "nothing cites docs/"
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, f"cited but missing: {missing}"


HELP = """
import contextlib, io, json, runpy, sys
out = {}
for script in sys.argv[1:]:
    sys.argv, buf = [script, "--help"], io.StringIO()
    sys.path.insert(0, script.rsplit("/", 1)[0])
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_path(script, run_name="__main__")
        code = "did not exit"
    except SystemExit as e:
        code = e.code or 0
    except BaseException as e:
        code = f"{type(e).__name__}: {e}"
    sys.path.pop(0)
    out[script] = code if code or "usage" in buf.getvalue().lower() else "no usage printed"
print(json.dumps(out))
"""


def test_every_quoted_python_script_answers_help():
    """Each script quoted as ``python scripts/...py`` (or after torchrun) runs ``--help``: one process for all."""
    scripts = set()
    for page in PAGES:
        scripts |= set(re.findall(r"(?:python|torchrun[^\n`]*?)\s+(scripts/[\w/]+\.py)", page.read_text()))
    assert "scripts/tools/report.py" in scripts and "scripts/tools/train.py" in scripts
    out = subprocess.run(
        [sys.executable, "-c", HELP, *sorted(scripts)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    codes = json.loads(out.stdout.strip().splitlines()[-1])
    bad = [f"{s}: {c}" for s, c in codes.items() if c != 0]
    assert not bad, "quoted scripts that do not answer --help:\n" + "\n".join(bad)
