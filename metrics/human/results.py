"""The results of one campaign: the report's tables, significance, agreement and plots, assembled from the
rows `metrics.human.judgments.load_campaign` gives by calling the pure statistics in `metrics.stats`.

Everything comes out as one JSON-ready dict (`campaign_results`): the page, the API, the downloads and the
`results` command all show the same numbers. A table is {key, title, note, columns: [{key, label, kind}],
rows: [{column key: value}]}; a plot is a plotly figure {key, title, data, layout}.

Conventions (also said on the page):
- Metric-1 is counted from model A's side (A = position 0 of the campaign): wins-ties-losses of A against
  B. Win rate = wins / (wins + losses); the sign test is two-sided on wins against losses (ties dropped);
  the 95% interval of the win rate is bootstrapped over prompts (all judgments of a drawn prompt together).
- Metric-2 sums are over every analysed annotator and prompt; the paired test per dimension is the Wilcoxon
  signed-rank test over prompts of the per-prompt means across annotators, zero differences dropped.
- A/B with shared noise: the preferred model gets 1 point, "no preference" 0.5 each; shares in percent.
- Agreement on pairwise answers uses the canonical preference (A better / tie / B better), never the side
  chosen: sides are randomised per annotator, so "left" means different models to different annotators.
  Rubric agreement is ordinal per dimension with units = (prompt, video). Fleiss' kappa needs the same
  number of raters on every unit, so it uses the units with the most common number of raters.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

from django.core.cache import cache
from django.utils.translation import gettext_noop

from annotation.models import RUBRIC_DIMENSIONS, Campaign
from annotation.rubric import RUBRIC
from evalsite.phrases import Phrasebook, fill
from evalsite.text import untranslated
from metrics.human.agreement import (
    ALL_ANNOTATORS,
    OVERALL,
    Agreement,
    categories_in_order,
    paired_agreement,
    paired_labels,
    position_bias_by_annotator,
    rubric_agreement,
)
from metrics.human.judgments import NO_CATEGORY, CampaignJudgments, PairedJudgment, RubricRow, load_campaign
from metrics.stats.agreement import pairwise_agreement
from metrics.stats.pairwise import (
    OUTCOME_INDEX,
    WinTieLoss,
    bootstrap_over_prompts,
    majority,
    majority_of_counts,
    sign_test,
)
from metrics.stats.preference_share import preference_shares
from metrics.stats.scores import paired_wilcoxon, score_summary

DEFAULT_ROUNDS = 1000
MIN_ROUNDS, MAX_ROUNDS = 100, 20000
# The English of the results is made here, once for every language (the cached JSON, the API, the
# downloads, the command); metrics.human.display shows it in the page's language. Texts with blanks are
# filled in with `fill`, and PHRASES (at the end of the module) lists them with the words of the cells.
POOLED = gettext_noop("Pooled")
MAJORITY = gettext_noop("Majority per prompt")
POOLED_SIGN_TEST_NOTE = gettext_noop(
    "The pooled sign test counts each annotator's judgment separately; several annotators rate the same prompt, "
    "so its p-value is optimistic. The bootstrap interval resamples prompts (each prompt's judgments together). "
    "The 'Majority per prompt' row counts one outcome per prompt, the majority of its votes (a side wins with "
    "more votes than the other side and at least as many as the ties, else 'tie'), with its own sign test."
)
METRIC1_NOTE = gettext_noop(
    "Metric-1 is counted from model A's side (%(a)s): wins-ties-losses of A against B (%(b)s). Win rate = "
    "wins / (wins + losses); the sign test is two-sided on wins against losses, ties dropped; the 95%% "
    "interval of the win rate is bootstrapped over prompts (%(rounds)s rounds)."
)
METRIC1_WTL_TITLE = gettext_noop(
    "Metric-1: wins-ties-losses of A, per category and annotator — %(a)s (A) vs %(b)s (B)"
)
METRIC1_ROWS_TITLE = gettext_noop(
    "Metric-1 with win rates, intervals and sign tests — %(a)s (A) vs %(b)s (B)"
)
METRIC1_PLOT_TITLE = gettext_noop("Wins, ties and losses of A per category (pooled) — %(a)s (A) vs %(b)s (B)")
A_WINS_TRACE = gettext_noop("A wins (%(a)s)")
TIE_TRACE = gettext_noop("Tie")
B_WINS_TRACE = gettext_noop("B wins (%(b)s)")
METRIC2_SUMS_TITLE = gettext_noop("Metric-2: summed scores per category and dimension (%(models)s)")
METRIC2_ANNOTATOR_SUMS_TITLE = gettext_noop(
    "Metric-2: summed scores per annotator and dimension (%(models)s)"
)
# The vote words of Metric-1 (from A's side), shown alone or joined by spaces (one annotator's votes).
OUTCOME_WORDS = (gettext_noop("win"), gettext_noop("tie"), gettext_noop("loss"))
DIMENSION_LABELS = {d.key: d.title_en for d in RUBRIC}  # a page shows annotation.rubric's title
METRIC2_NOTE = gettext_noop(
    "Metric-2 compares the models on the same prompts, so that no model's sum holds scores the others lack. "
    "Sums and means per category (Table 8), the paired tests and the plot count a prompt once every compared "
    "model has the same number (at least one) of analysed scores on it; a prompt still being scored, or "
    "scored more often for one model, waits (listed under what was left out). Sums per annotator (Table 11) "
    "count, for each annotator, the prompts on which that annotator scored every compared model, the same "
    "number of times. The paired test per dimension is the Wilcoxon signed-rank test over prompts of the "
    "per-prompt means across annotators (two-sided, zero differences dropped)."
)
METRIC2_UNSCORED = gettext_noop("not every compared model has a score on it yet")
METRIC2_UNEQUAL = gettext_noop(
    "the compared models have unequal numbers of scores on it (coverage unfinished)"
)
RESULTS_FORMAT_VERSION = 4  # part of the cache key: bump when the shape or the method changes


class ResultsError(ValueError):
    """Bad input to a results read; the message is for the person who asked."""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | float | mean | pct | p | rating


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "note": self.note,
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "rows": self.rows,
        }


def plot(key: str, title: str, data: list[dict[str, Any]], **layout: Any) -> dict[str, Any]:
    return {"key": key, "title": title, "data": data, "layout": {"title": {"text": title}, **layout}}


def parse_id(value: str) -> int | None:
    """A database id from user input, or None: ASCII digits only ("²" and "٣" pass `str.isdigit` but are no
    ids) and at most 18 of them, so the value fits a 64-bit column."""
    if value.isascii() and value.isdecimal() and len(value) <= 18:
        return int(value)
    return None


def check_rounds(rounds: int | str | None) -> int:
    """Bootstrap rounds from user input, or a ResultsError saying what is allowed."""
    if rounds is None or rounds == "":
        return DEFAULT_ROUNDS
    try:
        value = int(rounds)
    except (TypeError, ValueError):
        raise ResultsError(f"rounds must be a whole number, got {rounds!r}") from None
    if not MIN_ROUNDS <= value <= MAX_ROUNDS:
        raise ResultsError(f"rounds must be between {MIN_ROUNDS} and {MAX_ROUNDS}, got {value}")
    return value


def campaign_results(campaign: Campaign, *, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> dict[str, Any]:
    """Every table and plot of the campaign's results. Cached under a digest of the loaded judgments, so an
    answer changed, added or excluded anywhere gives a new key: the cache never shows stale numbers."""
    data = load_campaign(campaign)
    key = f"metrics:campaign-results:{RESULTS_FORMAT_VERSION}:{data.fingerprint}:{rounds}:{seed}"
    results = cache.get(key)
    if results is None:
        results = build_results(data, rounds=rounds, seed=seed)
        cache.set(key, results, timeout=24 * 3600)
    return results


def build_results(data: CampaignJudgments, *, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> dict[str, Any]:
    campaign = data.campaign
    models = [
        {"position": i, "role": _role(campaign, i), "id": m.pk, "label": m.label}
        for i, m in enumerate(data.models)
    ]
    tables: list[Table] = []
    plots: list[dict[str, Any]] = []
    notes: list[str] = []
    if campaign.kind in (Campaign.Kind.PAIRWISE, Campaign.Kind.AB_SHARED_NOISE) and data.paired:
        metric1_tables, metric1_plot = _metric1(data, rounds, seed)
        tables += metric1_tables
        plots.append(metric1_plot)
        notes.append(fill(METRIC1_NOTE, a=data.models[0].label, b=data.models[1].label, rounds=rounds))
        notes.append(POOLED_SIGN_TEST_NOTE)
    if campaign.kind == Campaign.Kind.AB_SHARED_NOISE and data.paired:
        share_table, share_plot = _ab_shares(data, rounds, seed)
        tables.append(share_table)
        plots.append(share_plot)
        notes.append(
            gettext_noop(
                "A/B shares: the preferred model gets 1 point, 'no preference' gives each model 0.5; each share's "
                "interval (95%) is bootstrapped over prompts."
            )
        )
    if campaign.kind == Campaign.Kind.SEED_PREFERENCE and data.paired:
        tables.append(_seed_preference_summary(data))
    skipped = data.skipped.as_dict()
    if campaign.kind == Campaign.Kind.RUBRIC and data.rubric:
        metric2_tables, metric2_plot, skipped["metric2_prompts_left_out"] = _metric2(data)
        tables += metric2_tables
        plots.append(metric2_plot)
        notes.append(METRIC2_NOTE)
    if data.paired:
        agreement_tables, heatmap = _paired_agreement(data)
        tables += agreement_tables
        if heatmap:
            plots.append(heatmap)
        notes.append(
            gettext_noop(
                "Agreement on pairwise answers is measured on the canonical preference (A better / tie / B "
                "better), not on the side chosen: sides are randomised per annotator, so 'left' shows different "
                "models to different annotators. Krippendorff's alpha is nominal; Fleiss' kappa uses the units "
                "with the most common number of raters. Position bias is the share of 'left' answers."
            )
        )
    if data.rubric:
        agreement_tables, heatmap = _rubric_agreement(data)
        tables += agreement_tables
        if heatmap:
            plots.append(heatmap)
        notes.append(
            gettext_noop(
                "Rubric agreement: Krippendorff's alpha is ordinal for each dimension, with units = (prompt, "
                "video); Fleiss' kappa (scores 1-5 as categories) uses the units with the most common number of "
                "raters; the matrix gives the share of (video, dimension) scores two annotators gave alike."
            )
        )
    if not data.paired and not data.rubric:
        notes.append(gettext_noop("No analysable judgment yet."))
    return {
        "campaign": {
            "id": campaign.pk,
            "name": campaign.name,
            "kind": campaign.kind,
            "kind_label": untranslated(campaign.get_kind_display()),  # one JSON for every language
            "benchmark": campaign.benchmark.slug,
        },
        "models": models,
        "annotators": data.annotators,
        "judgments_analysed": len(
            {j.judgment_id for j in data.paired} | {r.judgment_id for r in data.rubric}
        ),
        "rounds": rounds,
        "seed": seed,
        "skipped": skipped,
        "notes": notes,
        "tables": [t.as_dict() for t in tables],
        "plots": plots,
    }


def _role(campaign: Campaign, position: int) -> str:
    if campaign.kind in (Campaign.Kind.PAIRWISE, Campaign.Kind.AB_SHARED_NOISE):
        return "A" if position == 0 else "B"
    return ""


def _annotator_key(username: str) -> str:
    return f"annotator:{username}"


def _number(value: float | None) -> float | None:
    """A JSON-safe float: NaN (undefined) becomes None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


# ------------------------------------------------------------------------------------------ Metric-1


def _metric1(data: CampaignJudgments, rounds: int, seed: int) -> tuple[list[Table], dict[str, Any]]:
    a_label, b_label = data.models[0].label, data.models[1].label
    categories = categories_in_order(j.prompt for j in data.paired)
    scopes = [OVERALL, *categories]
    people = [*data.annotators, POOLED]
    # (scope, annotator) -> prompt id -> [wins, ties, losses]
    per_prompt: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(dict)
    for judgment in data.paired:
        outcome = OUTCOME_INDEX[judgment.outcome_for_a]
        for scope in (OVERALL, judgment.prompt.category):
            for person in (judgment.annotator, POOLED):
                counts = per_prompt[(scope, person)].setdefault(judgment.prompt.prompt_id, [0, 0, 0])
                counts[outcome] += 1

    # The majority of each prompt's pooled votes, as one outcome per prompt: (scope, MAJORITY) -> prompt -> one-hot
    for scope in scopes:
        for prompt_id, (wins, ties, losses) in per_prompt.get((scope, POOLED), {}).items():
            verdict = majority_of_counts(WinTieLoss(wins, ties, losses))
            one_hot = [0, 0, 0]
            one_hot[OUTCOME_INDEX[verdict]] = 1
            per_prompt[(scope, MAJORITY)][prompt_id] = one_hot

    long_rows: list[dict[str, Any]] = []
    wide_rows: list[dict[str, Any]] = []
    for scope in scopes:
        wide = {"category": scope}
        for person in [*people, MAJORITY]:
            prompts = per_prompt.get((scope, person))
            if not prompts:
                wide[_annotator_key(person)] = None
                continue
            wins, ties, losses = (sum(c[i] for c in prompts.values()) for i in range(3))
            counts = WinTieLoss(wins, ties, losses)
            low, high = bootstrap_over_prompts(
                [tuple(c) for c in prompts.values()], rounds=rounds, seed=seed, statistic="win_rate"
            )
            wide[_annotator_key(person)] = str(counts)
            long_rows.append(
                {
                    "category": scope,
                    "annotator": person,
                    "wins": wins,
                    "ties": ties,
                    "losses": losses,
                    "wtl": str(counts),
                    "judgments": counts.total
                    if person != MAJORITY
                    else sum(sum(c) for c in per_prompt[(scope, POOLED)].values()),
                    "prompts": len(prompts),
                    "win_rate": _number(counts.win_rate),
                    "ci_low": _number(low),
                    "ci_high": _number(high),
                    "sign_p": sign_test(wins, losses),
                }
            )
        wide_rows.append(wide)

    wide_table = Table(
        "metric1_wtl",
        fill(METRIC1_WTL_TITLE, a=a_label, b=b_label),
        [
            Column("category", gettext_noop("Category")),
            *[Column(_annotator_key(p), p) for p in data.annotators],
            Column(_annotator_key(POOLED), POOLED),
            Column(_annotator_key(MAJORITY), MAJORITY),
        ],
        wide_rows,
        note=gettext_noop(
            "The shape of the report's Tables 7, 9 and 10; the last column counts prompts, by their majority."
        ),
    )
    long_table = Table(
        "metric1_rows",
        fill(METRIC1_ROWS_TITLE, a=a_label, b=b_label),
        [
            Column("category", gettext_noop("Category")),
            Column("annotator", gettext_noop("Annotator")),
            Column("wins", gettext_noop("Wins"), "int"),
            Column("ties", gettext_noop("Ties"), "int"),
            Column("losses", gettext_noop("Losses"), "int"),
            Column("wtl", gettext_noop("W-T-L")),
            Column("judgments", gettext_noop("Judgments"), "int"),
            Column("prompts", gettext_noop("Prompts"), "int"),
            Column("win_rate", gettext_noop("Win rate of A"), "float"),
            Column("ci_low", gettext_noop("95% CI low"), "float"),
            Column("ci_high", gettext_noop("95% CI high"), "float"),
            Column("sign_p", gettext_noop("Sign test p"), "p"),
        ],
        long_rows,  # how these are made: METRIC1_NOTE and POOLED_SIGN_TEST_NOTE, the results' notes
    )

    votes: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    prompt_info = {}
    for judgment in data.paired:
        votes[judgment.prompt.prompt_id][judgment.annotator].append(judgment.outcome_for_a)
        prompt_info[judgment.prompt.prompt_id] = judgment.prompt
    prompt_rows = []
    for prompt_id, prompt in sorted(prompt_info.items(), key=lambda item: item[1].position):
        row: dict[str, Any] = {"prompt": prompt.position, "category": prompt.category, "text": prompt.text}
        all_votes: list[str] = []
        for person in data.annotators:
            mine = votes[prompt_id].get(person, [])
            row[_annotator_key(person)] = " ".join(mine) if mine else None
            all_votes += mine
        counts = Counter(all_votes)
        row["wtl"] = f"{counts['win']}-{counts['tie']}-{counts['loss']}"
        row["majority"] = majority(all_votes)
        prompt_rows.append(row)
    prompt_table = Table(
        "metric1_prompts",
        gettext_noop("Metric-1 per prompt: each annotator's vote (from A's side) and the majority"),
        [
            Column("prompt", gettext_noop("Prompt"), "int"),
            Column("category", gettext_noop("Category")),
            Column("text", gettext_noop("Text")),
            *[Column(_annotator_key(p), p) for p in data.annotators],
            Column("wtl", gettext_noop("W-T-L")),
            Column("majority", gettext_noop("Majority")),
        ],
        prompt_rows,
        note=gettext_noop(
            "A side is the majority with more votes than the other side and at least as many as the ties; "
            "otherwise the majority is 'tie'."
        ),
    )

    pooled = [r for r in long_rows if r["annotator"] == POOLED]
    figure = plot(
        "wtl_by_category",
        fill(METRIC1_PLOT_TITLE, a=a_label, b=b_label),
        [
            {
                "type": "bar",
                "name": name,
                "x": [r["category"] for r in pooled],
                "y": [r[key] for r in pooled],
                "marker": {"color": color},
            }
            for name, key, color in (
                (fill(A_WINS_TRACE, a=a_label), "wins", "#2b8a3e"),
                (TIE_TRACE, "ties", "#adb5bd"),
                (fill(B_WINS_TRACE, b=b_label), "losses", "#c92a2a"),
            )
        ],
        barmode="stack",
        yaxis={"title": {"text": gettext_noop("judgments")}},
    )
    return [wide_table, long_table, prompt_table], figure


def _ab_shares(data: CampaignJudgments, rounds: int, seed: int) -> tuple[Table, dict[str, Any]]:
    points = {"a": "a", "tie": "none", "b": "b"}
    by_scope: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for judgment in data.paired:
        entry = (judgment.prompt.prompt_id, points[judgment.canonical])
        by_scope[OVERALL].append(entry)
        by_scope[judgment.prompt.category].append(entry)
    a_label, b_label = data.models[0].label, data.models[1].label
    rows = []
    for scope in [OVERALL, *categories_in_order(j.prompt for j in data.paired)]:
        shares = preference_shares(by_scope[scope], rounds=rounds, seed=seed)
        for role, label, points_, share, (low, high) in (
            ("A", a_label, shares.points_a, shares.share_a, shares.ci_a),
            ("B", b_label, shares.points_b, shares.share_b, shares.ci_b),
        ):
            rows.append(
                {
                    "category": scope,
                    "model": f"{label} ({role})",
                    "points": points_,
                    "share": share,
                    "ci_low": low,
                    "ci_high": high,
                    "judgments": shares.n_judgments,
                    "prompts": shares.n_prompts,
                }
            )
    table = Table(
        "ab_shares",
        gettext_noop("A/B with shared noise: preference shares"),
        [
            Column("category", gettext_noop("Category")),
            Column("model", gettext_noop("Model")),
            Column("points", gettext_noop("Points"), "mean"),
            Column("share", gettext_noop("Share"), "pct"),
            Column("ci_low", gettext_noop("95% CI low"), "pct"),
            Column("ci_high", gettext_noop("95% CI high"), "pct"),
            Column("judgments", gettext_noop("Judgments"), "int"),
            Column("prompts", gettext_noop("Prompts"), "int"),
        ],
        rows,
        note=gettext_noop("Preferred model 1 point, no preference 0.5 each (the report's 55% vs 45%)."),
    )
    overall = [r for r in rows if r["category"] == OVERALL]
    figure = plot(
        "ab_shares",
        gettext_noop("Preference shares and their intervals (95%)"),
        [
            {
                "type": "bar",
                "x": [r["model"] for r in overall],
                "y": [r["share"] for r in overall],
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [r["ci_high"] - r["share"] for r in overall],
                    "arrayminus": [r["share"] - r["ci_low"] for r in overall],
                },
            }
        ],
        yaxis={"title": {"text": gettext_noop("share (%)")}, "range": [0, 100]},
    )
    return table, figure


def _seed_preference_summary(data: CampaignJudgments) -> Table:
    rows = []
    for person in [*data.annotators, ALL_ANNOTATORS]:
        mine = [j for j in data.paired if person in (j.annotator, ALL_ANNOTATORS)]
        ties = sum(j.canonical == "tie" for j in mine)
        rows.append(
            {
                "annotator": person,
                "judgments": len(mine),
                "decisive": len(mine) - ties,
                "ties": ties,
                "tie_share": 100.0 * ties / len(mine) if mine else None,
                "pairs": len({j.unit for j in mine}),
            }
        )
    return Table(
        "seed_preference_summary",
        gettext_noop("Seed preference: answers per annotator"),
        [
            Column("annotator", gettext_noop("Annotator")),
            Column("judgments", gettext_noop("Judgments"), "int"),
            Column("decisive", gettext_noop("Decisive"), "int"),
            Column("ties", gettext_noop("No preference"), "int"),
            Column("tie_share", gettext_noop("No-preference share"), "pct"),
            Column("pairs", gettext_noop("Video pairs"), "int"),
        ],
        rows,
        note=gettext_noop(
            "Both videos come from one model: the preference data set for DPO is exported from these answers."
        ),
    )


# ------------------------------------------------------------------------------------------ Metric-2


def _joined_sums(totals: Sequence[float | None]) -> str | None:
    if all(t is None for t in totals):
        return None
    return "-".join("—" if t is None else f"{round(t):,}" for t in totals)


def _scores_per_model(rows: Iterable[RubricRow], key: Any) -> dict[Any, Counter[int]]:
    """For each group of rows with the same key(row): how many score rows each model has."""
    groups: dict[Any, Counter[int]] = defaultdict(Counter)
    for row in rows:
        groups[key(row)][row.model_id] += 1
    return groups


def _is_balanced(counts: Counter[int], model_ids: list[int]) -> bool:
    """Every compared model has the same number (at least one) of score rows."""
    return counts[model_ids[0]] > 0 and all(counts[m] == counts[model_ids[0]] for m in model_ids)


def _metric2_left_out(
    data: CampaignJudgments, per_prompt: dict[int, Counter[int]], model_ids: list[int]
) -> list[dict[str, Any]]:
    """The prompts with scores that Metric-2 leaves out because the models are not scored alike on them."""
    labels = {m.pk: m.label for m in data.models}
    prompts = {row.prompt.prompt_id: row.prompt for row in data.rubric}
    left_out = []
    for prompt_id, counts in per_prompt.items():
        if _is_balanced(counts, model_ids):
            continue
        prompt = prompts[prompt_id]
        left_out.append(
            {
                "prompt": prompt.position,
                "text": prompt.text,
                "category": prompt.category,
                "scores": ", ".join(f"{labels[m]}: {counts[m]}" for m in model_ids),
                "reason": METRIC2_UNSCORED if any(counts[m] == 0 for m in model_ids) else METRIC2_UNEQUAL,
            }
        )
    return sorted(left_out, key=lambda entry: entry["prompt"])


def _metric2(data: CampaignJudgments) -> tuple[list[Table], dict[str, Any], list[dict[str, Any]]]:
    """Metric-2 tables over the prompts where the models are scored alike (see METRIC2_NOTE), the plot, and
    the prompts left out of them."""
    model_ids = [m.pk for m in data.models]
    labels = {m.pk: m.label for m in data.models}
    per_prompt = _scores_per_model(data.rubric, lambda row: row.prompt.prompt_id)
    balanced_prompts = {p for p, counts in per_prompt.items() if _is_balanced(counts, model_ids)}
    per_annotator_prompt = _scores_per_model(data.rubric, lambda row: (row.annotator, row.prompt.prompt_id))
    balanced_annotator_prompts = {
        key for key, counts in per_annotator_prompt.items() if _is_balanced(counts, model_ids)
    }
    compared = [row for row in data.rubric if row.prompt.prompt_id in balanced_prompts]
    categories = categories_in_order(r.prompt for r in compared)
    # (scope, model, dimension index) -> scores, scope being a category or OVERALL, or an annotator
    by_category: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    by_annotator: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    prompts_in: dict[str, set[int]] = defaultdict(set)
    for row in data.rubric:
        prompt_id = row.prompt.prompt_id
        if prompt_id in balanced_prompts:
            prompts_in[OVERALL].add(prompt_id)
            prompts_in[row.prompt.category].add(prompt_id)
            for d, value in enumerate(row.scores):
                by_category[(OVERALL, row.model_id, d)].append(value)
                by_category[(row.prompt.category, row.model_id, d)].append(value)
        if (row.annotator, prompt_id) in balanced_annotator_prompts:
            prompts_in[_annotator_key(row.annotator)].add(prompt_id)
            for d, value in enumerate(row.scores):
                by_annotator[(row.annotator, row.model_id, d)].append(value)

    def summaries(store, scope):
        return {
            (model_id, d): score_summary(store[(scope, model_id, d)])
            if store.get((scope, model_id, d))
            else None
            for model_id in model_ids
            for d in range(len(RUBRIC_DIMENSIONS))
        }

    joined_label = "-".join(labels[m] for m in model_ids)
    dimension_columns = [Column(dim, DIMENSION_LABELS[dim]) for dim in RUBRIC_DIMENSIONS]
    wide_category, long_category = [], []
    for scope in [OVERALL, *categories]:
        summary = summaries(by_category, scope)
        wide: dict[str, Any] = {"category": scope, "prompts": len(prompts_in[scope])}
        for d, dim in enumerate(RUBRIC_DIMENSIONS):
            cells = [summary[(m, d)] for m in model_ids]
            wide[dim] = _joined_sums([c.total if c else None for c in cells])
            for model_id, cell in zip(model_ids, cells, strict=True):
                if cell:
                    long_category.append(
                        {
                            "category": scope,
                            "dimension": DIMENSION_LABELS[dim],
                            "model": labels[model_id],
                            "sum": round(cell.total),
                            "mean": cell.mean,
                            "n": cell.n,
                        }
                    )
        wide_category.append(wide)
    wide_annotator, long_annotator = [], []
    for person in data.annotators:
        summary = summaries(by_annotator, person)
        wide = {"annotator": person, "prompts": len(prompts_in[_annotator_key(person)])}
        for d, dim in enumerate(RUBRIC_DIMENSIONS):
            cells = [summary[(m, d)] for m in model_ids]
            wide[dim] = _joined_sums([c.total if c else None for c in cells])
            for model_id, cell in zip(model_ids, cells, strict=True):
                if cell:
                    long_annotator.append(
                        {
                            "annotator": person,
                            "model": labels[model_id],
                            "dimension": DIMENSION_LABELS[dim],
                            "sum": round(cell.total),
                            "mean": cell.mean,
                            "n": cell.n,
                        }
                    )
        wide_annotator.append(wide)
    long_columns = [
        Column("sum", gettext_noop("Sum"), "int"),
        Column("mean", gettext_noop("Mean"), "mean"),
        Column("n", gettext_noop("Scores"), "int"),
    ]
    tables = [
        Table(
            "metric2_sums",
            fill(METRIC2_SUMS_TITLE, models=joined_label),
            [
                Column("category", gettext_noop("Category")),
                Column("prompts", gettext_noop("Prompts"), "int"),
                *dimension_columns,
            ],
            wide_category,
            note=gettext_noop(
                "The shape of the report's Table 8: each cell gives the models' sums in the order of the title, "
                "over the prompts on which every model has the same number of scores."
            ),
        ),
        Table(
            "metric2_by_category",
            gettext_noop("Metric-2 per category, dimension and model: sums and means"),
            [
                Column("category", gettext_noop("Category")),
                Column("dimension", gettext_noop("Dimension")),
                Column("model", gettext_noop("Model")),
                *long_columns,
            ],
            long_category,
        ),
        Table(
            "metric2_annotator_sums",
            fill(METRIC2_ANNOTATOR_SUMS_TITLE, models=joined_label),
            [
                Column("annotator", gettext_noop("Annotator")),
                Column("prompts", gettext_noop("Prompts"), "int"),
                *dimension_columns,
            ],
            wide_annotator,
            note=gettext_noop(
                "The shape of the report's Table 11: each annotator's sums over the prompts on which that "
                "annotator scored every model (the same number of times)."
            ),
        ),
        Table(
            "metric2_by_annotator",
            gettext_noop("Metric-2 per annotator, model and dimension: sums and means"),
            [
                Column("annotator", gettext_noop("Annotator")),
                Column("model", gettext_noop("Model")),
                Column("dimension", gettext_noop("Dimension")),
                *long_columns,
            ],
            long_annotator,
        ),
        _metric2_tests(compared, model_ids, labels),
    ]
    overall = summaries(by_category, OVERALL)
    figure = plot(
        "dimensions_by_model",
        gettext_noop("Mean score per dimension and model"),
        [
            {
                "type": "bar",
                "name": labels[model_id],
                "x": [DIMENSION_LABELS[dim] for dim in RUBRIC_DIMENSIONS],
                "y": [
                    overall[(model_id, d)].mean if overall[(model_id, d)] else None
                    for d in range(len(RUBRIC_DIMENSIONS))
                ],
            }
            for model_id in model_ids
        ],
        barmode="group",
        yaxis={"title": {"text": gettext_noop("mean score (1-5)")}, "range": [0, 5]},
    )
    return tables, figure, _metric2_left_out(data, per_prompt, model_ids)


def _metric2_tests(rows: list[RubricRow], model_ids: list[int], labels: dict[int, str]) -> Table:
    # (prompt, model) -> dimension index -> scores over annotators
    per_prompt: dict[tuple[int, int], list[list[int]]] = {}
    for row in rows:
        cells = per_prompt.setdefault((row.prompt.prompt_id, row.model_id), [[] for _ in RUBRIC_DIMENSIONS])
        for d, value in enumerate(row.scores):
            cells[d].append(value)
    prompt_ids = sorted({prompt_id for prompt_id, _ in per_prompt})
    results = []
    for first, second in combinations(model_ids, 2):
        shared = [p for p in prompt_ids if (p, first) in per_prompt and (p, second) in per_prompt]
        for d, dim in enumerate(RUBRIC_DIMENSIONS):
            a = [sum(v) / len(v) for v in (per_prompt[(p, first)][d] for p in shared)]
            b = [sum(v) / len(v) for v in (per_prompt[(p, second)][d] for p in shared)]
            if not shared:
                continue
            test = paired_wilcoxon(a, b)
            results.append(
                {
                    "dimension": DIMENSION_LABELS[dim],
                    "model_1": labels[first],
                    "model_2": labels[second],
                    "prompts": test.n_pairs,
                    "mean_1": sum(a) / len(a),
                    "mean_2": sum(b) / len(b),
                    "nonzero": test.n_nonzero,
                    "statistic": test.statistic,
                    "p": test.p_value,
                }
            )
    return Table(
        "metric2_tests",
        gettext_noop(
            "Metric-2 paired tests: Wilcoxon signed-rank over prompts, per dimension and pair of models"
        ),
        [
            Column("dimension", gettext_noop("Dimension")),
            Column("model_1", gettext_noop("Model 1")),
            Column("model_2", gettext_noop("Model 2")),
            Column("prompts", gettext_noop("Prompts"), "int"),
            Column("mean_1", gettext_noop("Mean 1"), "mean"),
            Column("mean_2", gettext_noop("Mean 2"), "mean"),
            Column("nonzero", gettext_noop("Non-zero differences"), "int"),
            Column("statistic", gettext_noop("W"), "mean"),
            Column("p", gettext_noop("p"), "p"),
        ],
        results,
        note=gettext_noop(
            "On each prompt's mean score across annotators; two-sided, zero differences dropped."
        ),
    )


# ------------------------------------------------------------------------------------------ agreement


AGREEMENT_COLUMNS = [
    Column("units", gettext_noop("Units"), "int"),
    Column("alpha", gettext_noop("Krippendorff's alpha"), "float"),
    Column("kappa", gettext_noop("Fleiss' kappa"), "float"),
    Column("kappa_units", gettext_noop("Units in kappa"), "int"),
    Column("raters", gettext_noop("Raters per unit (kappa)"), "int"),
]


def _matrix_tables(
    key: str, labels_by_annotator: dict[str, dict[Any, Any]], title: str, common: str
) -> tuple[list[Table], dict[str, Any] | None]:
    """The agreement matrix (titled `title`), the table of pairs (`common`: its column of units two
    annotators both answered) and the heatmap."""
    people = sorted(labels_by_annotator)
    if len(people) < 2:
        return [], None
    pairs = pairwise_agreement({p: labels_by_annotator[p] for p in people})
    share: dict[tuple[str, str], float | None] = {}
    for (first, second), result in pairs.items():
        share[(first, second)] = share[(second, first)] = result.share
    matrix_rows = []
    for first in people:
        row: dict[str, Any] = {"annotator": first}
        for second in people:
            row[_annotator_key(second)] = 1.0 if first == second else share[(first, second)]
        matrix_rows.append(row)
    long_rows = [
        {"annotator_1": first, "annotator_2": second, "agreement": result.share, "common": result.n_common}
        for (first, second), result in pairs.items()
    ]
    tables = [
        Table(
            f"{key}_matrix",
            title,
            [
                Column("annotator", gettext_noop("Annotator")),
                *[Column(_annotator_key(p), p, "float") for p in people],
            ],
            matrix_rows,
            note=gettext_noop("Raw agreement, not chance-corrected."),
        ),
        Table(
            f"{key}_pairs",
            gettext_noop("Agreement between each pair of annotators"),
            [
                Column("annotator_1", gettext_noop("Annotator 1")),
                Column("annotator_2", gettext_noop("Annotator 2")),
                Column("agreement", gettext_noop("Agreement"), "float"),
                Column("common", common, "int"),
            ],
            long_rows,
        ),
    ]
    figure = plot(
        f"{key}_heatmap",
        gettext_noop("Agreement between annotators"),
        [
            {
                "type": "heatmap",
                "x": people,
                "y": people,
                "z": [[row[_annotator_key(p)] for p in people] for row in matrix_rows],
                "zmin": 0,
                "zmax": 1,
                "colorscale": "Blues",
            }
        ],
        yaxis={"autorange": "reversed"},
    )
    return tables, figure


def _agreement_row(agreement: Agreement) -> dict[str, Any]:
    """The agreement columns of a table row (the annotators are in the results' own list)."""
    return {key: value for key, value in asdict(agreement).items() if key != "annotators"}


def _paired_agreement(data: CampaignJudgments) -> tuple[list[Table], dict[str, Any] | None]:
    rows = [{"category": scope, **_agreement_row(a)} for scope, a in paired_agreement(data.paired).items()]
    tables = [
        Table(
            "agreement",
            gettext_noop(
                "Agreement on the canonical preference (A better / tie / B better), per campaign and category"
            ),
            [Column("category", gettext_noop("Category")), *AGREEMENT_COLUMNS],
            rows,
            note=gettext_noop("Nominal alpha; a unit is a pair of videos for one prompt."),
        )
    ]
    matrix_tables, heatmap = _matrix_tables(
        "agreement",
        paired_labels(data.paired)[OVERALL],
        gettext_noop("Agreement between annotators: share of common pairs answered alike"),
        gettext_noop("Common pairs"),
    )
    tables += matrix_tables
    tables.append(_position_bias(data.paired))
    return tables, heatmap


def _position_bias(judgments: list[PairedJudgment]) -> Table:
    rows = [
        {
            "annotator": person,
            "answers": bias.n,
            "left": bias.left_share,
            "tie": bias.tie_share,
            "right": bias.right_share,
            "p": bias.p_value,
        }
        for person, bias in position_bias_by_annotator(judgments).items()
    ]
    return Table(
        "position_bias",
        gettext_noop("Position bias: share of answers choosing the left video, per annotator"),
        [
            Column("annotator", gettext_noop("Annotator")),
            Column("answers", gettext_noop("Answers"), "int"),
            Column("left", gettext_noop("Left"), "float"),
            Column("tie", gettext_noop("Tie"), "float"),
            Column("right", gettext_noop("Right"), "float"),
            Column("p", gettext_noop("Binomial p (left vs right)"), "p"),
        ],
        rows,
        note=gettext_noop("With sides randomised, a small p means the annotator favours a side."),
    )


def _rubric_agreement(data: CampaignJudgments) -> tuple[list[Table], dict[str, Any] | None]:
    exact: dict[str, dict[Any, int]] = defaultdict(dict)
    for row in data.rubric:
        for d, value in enumerate(row.scores):
            exact[row.annotator][(row.unit, d)] = value
    rows = [
        {"category": scope, "dimension": DIMENSION_LABELS[dimension], **_agreement_row(a)}
        for (scope, dimension), a in rubric_agreement(data.rubric).items()
    ]
    tables = [
        Table(
            "rubric_agreement",
            gettext_noop("Agreement on rubric scores, per dimension, campaign and category"),
            [
                Column("category", gettext_noop("Category")),
                Column("dimension", gettext_noop("Dimension")),
                *AGREEMENT_COLUMNS,
            ],
            rows,
            note=gettext_noop(
                "Ordinal alpha with units = (prompt, video); kappa treats the scores 1-5 as categories."
            ),
        )
    ]
    matrix_tables, heatmap = _matrix_tables(
        "rubric_agreement",
        exact,
        gettext_noop(
            "Agreement between annotators: share of common (video, dimension) scores answered alike"
        ),
        gettext_noop("Common (video, dimension) scores"),
    )
    return tables + matrix_tables, heatmap


# ------------------------------------------------------------------------------------------ display


def format_value(value: Any, kind: str) -> str:
    """How a table cell reads on the page (downloads keep the raw values)."""
    if value is None:
        return "—"
    if kind == "int":
        return f"{value:,}"
    if kind == "float":
        return f"{value:.3f}"
    if kind == "mean":
        return f"{value:.2f}"
    if kind == "pct":
        return f"{value:.1f}%"
    if kind == "rating":
        return f"{value:.1f}"
    if kind == "p":
        return "<0.0001" if value < 0.0001 else f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def display_rows(table: dict[str, Any]) -> list[list[str]]:
    """The table's rows as the page shows them: one formatted string per column."""
    columns = table["columns"]
    return [[format_value(row.get(c["key"]), c["kind"]) for c in columns] for row in table["rows"]]


def find_table(results: dict[str, Any], key: str) -> dict[str, Any]:
    for table in results["tables"]:
        if table["key"] == key:
            return table
    raise ResultsError(f"no table {key!r}; tables here: {', '.join(t['key'] for t in results['tables'])}")


def find_plot(results: dict[str, Any], key: str) -> dict[str, Any]:
    for figure in results["plots"]:
        if figure["key"] == key:
            return figure
    raise ResultsError(f"no plot {key!r}; plots here: {', '.join(p['key'] for p in results['plots'])}")


# What metrics.human.display recognises in the results: the texts with blanks (texts without blanks are
# msgids themselves) and the words a cell may hold (a cell of data, a name or a prompt, is never one).
PHRASES = Phrasebook(
    METRIC1_NOTE,
    METRIC1_WTL_TITLE,
    METRIC1_ROWS_TITLE,
    METRIC1_PLOT_TITLE,
    A_WINS_TRACE,
    TIE_TRACE,
    B_WINS_TRACE,
    METRIC2_SUMS_TITLE,
    METRIC2_ANNOTATOR_SUMS_TITLE,
)
CELL_WORDS = Phrasebook(
    OVERALL,
    NO_CATEGORY,
    ALL_ANNOTATORS,
    POOLED,
    MAJORITY,
    *OUTCOME_WORDS,
    METRIC2_UNSCORED,
    METRIC2_UNEQUAL,
)
