"""Keep Numba's on-disk cache of our kernels in step with the source.

Numba checks a cached kernel against its own file only. A kernel that calls a helper from another file (the
chain calls the GRU's gate step, the gates call vecmath's exp) keeps the helper's old machine code after
that other file changes: after an update, a run could silently use old code (or, as seen while developing,
a mix that ran 8x slower). So on import minivrnn hashes all of its source files and compares the hash with
the one stored beside the cache; when they differ it deletes its cached kernels (they recompile on first use)
and stores the new hash. Hashing the ~40 files takes a few milliseconds. Caches Numba keeps elsewhere
(NUMBA_CACHE_DIR, or a user cache for a read-only install) are left to Numba.
"""
import hashlib
from pathlib import Path

STAMP = "numba-sources.sha256"  # in the package's own __pycache__


def sources_digest(package_dir):
    """sha256 over every .py file under ``package_dir``: relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def clear_stale_kernels(package_dir):
    """Delete the cached kernels (``*.nbi``, ``*.nbc``) under ``package_dir`` if the sources changed since they
    were written. Returns True if it cleared them; a read-only install is left alone (returns False)."""
    package_dir = Path(package_dir)
    stamp = package_dir / "__pycache__" / STAMP
    digest = sources_digest(package_dir)
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass  # no stamp yet: a fresh checkout, or caches from before the stamp existed
    try:
        for pattern in ("*.nbi", "*.nbc"):
            for cached in package_dir.rglob(f"__pycache__/{pattern}"):
                cached.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:
        return False
    return True
