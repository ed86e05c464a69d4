"""What a web worker does when it loads the site (evalsite.wsgi): it imports every view and the catalogs
of both languages, then freezes what it loaded out of the garbage collector's reach, so that a full
collection inside some annotator's request does not walk the ~170,000 objects of start-up."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
import evalsite.wsgi
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "unfrozen": len(gc.get_objects()),
    "views_loaded": "annotation.api.annotate" in sys.modules and "metrics.human.views" in sys.modules,
}))
"""


def test_a_web_worker_freezes_what_it_loads_at_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "evalsite.settings"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["views_loaded"]
    # Everything of start-up is frozen: what the collector still walks is a small remainder.
    assert loaded["frozen"] > 50_000
    assert loaded["unfrozen"] < loaded["frozen"] / 20, loaded
