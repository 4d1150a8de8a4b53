"""Writing files all at once: a reader never sees a half-written file, a failure leaves none."""

import os
from pathlib import Path


def replace_atomically(path, write, binary=False):
    """Create or replace ``path`` all at once.

    ``write(handle)`` fills a temporary file in the same folder (UTF-8 text, or bytes with
    ``binary``), which is renamed over ``path`` only when ``write`` returns; if it raises, the
    temporary file is removed and ``path`` is untouched.

    Returns:
        Path: ``path``.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if binary:
            with open(temporary, "wb") as handle:
                write(handle)
        else:
            with open(temporary, "w", encoding="utf-8", newline="") as handle:
                write(handle)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path
