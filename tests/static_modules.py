"""The JavaScript a page loads from the site's static files: its scripts and every module they import,
followed the way a browser resolves them (each specifier relative to the importing file's URL). The
blinding tests scan all of it; the static-files tests check it is all served as JavaScript."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from django.contrib.staticfiles import finders

# `import x from "…"`, `import {a, b as c} from "…"`, `import * as ns from "…"`, `import "…"`,
# `export {a} from "…"`, `export * from "…"`, and `import("…")`. A comment that looks like one is
# followed too: better a loud "does not exist" than a module left unscanned.
STATIC_IMPORT = re.compile(r"""(?<![\w$.])(?:import|export)\s*(?:[\w$*{}\s,]*?\bfrom\s*)?(["'])(.+?)\1""")
DYNAMIC_IMPORT = re.compile(r"""(?<![\w$.])import\s*\(\s*(["'])(.+?)\1\s*\)""")
SCRIPT_SUFFIXES = (".js", ".mjs")


def imported_urls(url: str, source: str) -> list[str]:
    """The URLs of the modules the script at `url` imports, resolved against `url`. The site has no
    import map and no bundler, so a bare name (`import "lodash"`) or another host is an error."""
    urls = []
    for pattern in (STATIC_IMPORT, DYNAMIC_IMPORT):
        for match in pattern.finditer(source):
            specifier = match[2]
            if not specifier.startswith(("./", "../", "/")) or specifier.startswith("//"):
                raise ValueError(f"{url} imports {specifier!r}, which a browser cannot load from this site")
            resolved = urlsplit(urljoin(url, specifier))
            urls.append(resolved.path)
    return urls


def linked_static_files(urls: Iterable[str], read: Callable[[str], str]) -> dict[str, str]:
    """Every static file in `urls` and every module the scripts among them import, transitively:
    URL → text, in the order they were reached. `read(url)` gives a file's text."""
    found: dict[str, str] = {}
    waiting = list(urls)
    while waiting:
        url = waiting.pop(0)
        if url in found:
            continue
        found[url] = read(url)
        if url.endswith(SCRIPT_SUFFIXES):
            waiting += imported_urls(url, found[url])
    return found


def read_from_finders(url: str) -> str:
    """A static file's text as the finders see it (no collectstatic needed)."""
    path = finders.find(url.removeprefix("/static/"))
    assert path, f"the page links to {url}, which does not exist"
    return Path(path).read_text(encoding="utf-8")
