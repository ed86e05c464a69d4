from django import template

from evalsite.job_titles import translated_title

register = template.Library()


@register.filter
def job_title(title: str) -> str:
    """A job's stored title in the page's language."""
    return translated_title(title)
