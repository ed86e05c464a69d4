"""Starting the site's settings in a fresh process with a given environment, for the tests of what a bad
setting does at start-up (it stops the site with a message, before any request)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def set_up_django(data_dir: Path, **environment: str) -> subprocess.CompletedProcess:
    """`django.setup()` on evalsite.settings in a new interpreter, with EVALSITE_DATA_DIR=`data_dir` and
    `environment` added to this process's environment; its exit status and output."""
    env = {**os.environ, "EVALSITE_DATA_DIR": str(data_dir), **environment}
    env["DJANGO_SETTINGS_MODULE"] = "evalsite.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
