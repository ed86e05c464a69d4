"""Job titles: stored in English (the admin, the API and logs read them as written) and translated when a
page shows them. Each title is one of the patterns below, filled in by `job_title` where the job is
started; `translated_title` recognises the pattern in a stored title and gives it in the active language,
with the names in it as they were written. A title of no known pattern is shown as stored."""

from __future__ import annotations

from django.utils.translation import gettext_noop

from evalsite.phrases import Phrasebook, fill

TITLES = {
    "transcode": gettext_noop("Transcode video %(video)s"),
    "check_archive": gettext_noop("Check archive %(name)s"),
    "import_archive": gettext_noop("Import archive %(name)s"),
    "check_folder": gettext_noop("Check folder %(name)s"),
    "import_folder": gettext_noop("Import folder %(name)s"),
    "generation_batch": gettext_noop(
        "Generation run %(run)s: batch %(number)s of %(batches)s (%(videos)s videos)"
    ),
    "prepare_media": gettext_noop("Prepare the media of campaign %(name)s"),
    "normalise_media": gettext_noop("Normalise the media of campaign %(name)s"),
    "vae_evaluation": gettext_noop("VAE evaluation: %(name)s on %(model)s"),
    "auto_scores": gettext_noop("Automatic scores: %(model)s on %(benchmark)s"),
    "reward_model_run": gettext_noop("Reward model run %(run)s on %(export)s"),
    "video_dpo_run": gettext_noop("Video-DPO run %(run)s on %(export)s"),
    "apply_reward_model": gettext_noop("Reward model of run %(run)s on %(model)s / %(benchmark)s"),
    "preference_export": gettext_noop("Preference export %(name)s v%(version)s"),
}


PHRASES = Phrasebook(*TITLES.values())


def job_title(key: str, **values: object) -> str:
    """The stored (English) title of a job of this kind."""
    return fill(TITLES[key], **values)


def translated_title(title: str) -> str:
    """A stored title in the active language (as stored when no pattern matches)."""
    return str(PHRASES.translate(title))


DRY_RUN_OF = {"import_archive": "check_archive", "import_folder": "check_folder"}


def import_title_of_check(title: str) -> str:
    """The title of the import that a checked dry run starts ("Check folder x" -> "Import folder x")."""
    found = PHRASES.match(title)
    for run, check in DRY_RUN_OF.items():
        if found and found[0] == TITLES[check]:
            return job_title(run, **found[1])
    return title
