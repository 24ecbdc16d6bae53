"""The source digest that names the code a run measured."""
import shutil
from pathlib import Path

import suite
from suite import env


def _copy(tmp_path):
    root = Path(suite.__file__).resolve().parents[1]
    dst = tmp_path / "tree"
    for top in env._SOURCE_DIRS:
        shutil.copytree(root / top, dst / top, ignore=shutil.ignore_patterns("__pycache__"))
    return str(root), dst


def test_digest_names_the_code_not_the_place(tmp_path):
    root, copy = _copy(tmp_path)
    assert env.source_digest(str(copy)) == env.source_digest(root)
    (copy / "suite" / "__pycache__").mkdir(exist_ok=True)
    (copy / "suite" / "__pycache__" / "x.pyc").write_bytes(b"compiled")  # not source
    (copy / "README.md").write_text("docs")  # outside the measured code
    assert env.source_digest(str(copy)) == env.source_digest(root)


def test_digest_changes_with_a_kernel(tmp_path):
    root, copy = _copy(tmp_path)
    kernel = copy / "kernels" / "streaming.py"
    kernel.write_text(kernel.read_text() + "\n# one more line\n")
    assert env.source_digest(str(copy)) != env.source_digest(root)
