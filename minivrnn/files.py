"""Writing a file atomically: what every command's outputs (checkpoints, metrics, plots, samples, CSVs) share.

The file is written to a temporary name in the same folder, given ordinary permissions, and renamed over its
path only when complete. A failure on the way (a full disk, a read-only folder, Ctrl-C) removes the temporary
file and leaves an earlier file at that path as it was, so a reader never sees half a file.
"""
import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_file(path, prefix=".tmp-", suffix=""):
    """Yields the name of a temporary file in ``path``'s folder for the caller to write; when the block ends
    without error the file is renamed over ``path``. ``prefix`` lets a command recognise its own leftovers (a
    killed run's temporary checkpoints are ``.checkpoint-*``: train.py removes them on the next start). An
    OSError is re-raised naming ``path``, with the system's reason: the temporary name would mean nothing to
    the user."""
    with naming(path):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=os.path.dirname(os.path.abspath(path)))
        try:
            os.close(fd)
            yield tmp
            umask = os.umask(0)  # (reading the umask means setting it; it is set straight back)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private (0600); outputs are ordinary files
            os.replace(tmp, path)
        except BaseException:
            try:
                os.remove(tmp)
            except OSError:  # already gone, or cannot be removed: the error that matters is the one raised
                pass
            raise


@contextmanager
def naming(path):
    """Re-raise an OSError as one naming ``path`` with the system's reason."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), path) from None
