from django import template
from django.utils.translation import gettext, gettext_lazy

from evalsite.job_messages import translated_message
from evalsite.job_titles import translated_title
from evalsite.models import Job

register = template.Library()

# Statuses of rows that are not jobs but are shown with the same badges (videos, generated videos, exports).
OTHER_STATUS_WORDS = {
    "done": gettext_lazy("done"),
    "refused": gettext_lazy("refused"),
    "ready": gettext_lazy("ready"),
    "processing": gettext_lazy("processing"),
    "building": gettext_lazy("building"),
}


@register.filter
def job_title(title: str) -> str:
    """A job's stored title in the page's language."""
    return translated_title(title)


@register.filter
def job_message(message: str) -> str:
    """A job's stored progress message in the page's language."""
    return translated_message(message)


@register.filter
def status_word(status: str) -> str:
    """A status in the page's language: a job's is its `Job.Status` label (what jobs.js shows too)."""
    labels = {**OTHER_STATUS_WORDS, **dict(Job.Status.choices)}
    return str(labels.get(status, status))


@register.simple_tag
def job_script_strings() -> dict[str, object]:
    """Every text evalsite/jobs.js writes into a job row, in the page's language."""
    return {
        "statuses": {value: str(label) for value, label in Job.Status.choices},
        "stalled": gettext("stalled"),
    }
