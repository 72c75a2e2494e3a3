"""The kernel cache is a folder keyed by the sources (a changed file gives a new folder), importing minivrnn deletes
no file, and the user's NUMBA_CACHE_DIR is respected."""
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

import minivrnn
from minivrnn.fast import kernel_cache
from minivrnn.fast.kernel_cache import cache_key, candidate_roots, prune, sources_digest, stale_roots

PACKAGE = Path(minivrnn.__file__).parent


def _package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "ops" / "b.py").write_text("y = 2\n")
    return pkg


def test_a_changed_helper_file_gives_a_new_cache_folder(tmp_path):
    pkg = _package(tmp_path)
    before = cache_key(pkg)
    assert cache_key(pkg) == before  # the same sources: the same folder
    (pkg / "ops" / "b.py").write_text("y = 3\n")  # a helper in another file changes
    changed = cache_key(pkg)
    assert changed != before
    assert candidate_roots(pkg, changed, "")[0] != candidate_roots(pkg, before, "")[0]
    assert cache_key(pkg, plain=True) != changed  # the forced plain kernels have their own folder


def test_the_digest_covers_paths_and_contents(tmp_path):
    pkg = _package(tmp_path)
    before = sources_digest(pkg)
    (pkg / "ops" / "b.py").rename(pkg / "ops" / "c.py")
    assert sources_digest(pkg) != before


def test_the_folder_goes_under_a_user_set_numba_cache_dir(tmp_path):
    pkg = _package(tmp_path)
    assert candidate_roots(pkg, "k", str(tmp_path / "mine")) == [tmp_path / "mine" / "minivrnn-k"]
    roots = candidate_roots(pkg, "k", "")
    assert roots[0] == pkg / "__pycache__" / "numba-k" and len(roots) == 2  # then the user's cache directory


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: no kernel is cached")
def test_this_process_caches_our_kernels_in_the_keyed_folder():
    from minivrnn.fast.matmul import dot_blocks

    from minivrnn.fast.jit import FORCED_PLAIN

    root = kernel_cache.current_root()
    assert root is not None and root.name.split("-", 1)[1] == cache_key(PACKAGE, FORCED_PLAIN)
    assert Path(dot_blocks._cache.cache_path) == root / "fast"


def test_only_an_explicit_prune_removes_old_folders(tmp_path):
    pkg = _package(tmp_path)
    old, current = (pkg / "__pycache__" / "numba-old"), (pkg / "__pycache__" / "numba-new")
    for folder in (old, current):
        folder.mkdir(parents=True)
        (folder / "k.nbi").write_bytes(b"machine code")
    assert stale_roots(pkg, current) == [old]
    assert prune(pkg, current) == [old]
    assert not old.exists() and (current / "k.nbi").exists()


def _tree(root):
    """Every file and folder under ``root`` with its modification time."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")}


def test_importing_minivrnn_deletes_nothing_and_leaves_cached_kernels_alone(tmp_path):
    # Cached kernels in the package (an old layout's, in a subpackage's __pycache__, and the keyed folder's)
    # survive an import untouched. (Only deletions and cache files are compared: other files may be edited
    # while the test runs.)
    old = PACKAGE / "fast" / "__pycache__" / "old_layout._k-1.py311.nbi"
    old.parent.mkdir(exist_ok=True)
    created = not old.exists()
    old.write_bytes(b"machine code")
    try:
        env = dict(os.environ)
        env.pop("NUMBA_CACHE_DIR", None)
        run = lambda: subprocess.run([sys.executable, "-c", "import minivrnn"], env=env, check=True)
        run()  # (a first import may create the keyed folder)
        before = _tree(PACKAGE)
        run()
        after = _tree(PACKAGE)
        assert not set(before) - set(after), "import deleted files"
        cached = {p: t for p, t in before.items() if p.suffix in (".nbi", ".nbc")}
        assert old in cached and all(after[p] == t for p, t in cached.items())
    finally:
        if created:
            old.unlink(missing_ok=True)
