"""The venv that `scripts/bootstrap.sh` builds on a GPU host sees the host's packages as the host's own
Python does: after the venv's, with the host folders' ``.pth`` files run (setuptools'
``distutils-precedence.pth`` is one: on Python 3.12 DeepSpeed's ``import distutils`` needs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _venv_site(python: Path) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_host_site_packages_are_added_after_the_venv_with_their_pth_files(
    tmp_path: Path, repo_root: Path
) -> None:
    host_site, hooked = tmp_path / "host-site", tmp_path / "hooked"
    host_site.mkdir()
    hooked.mkdir()
    (host_site / "hook.pth").write_text(f"{hooked}\n")  # what a host package's own .pth does
    (hooked / "host_shim.py").write_text("WHERE = 'from the host .pth'\n")
    (host_site / "both.py").write_text("WHERE = 'host'\n")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    venv_site = _venv_site(python)
    (Path(venv_site) / "both.py").write_text("WHERE = 'venv'\n")

    script = repo_root / "scripts" / "host_packages_pth.py"
    subprocess.run([str(python), str(script), venv_site, str(host_site)], check=True)

    probe = "import both, host_shim; print(both.WHERE); print(host_shim.WHERE)"
    out = subprocess.run([str(python), "-c", probe], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["venv", "from the host .pth"]


def test_bootstrap_writes_the_host_pth_with_the_script(repo_root: Path) -> None:
    bootstrap = (repo_root / "scripts" / "bootstrap.sh").read_text()
    assert "scripts/host_packages_pth.py" in bootstrap
    assert "stvg-host-packages.pth" not in bootstrap  # one place names the file: the script
