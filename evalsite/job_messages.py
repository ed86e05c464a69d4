"""Job progress messages: stored in English as the handlers report them (`run.progress(done, total,
message)`; the admin, the API's `message` and logs read them as written) and shown in the page's language,
the way job titles are (`evalsite/job_titles.py`): `translated_message` recognises one of the patterns
below in a stored message and gives it in the active language, with its numbers and names as reported.
A message of no known pattern (a video's description, say) is shown as stored."""

from __future__ import annotations

from django.utils.translation import gettext_noop

from .phrases import Phrasebook

MESSAGES = (
    # evalsite/jobs.py
    gettext_noop("done"),
    gettext_noop("cancelled"),
    gettext_noop("queued again"),
    gettext_noop("queued again: its worker stopped reporting"),
    # generation
    gettext_noop("transcoding"),
    gettext_noop("checking %(where)s"),
    gettext_noop("checked"),
    gettext_noop("importing %(path)s"),
    gettext_noop("imported"),
    gettext_noop("video %(number)s of %(total)s"),
    # annotation/renditions.py
    gettext_noop("preparing video %(number)s of %(total)s"),
    gettext_noop("normalising video %(number)s of %(total)s"),
    gettext_noop("padding the files to one size"),
    # preference
    gettext_noop("loading judgments"),
    gettext_noop("pairing votes"),
    gettext_noop("reading prompts and videos"),
    gettext_noop("writing files"),
    gettext_noop("wrote %(name)s"),
    gettext_noop("encoding pair %(number)s of %(total)s"),
    gettext_noop("step %(step)s of %(total)s"),
    gettext_noop("CLIP features of %(count)s videos"),
    gettext_noop("CLIP and motion scores of %(count)s validation videos"),
    gettext_noop("training the head"),
    gettext_noop("scored video %(number)s of %(total)s"),
    # metrics/automatic/tasks.py (and the reward model's scoring)
    gettext_noop("loading models"),
    gettext_noop("measuring %(count)s videos"),
    gettext_noop("scoring %(count)s videos"),
    gettext_noop("summarising"),
)


PHRASES = Phrasebook(*MESSAGES)


def translated_message(message: str) -> str:
    """A stored progress message in the active language (as stored when no pattern matches)."""
    return str(PHRASES.translate(message))
