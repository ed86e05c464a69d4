"""English texts kept as they were made and shown in the page's language: job titles, and the titles,
notes and labels of the statistics the results and the leaderboard compute once for every language
(cached, the API, the downloads and the `results` command read them in English).

A phrase is a msgid, written with `gettext_noop` where the English is made so that `makemessages`
finds it. A phrase with named blanks (``%(name)s``) is filled in with `fill`; `Phrasebook.translate`
recognises a filled phrase in a stored text and gives it in the active language, with what filled the
blanks kept as it was written (names, numbers)."""

from __future__ import annotations

import re
from functools import cache

from django.utils.translation import gettext


@cache
def blanks_pattern(msgid: str) -> re.Pattern[str]:
    """A regex matching the msgid filled in, one named group per blank."""
    parts = re.split(r"%\((\w+)\)s", msgid)
    regex = "".join(
        re.escape(part.replace("%%", "%")) if i % 2 == 0 else f"(?P<{part}>.*)"
        for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


def fill(msgid: str, **values: object) -> str:
    """The English text of a phrase with blanks."""
    return msgid % {name: str(value) for name, value in values.items()}


class Phrasebook:
    """Phrases that a stored text may be. `translate` gives a text in the active language when it is
    one of them (filled in, for a phrase with blanks), and as it is otherwise: a name that is no phrase
    is never translated."""

    def __init__(self, *phrases: str) -> None:
        self.exact = frozenset(p for p in phrases if "%(" not in p)
        self.with_blanks = tuple(p for p in phrases if "%(" in p)

    def __iter__(self):
        yield from self.exact
        yield from self.with_blanks

    def __add__(self, other: Phrasebook) -> Phrasebook:
        return Phrasebook(*self, *other)

    def __contains__(self, text: object) -> bool:
        return self.match(text) is not None

    def match(self, text: object) -> tuple[str, dict[str, str]] | None:
        """(phrase, what filled its blanks) for a text that is a phrase of this book, else None."""
        if not isinstance(text, str):
            return None
        if text in self.exact:
            return text, {}
        for msgid in self.with_blanks:
            if found := blanks_pattern(msgid).fullmatch(text):
                return msgid, found.groupdict()
        return None

    def translate(self, text: object) -> object:
        found = self.match(text)
        if found is None:
            return text
        msgid, values = found
        return gettext(msgid) % values if values else gettext(msgid)
