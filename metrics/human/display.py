"""A campaign's results and the leaderboard as a page shows them, in the page's language.

`metrics.human.results` and `metrics.human.leaderboard` make one English document each (cached; the API,
the downloads and the `results` command give it as it is). A page shows a copy of it whose titles, notes,
column labels, plot texts and the words in its cells (such as "Overall", "Pooled", a vote, a rating
status, a rubric dimension) are in the active language. Numbers, names, categories and prompts are data and
are shown as they are: a cell is translated only when it is one of the words the results write, and a
column of annotators keeps each annotator's name."""

from __future__ import annotations

from typing import Any

from django.utils.translation import get_language, gettext

from annotation.models import ProblemReport
from annotation.rubric import RUBRIC, dimension_title
from metrics.human import leaderboard, results

PHRASES = results.PHRASES + leaderboard.PHRASES  # the titles and notes with blanks
CELL_WORDS = results.CELL_WORDS + leaderboard.CELL_WORDS
DIMENSION_KEYS = {d.title_en: d.key for d in RUBRIC}
# The columns whose cells may hold words the results write; the others hold numbers or data.
WORD_COLUMNS = {
    "category",
    "annotator",
    "annotator_1",
    "annotator_2",
    "dimension",
    "majority",
    "status_label",
}
ANNOTATOR_COLUMN = "annotator:"  # a column per annotator (and the pooled and majority columns)


def own_text(text: Any) -> Any:
    """A title, note or label the results wrote: a phrase with blanks filled in, or a msgid."""
    if not isinstance(text, str) or not text:
        return text
    if text in PHRASES:
        return PHRASES.translate(text)
    return gettext(text)


def word(value: Any) -> Any:
    """A cell: translated when it is one of the results' words (or a sequence of votes), else as it is."""
    if not isinstance(value, str):
        return value
    if value in DIMENSION_KEYS:
        return dimension_title(DIMENSION_KEYS[value], get_language() or "")
    if value in CELL_WORDS:
        return CELL_WORDS.translate(value)
    votes = value.split(" ")
    if len(votes) > 1 and all(v in results.OUTCOME_WORDS for v in votes):
        return " ".join(gettext(v) for v in votes)
    return value


def _column_label(column: dict[str, Any]) -> Any:
    key, label = column["key"], column["label"]
    if key.startswith(ANNOTATOR_COLUMN):
        return word(label)  # a name, or "Pooled" / "Majority per prompt"
    if key in DIMENSION_KEYS.values():
        title = dimension_title(key, get_language() or "")
        found = PHRASES.match(label)
        if found and found[0] == leaderboard.MEAN_OF:
            return gettext(leaderboard.MEAN_OF) % {"dimension": title}
        return title
    return own_text(label)


def shown_table(table: dict[str, Any]) -> dict[str, Any]:
    translated_columns = {
        c["key"]
        for c in table["columns"]
        if c["key"] in WORD_COLUMNS or c["key"].startswith(ANNOTATOR_COLUMN)
    }
    return {
        **table,
        "title": own_text(table["title"]),
        "note": own_text(table["note"]),
        "columns": [{**c, "label": _column_label(c)} for c in table["columns"]],
        "rows": [
            {key: word(value) if key in translated_columns else value for key, value in row.items()}
            for row in table["rows"]
        ],
    }


def _axis(axis: Any) -> Any:
    if not isinstance(axis, dict) or not isinstance(axis.get("title"), dict):
        return axis
    return {**axis, "title": {**axis["title"], "text": own_text(axis["title"].get("text"))}}


def shown_plot(figure: dict[str, Any]) -> dict[str, Any]:
    layout = dict(figure["layout"])
    for name in ("xaxis", "yaxis"):
        if name in layout:
            layout[name] = _axis(layout[name])
    if isinstance(layout.get("title"), dict):
        layout["title"] = {**layout["title"], "text": own_text(layout["title"].get("text"))}
    data = []
    for trace in figure["data"]:
        shown = dict(trace)
        if "name" in shown:
            shown["name"] = PHRASES.translate(shown["name"])  # a model's name stays as it is
        for axis in ("x", "y"):
            if isinstance(shown.get(axis), list):
                shown[axis] = [word(v) for v in shown[axis]]
        data.append(shown)
    return {**figure, "title": own_text(figure["title"]), "layout": layout, "data": data}


def _problem_label(kind: str) -> str:
    return str(ProblemReport.Kind(kind).label) if kind in ProblemReport.Kind.values else kind


def _shown_skipped(skipped: dict[str, Any]) -> dict[str, Any]:
    shown = dict(skipped)
    shown["judgments_skipped"] = {gettext(reason): n for reason, n in skipped["judgments_skipped"].items()}
    shown["problem_prompts"] = [
        {**p, "reports": [{**r, "problem": _problem_label(r["problem"])} for r in p["reports"]]}
        for p in skipped["problem_prompts"]
    ]
    shown["prompts_not_in_campaign"] = [
        {**e, "reason": gettext(e["reason"])} for e in skipped["prompts_not_in_campaign"]
    ]
    if "metric2_prompts_left_out" in skipped:
        shown["metric2_prompts_left_out"] = [
            {**p, "reason": word(p["reason"])} for p in skipped["metric2_prompts_left_out"]
        ]
    return shown


def shown_results(found: dict[str, Any]) -> dict[str, Any]:
    """A campaign's results (metrics.human.results.campaign_results) in the page's language."""
    return {
        **found,
        "notes": [own_text(note) for note in found["notes"]],
        "skipped": _shown_skipped(found["skipped"]),
        "tables": [shown_table(t) for t in found["tables"]],
        "plots": [shown_plot(p) for p in found["plots"]],
    }


def shown_board(board: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard (metrics.human.leaderboard.leaderboard) in the page's language."""
    return {
        **board,
        "note": own_text(board["note"]),
        "rating_notes": [own_text(note) for note in board["rating_notes"]],
        "tables": [shown_table(t) for t in board["tables"]],
        "plots": [shown_plot(p) for p in board["plots"]],
    }
