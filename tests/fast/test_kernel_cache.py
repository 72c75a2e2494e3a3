"""The kernel cache is dropped when any source file changes, and kept otherwise."""
from minivrnn.fast.kernel_cache import STAMP, clear_stale_kernels, sources_digest


def _package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "ops" / "__pycache__").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "ops" / "b.py").write_text("y = 2\n")
    return pkg


def _cached(pkg):
    files = [pkg / "__pycache__" / "a.k-1.py311.nbi", pkg / "ops" / "__pycache__" / "b.k-1.py311.1.nbc"]
    for f in files:
        f.write_bytes(b"machine code")
    return files


def test_a_changed_helper_file_clears_every_cached_kernel(tmp_path):
    pkg = _package(tmp_path)
    assert clear_stale_kernels(pkg)  # no stamp yet: clears (nothing) and writes the stamp
    assert (pkg / "__pycache__" / STAMP).read_text() == sources_digest(pkg)
    files = _cached(pkg)
    assert not clear_stale_kernels(pkg)  # same sources: the cache stays
    assert all(f.exists() for f in files)
    (pkg / "ops" / "b.py").write_text("y = 3\n")  # a helper in another file changes
    assert clear_stale_kernels(pkg)
    assert not any(f.exists() for f in files)
    assert not clear_stale_kernels(pkg)


def test_the_digest_covers_paths_and_contents(tmp_path):
    pkg = _package(tmp_path)
    before = sources_digest(pkg)
    (pkg / "ops" / "b.py").rename(pkg / "ops" / "c.py")
    assert sources_digest(pkg) != before
