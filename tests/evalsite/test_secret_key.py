"""Each install signs with its own secret key, made once under the data folder (0600) and reused;
EVALSITE_SECRET_KEY overrides it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evalsite.settings import install_secret_key

REPO = Path(__file__).resolve().parents[2]
PUBLIC_DEFAULT = "insecure-local-default-change-me-in-production"


def settings_key(data_dir: Path, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "EVALSITE_SECRET_KEY"}
    environment.update(EVALSITE_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="evalsite.settings", **env)
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_fresh_install_makes_a_private_key_once_and_keeps_it(tmp_path):
    data = tmp_path / "data"
    first = settings_key(data)
    key_file = data / "secret_key"
    assert first and first != PUBLIC_DEFAULT and len(first) >= 50
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings_key(data) == first  # the next start (or the worker) reads the same key
    assert settings_key(tmp_path / "other") != first  # another install has its own
    assert [p.name for p in data.iterdir() if p.name.startswith(".secret_key")] == []


def test_the_environment_variable_overrides_the_file(tmp_path):
    assert settings_key(tmp_path, EVALSITE_SECRET_KEY="from-the-environment") == "from-the-environment"


def test_concurrent_first_starts_agree_on_one_key(tmp_path):
    path = tmp_path / "secret_key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: install_secret_key(path), range(16)))
    assert keys == {path.read_text().strip()}
