"""Jobs start by task name: services never import tasks modules, and every name resolves in a process that
has imported no tasks module yet (the web process), including names that job rows stored before a move."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("evalsite", "generation", "annotation", "preference", "metrics")


def _imported_modules(path: Path) -> set[str]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_module_but_a_tasks_module_imports_a_tasks_module():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if path.name == "tasks.py" or "migrations" in path.parts:
                continue
            tasks_imports = sorted(m for m in _imported_modules(path) if m.split(".")[-1] == "tasks")
            if tasks_imports:
                offenders.append(f"{path.relative_to(ROOT)} imports {tasks_imports}")
    assert offenders == []


def test_every_job_name_resolves_in_a_process_that_imported_no_tasks():
    names = [
        "generation.tasks.transcode_video",
        "generation.tasks.import_videos",
        "annotation.tasks.normalise_media",
        "preference.tasks.build_preference_export",
        "metrics.tasks.evaluate_vae",  # the names of the jobs from before metrics/ was split
        "metrics.tasks.compute_auto_scores",
    ]
    script = (
        "import django, json, sys; django.setup()\n"
        "from evalsite.jobs import job_task_named\n"
        "apps, names = json.loads(sys.argv[1])\n"
        "before = sorted(m for m in sys.modules if m.endswith('.tasks') and m.split('.')[0] in apps)\n"
        "tasks = {n: job_task_named(n) for n in names}\n"
        "found = {n: [t.job_queue, t.handler.__module__] for n, t in tasks.items()}\n"
        "print(json.dumps({'before': before, 'found': found}))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "evalsite.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps([APPS, names])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["before"] == []
    assert answer["found"] == {
        "generation.tasks.transcode_video": ["cpu", "generation.tasks"],
        "generation.tasks.import_videos": ["cpu", "generation.tasks"],
        "annotation.tasks.normalise_media": ["cpu", "annotation.tasks"],
        "preference.tasks.build_preference_export": ["cpu", "preference.tasks"],
        "metrics.tasks.evaluate_vae": ["gpu", "metrics.automatic.tasks"],
        "metrics.tasks.compute_auto_scores": ["gpu", "metrics.automatic.tasks"],
    }
