"""tools/readme_default_run.py: runs sal_ext.train in a subprocess and rewrites the README's
default-run block (here with a tiny run and a copy of the README)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "readme_default_run.py")


def test_block_rewritten(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- default-run:begin -->\nold\n<!-- default-run:end -->\nafter\n")
    tiny = ["--max-steps", "3", "--eval-every", "2", "--no-progress", "--set", "synthetic.num_train=8",
            "--set", "synthetic.num_test=4", "--set", "synthetic.feature_dim=64", "--set", "feature_dim=64",
            "--set", "synthetic.max_len=60", "--set", "synthetic.min_len=40", "--set", "model.hidden=8",
            "--set", "num_segments=16"]
    env = {**os.environ, "SAL_EXT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, TOOL, "--readme", str(readme), "--"] + tiny, capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n<!-- default-run:begin -->\n") and text.endswith("<!-- default-run:end -->\nafter\n")
    assert "\nold\n" not in text
    block = text.split("<!-- default-run:begin -->")[1].split("<!-- default-run:end -->")[0]
    for frag in ("1 torch thread (OMP_NUM_THREADS=1)", "python -m sal_ext.train --max-steps 3", "3 steps of batch 4",
                 "an evaluation every 2 steps, 2 in all", "data: ", "run folder: runs/synthetic-", "mAP@0.10",
                 "avg 0.1:0.7", "training + evaluation:"):
        assert frag in block, (frag, block)
    assert str(tmp_path / "cache") in block        # the data folder the run printed
    assert not list(tmp_path.glob("runs"))          # the run went to a temporary folder


def test_refuses_readme_without_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    r = subprocess.run([sys.executable, TOOL, "--readme", str(readme)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "default-run:begin" in r.stderr
    assert readme.read_text() == "# no block\n"
