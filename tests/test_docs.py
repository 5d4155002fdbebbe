"""The README quotes the committed results, and every document the repository cites is inside it."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import report  # noqa: E402

TEXT = [".py", ".md", ".yaml", ".ipynb", ".sh", ".toml", ".yml"]


def tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git clone")
    files = [ROOT / f for f in out.stdout.splitlines() if Path(f).suffix in TEXT or f.endswith("run_all.sh")]
    return [f for f in files if f.is_file() and f.name != "test_docs.py"]


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


def test_results_carry_provenance_and_parameters():
    import json

    prov = json.loads((ROOT / "results" / "cpu" / "provenance.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"]) and prov["packages"]["torch"]
    params = sorted(p.stem for p in (ROOT / "results" / "cpu" / "parameters").glob("*.json"))
    assert params == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_no_document_outside_the_repository_is_cited():
    for f in tracked_text_files():
        text = f.read_text(errors="replace")
        assert "DESIGN.md" not in text, f"{f.relative_to(ROOT)} cites DESIGN.md (use the pages in docs/)"
        assert "../shared" not in text and "shared/DESIGN" not in text, f"{f.relative_to(ROOT)} cites ../shared"


def test_every_cited_doc_exists():
    cited = set()
    for f in tracked_text_files():
        for m in re.finditer(r"\b((?:docs|results)/[\w./-]+\.(?:md|json|tsv|png))", f.read_text(errors="replace")):
            cited.add(m.group(1))
    assert any(c.startswith("docs/") for c in cited), "nothing cites docs/"
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, f"cited but missing: {missing}"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup/test.sh" in readme and re.search(r"^bash scripts/setup/test\.sh\s*$", ci, flags=re.M)
