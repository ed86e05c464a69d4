"""What every analysis of judgments leaves out, and why: one set of rules, owned by the app that owns the
judgments and read here once, for the results pages and the `results` command
(`metrics.human.judgments.load_campaign`), the quality page (`annotation.quality`), the leaderboard
(`metrics.human.judgments.judgment_scope`) and the preference exports (`preference.selectors`).

A judgment is checked against the rules in this order and counted under the first that matches:
- `repeat` (`is_repeat=True`): repeats measure an annotator's self-consistency, they are not results;
- `excluded_annotator`: every judgment of an annotator a manager excluded from that campaign;
- `prompt_not_in_campaign`: every judgment of a prompt the campaign left out when it was made
  (`ExcludedPrompt`: no ready video, refused, too few seeds). Such a prompt is listed as left out, so it is
  never also counted (`import_judgments` refuses rows for it; this rule covers judgments stored before);
- `problem_prompt`: every judgment of a prompt on which any item of that campaign has a problem report. A
  broken video or an unreadable prompt taints the comparison of the whole prompt, not only the reporter's
  answer or the reported item: in a rubric campaign shown one video at a time each model's video is its own
  item, and dropping only that item would leave the other models' scores for the prompt in their sums;
- `refused_prompt`: every judgment of a prompt that any model compared in that campaign refused
  (`generation.models.Refusal`): there is no fair comparison on it, so it is dropped for every model. (In a
  seed-preference campaign, with one model, a refused prompt has no videos to judge anyway.)

Four small queries, however many judgments there are; the rules are then checked in Python
(`LeftOutRules.reason`) or by the database (`LeftOutRules.condition`, a Q with no subquery per row).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import F, Q
from django.utils.translation import gettext_noop

from annotation.models import AnnotatorExclusion, ExcludedPrompt, ProblemReport
from generation.models import Refusal

REPEAT = "repeat"
EXCLUDED_ANNOTATOR = "excluded_annotator"
PROMPT_NOT_IN_CAMPAIGN = "prompt_not_in_campaign"
PROBLEM_PROMPT = "problem_prompt"
REFUSED_PROMPT = "refused_prompt"
REASONS = (REPEAT, EXCLUDED_ANNOTATOR, PROMPT_NOT_IN_CAMPAIGN, PROBLEM_PROMPT, REFUSED_PROMPT)
REASON_LABELS = {  # English, as the results JSON holds them; pages translate them
    REPEAT: gettext_noop("repeat"),
    EXCLUDED_ANNOTATOR: gettext_noop("excluded annotator"),
    PROMPT_NOT_IN_CAMPAIGN: gettext_noop("prompt left out of the campaign"),
    PROBLEM_PROMPT: gettext_noop("problem report on an item of the prompt"),
    REFUSED_PROMPT: gettext_noop("prompt refused by a compared model"),
}


@dataclass(frozen=True)
class Exclusion:
    campaign_id: int
    annotator_id: int
    annotator: str  # username
    reason: str


@dataclass(frozen=True)
class PromptNotInCampaign:
    campaign_id: int
    prompt_id: int
    prompt_position: int
    model_id: int | None
    reason: str  # ExcludedPrompt.Reason value


@dataclass(frozen=True)
class Problem:
    campaign_id: int
    item_id: int
    item_position: int
    prompt_id: int
    prompt_position: int
    prompt_text: str
    kind: str
    note: str


@dataclass(frozen=True)
class Refused:
    campaign_id: int
    prompt_id: int
    prompt_position: int
    prompt_text: str
    model_id: int
    reason: str


@dataclass(frozen=True)
class LeftOutRules:
    """The exclusions, problem reports and refusals that apply to some campaigns, each list in display
    order (exclusions by annotator, problems by item, refusals by prompt), and the sets derived from them."""

    exclusions: tuple[Exclusion, ...]
    problems: tuple[Problem, ...]
    refusals: tuple[Refused, ...]
    prompts_not_in_campaign: tuple[PromptNotInCampaign, ...] = ()
    excluded_annotators: dict[int, frozenset[int]] = field(init=False)  # campaign id -> annotator ids
    campaign_left_out_prompts: dict[int, frozenset[int]] = field(init=False)  # campaign id -> prompt ids
    problem_prompts: dict[int, frozenset[int]] = field(init=False)  # campaign id -> prompt ids
    refused_prompts: dict[int, frozenset[int]] = field(init=False)  # campaign id -> prompt ids

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "excluded_annotators", _sets((e.campaign_id, e.annotator_id) for e in self.exclusions)
        )
        object.__setattr__(
            self,
            "campaign_left_out_prompts",
            _sets((e.campaign_id, e.prompt_id) for e in self.prompts_not_in_campaign),
        )
        object.__setattr__(
            self, "problem_prompts", _sets((p.campaign_id, p.prompt_id) for p in self.problems)
        )
        object.__setattr__(
            self, "refused_prompts", _sets((r.campaign_id, r.prompt_id) for r in self.refusals)
        )

    def reason(
        self,
        *,
        campaign_id: int,
        annotator_id: int,
        prompt_id: int,
        is_repeat: bool,
        keep_excluded_annotators: bool = False,
    ) -> str:
        """The first rule that leaves this judgment out, or "" when it counts. With
        `keep_excluded_annotators`, an excluded annotator's judgments are checked against the other rules
        as if they counted (the quality page measures them to show why they were excluded)."""
        if is_repeat:
            return REPEAT
        if not keep_excluded_annotators and annotator_id in self.excluded_annotators.get(campaign_id, ()):
            return EXCLUDED_ANNOTATOR
        if prompt_id in self.campaign_left_out_prompts.get(campaign_id, ()):
            return PROMPT_NOT_IN_CAMPAIGN
        if prompt_id in self.problem_prompts.get(campaign_id, ()):
            return PROBLEM_PROMPT
        if prompt_id in self.refused_prompts.get(campaign_id, ()):
            return REFUSED_PROMPT
        return ""

    def condition(self) -> Q:
        """A Q on Judgment matching exactly the judgments `reason` leaves out. Built from the (few) rules, so
        the database checks plain column values on each judgment."""
        condition = Q(is_repeat=True)
        for campaign_id, annotator_ids in sorted(self.excluded_annotators.items()):
            # Built with & to keep this order: the cheap equality first, so most rows fail it at once.
            condition |= Q(campaign_id=campaign_id) & Q(annotator_id__in=sorted(annotator_ids))
        # One clause per prompt left out (there are few), not per campaign: the database tests every row
        # against every clause, and with many campaigns sharing a refusing model this is the shorter list.
        campaigns_by_prompt: dict[int, set[int]] = defaultdict(set)
        for by_campaign in (self.campaign_left_out_prompts, self.problem_prompts, self.refused_prompts):
            for campaign_id, prompt_ids in by_campaign.items():
                for prompt_id in prompt_ids:
                    campaigns_by_prompt[prompt_id].add(campaign_id)
        for prompt_id, campaign_ids in sorted(campaigns_by_prompt.items()):
            condition |= Q(prompt_id=prompt_id) & Q(campaign_id__in=sorted(campaign_ids))
        return condition


def _sets(pairs: Iterable[tuple[int, int]]) -> dict[int, frozenset[int]]:
    grouped: dict[int, set[int]] = defaultdict(set)
    for campaign_id, value in pairs:
        grouped[campaign_id].add(value)
    return {campaign_id: frozenset(values) for campaign_id, values in grouped.items()}


def left_out_rules(campaign_ids: Iterable[int]) -> LeftOutRules:
    """The rules for judgments of these campaigns (four queries)."""
    ids = sorted(set(campaign_ids))
    exclusions = tuple(
        Exclusion(*row)
        for row in AnnotatorExclusion.objects.filter(campaign_id__in=ids)
        .order_by("campaign_id", "annotator__username")
        .values_list("campaign_id", "annotator_id", "annotator__username", "reason")
    )
    problems = tuple(
        Problem(*row)
        for row in ProblemReport.objects.filter(assignment__campaign_id__in=ids)
        .order_by("assignment__campaign_id", "assignment__item__position", "created_at", "pk")
        .values_list(
            "assignment__campaign_id",
            "assignment__item_id",
            "assignment__item__position",
            "assignment__item__prompt_id",
            "assignment__item__prompt__position",
            "assignment__item__prompt__text",
            "kind",
            "note",
        )
    )
    # A refusal applies to the campaigns that compare its model on its prompt's benchmark.
    refusals = tuple(
        Refused(*row)
        for row in Refusal.objects.filter(
            model__campaign_entries__campaign_id__in=ids,
            prompt__benchmark_id=F("model__campaign_entries__campaign__benchmark_id"),
        )
        .order_by("model__campaign_entries__campaign_id", "prompt__position", "model_id")
        .values_list(
            "model__campaign_entries__campaign_id",
            "prompt_id",
            "prompt__position",
            "prompt__text",
            "model_id",
            "reason",
        )
    )
    not_in_campaign = tuple(
        PromptNotInCampaign(*row)
        for row in ExcludedPrompt.objects.filter(campaign_id__in=ids)
        .order_by("campaign_id", "prompt__position", "model_id", "pk")
        .values_list("campaign_id", "prompt_id", "prompt__position", "model_id", "reason")
    )
    return LeftOutRules(
        exclusions=exclusions, problems=problems, refusals=refusals, prompts_not_in_campaign=not_in_campaign
    )
