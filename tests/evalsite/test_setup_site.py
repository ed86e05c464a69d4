"""`manage.py setup_site` (what `make serve` runs first): loads Step-Video-T2V-Eval, creates a manager whose
printed password logs in, adds the demo with --demo, and changes nothing when run again."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Campaign
from generation.models import Benchmark, Video

pytestmark = pytest.mark.django_db


def setup_site(*args: str) -> str:
    out = io.StringIO()
    call_command("setup_site", *args, stdout=out)
    return out.getvalue()


def test_setup_site_loads_the_benchmark_and_prints_a_manager_password_that_logs_in(shared_benchmarks, client):
    path = shared_benchmarks / "Step-Video-T2V-Eval"
    printed = setup_site("--benchmark", str(path), "--manager", "boss")
    benchmark = Benchmark.objects.get(slug="step-video-t2v-eval")
    prompts = benchmark.prompts.count()
    assert prompts == len([line for line in path.read_text().splitlines() if line.strip()])
    password = re.search(r"Username: boss  Password: (\S+)", printed).group(1)
    manager = get_user_model().objects.get(username="boss")
    assert manager.is_superuser and manager.check_password(password)
    assert client.login(username="boss", password=password)

    again = setup_site("--benchmark", str(path), "--manager", "boss")
    assert "already exists (password unchanged" in again and "Password:" not in again
    assert get_user_model().objects.get(username="boss").check_password(password)
    assert benchmark.prompts.count() == prompts


def test_setup_site_refuses_a_benchmark_file_that_does_not_exist(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        setup_site("--benchmark", str(tmp_path / "missing"))
    assert not get_user_model().objects.exists()


def test_setup_site_without_the_prompt_file_says_where_to_put_it(settings, tmp_path):
    settings.EVALSITE_BENCHMARKS_DIR = str(tmp_path)
    printed = setup_site()
    assert "No Step-Video-T2V-Eval file at" in printed and "EVALSITE_BENCHMARKS_DIR" in printed
    assert get_user_model().objects.filter(username="manager", is_superuser=True).exists()


def test_setup_site_with_demo_adds_demo_clips_campaigns_and_annotators(shared_benchmarks, monkeypatch):
    import generation.management.commands.load_demo as load_demo_command

    monkeypatch.setattr(load_demo_command, "DEMO_PROMPTS", 3)  # a few clips keep the test fast
    printed = setup_site("--benchmark", str(shared_benchmarks / "Step-Video-T2V-Eval"), "--demo")
    assert Video.objects.filter(status=Video.Status.READY).count() == 12
    assert sorted(Campaign.objects.values_list("kind", flat=True)) == sorted(Campaign.Kind.values)
    annotators = re.findall(r"Demo annotator account created. Username: (\S+)  Password: (\S+)", printed)
    assert annotators
    for username, password in annotators:
        assert get_user_model().objects.get(username=username).check_password(password)
