import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
application = get_wsgi_application()


def _settle() -> None:
    """Load what every request needs (the URLconf imports every view, the catalogs of both languages),
    then move everything loaded so far out of the garbage collector's reach (`gc.freeze`).

    A web worker holds about 170,000 objects after start-up, none of which ever becomes garbage; a full
    collection walks them all, 40-90 ms on a small machine, and comes a few times a minute under load,
    each time inside some annotator's request (and the requests queued behind it). Frozen, they are
    never walked again: a full collection then looks only at what requests made since."""
    from django.conf import settings
    from django.urls import get_resolver
    from django.utils import translation

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - importing every view module is the point
    resolver.reverse_dict  # noqa: B018
    for code, _ in settings.LANGUAGES:
        with translation.override(code):
            translation.gettext("Next")
    gc.collect()
    gc.freeze()


_settle()
