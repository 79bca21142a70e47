"""Write the ``.pth`` file that shows a GPU host's own packages (its CUDA torch) to the project's venv.

    python scripts/host_packages_pth.py VENV_SITE_PACKAGES HOST_SITE_DIR [HOST_SITE_DIR ...]

Each host folder is added with ``site.addsitedir``, after the venv's own folder, as the host's Python
adds it: its own ``.pth`` files run too. A bare path line would add the folder but skip them, and on
Python 3.12 (no ``distutils`` in the standard library) setuptools' ``distutils-precedence.pth`` is what
lets DeepSpeed's ``import distutils`` work when setuptools comes from the host.
"""

from __future__ import annotations

import sys
from pathlib import Path

PTH_NAME = "stvg-host-packages.pth"


def pth_text(host_dirs: list[str]) -> str:
    """One ``site.addsitedir`` line per host folder (a ``.pth`` runs lines that start with ``import``)."""
    return "".join(f"import site; site.addsitedir({d!r})\n" for d in host_dirs)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    venv_site, *host_dirs = argv
    Path(venv_site, PTH_NAME).write_text(pth_text(host_dirs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
