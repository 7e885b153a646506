"""A throwaway virtual environment for installing plugin packages as their users would.

It sees this environment's packages through a .pth file (campaignkit, pytest, ldap3...) but has each plugin
installed on its own, from a wheel, found through its entry point like any installed plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

CLI = [sys.executable, "-c", "from campaignkit.core.cli import main; main()"]


class Venv:
    def __init__(self, folder: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
        self.python = folder / "bin" / "python"
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        outer = sysconfig.get_path("purelib")
        # addsitedir, not a plain path line: the outer .pth files (campaignkit's editable install) must run too.
        Path(purelib, "_campaignkit_dev.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}

    def install(self, packages: list[Path], wheels: Path) -> None:
        """Build each package's wheel here (no network, this environment's setuptools) and install it there."""
        _succeed([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                  "--wheel-dir", str(wheels), *map(str, packages)])
        _succeed([str(self.python), "-m", "pip", "install", "--quiet", "--no-deps",
                  *map(str, sorted(wheels.glob("*.whl")))])

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), *args], cwd=cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def pytest(self, package: Path) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)

    def campaignkit(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("-c", "from campaignkit.core.cli import main; main()", *args, cwd=cwd, env=env)


def _succeed(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command[:4])} ... failed:\n{done.stdout}\n{done.stderr}"
