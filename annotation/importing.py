"""Importing judgments collected elsewhere (a spreadsheet, another tool) into a campaign, from a CSV file.

The file is UTF-8 (an Excel byte-order mark is fine) with a header row; column names are matched ignoring
case and surrounding spaces, every listed column is required and no other column is accepted. The
campaign's kind decides the format:

- pairwise, seed-preference and A/B campaigns: one row per judgment,
  `prompt,annotator,left_model,right_model,choice` with `choice` one of `left`, `tie`, `right` (any case;
  nothing else: "left better" or "A" are errors). `left_model` and `right_model` are the two compared
  models as they were shown; in a seed-preference campaign both name its one model.
- rubric campaigns: one row per scored video,
  `prompt,model,annotator,instruction_following,motion_smoothness,physical_plausibility,aesthetic_appeal`
  with whole-number scores from 1 to 5.

`prompt` is the prompt's position in the campaign's benchmark (1-based, as in the benchmark file) or its
exact text, and must be in one of the categories the campaign was made from (when it was limited to
some), and not one the campaign left out when it was made (no ready video, refused, too few seeds): the
results list such a prompt as left out (`annotation.left_out`), so its judgments would never count. A model is one of the campaign's models, written `name version` (as the site shows it),
`name:version`, or just `name` when only one of the campaign's models has that name; matching is exact
apart from surrounding spaces. `annotator` is a username; unknown usernames become inactive accounts
(they cannot log in) and the report lists them.

All or nothing: every row is checked first and every problem is reported with its line number; with any
problem nothing is stored. Imported judgments have `source=import`, no item or assignment, and their
videos filled in when the model has exactly one ready video for the prompt. Importing the same file again
adds nothing: a row identical to an already-imported judgment of the campaign (annotator, prompt, models,
and choice or scores) is skipped and counted, so a file with two identical rows imports both once.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

from evalsite.accounts import USERNAME_RE
from generation.models import Prompt, Video, VideoModel

from .left_out import left_out_rules
from .models import RUBRIC_DIMENSIONS, Campaign, CampaignModel, ExcludedPrompt, Judgment, RubricScore

PAIRWISE_COLUMNS = ("prompt", "annotator", "left_model", "right_model", "choice")
SCORE_COLUMNS = ("prompt", "model", "annotator", *RUBRIC_DIMENSIONS)
CHOICES = tuple(Judgment.Choice.values)


class JudgmentImportError(ValueError):
    """The import cannot start (unknown campaign); row problems are reported in an ImportReport."""


@dataclass(frozen=True)
class ImportProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    campaign: str
    format: str  # "pairwise" or "scores"
    dry_run: bool
    rows: int = 0  # data rows read
    imported: int = 0  # judgments stored (or, in a dry run, that would be stored)
    duplicates: int = 0  # rows skipped as identical to judgments imported before
    created_annotators: list[str] = field(default_factory=list)  # inactive accounts made (or to be made)
    errors: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok, "errors": [asdict(e) for e in self.errors]}

    def summary(self) -> str:
        if self.errors:
            return f"{len(self.errors)} problem(s) found; nothing was imported."
        verb = "Would import" if self.dry_run else "Imported"
        text = f"{verb} {self.imported} judgment(s) from {self.rows} row(s)"
        if self.duplicates:
            text += f"; {self.duplicates} row(s) skipped as already imported"
        if self.created_annotators:
            made = "would be created" if self.dry_run else "created"
            text += f"; inactive accounts {made} for {', '.join(self.created_annotators)}"
        return text + "."


def find_campaign(reference: str) -> Campaign:
    """A campaign by its exact name, or else by its id."""
    reference = reference.strip()
    campaign = Campaign.objects.filter(name=reference).first()
    if campaign is None and reference.isdecimal():
        campaign = Campaign.objects.filter(pk=int(reference)).first()
    if campaign is None:
        raise JudgmentImportError(f"no campaign has the name or id {reference!r}")
    return campaign


@dataclass(frozen=True)
class _Row:
    line: int
    annotator: str
    prompt: Prompt
    models: tuple[VideoModel, ...]  # (left, right) for pairwise rows, (model,) for score rows
    choice: str = ""
    scores: tuple[int, ...] = ()

    def signature(self) -> tuple:
        return (self.annotator, self.prompt.pk, *(m.pk for m in self.models), self.choice, *self.scores)


def _read_csv(data: bytes | str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] = []
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if not header:
            header = [cell.strip().lower() for cell in cells]
        else:
            rows.append((reader.line_num, cells))
    return header, rows


class _Lookups:
    """Prompts, models and users the rows name, resolved once."""

    def __init__(self, campaign: Campaign):
        prompts = list(Prompt.objects.filter(benchmark_id=campaign.benchmark_id))
        self.benchmark = campaign.benchmark
        # the categories the campaign was made from; none chosen means every category
        self.category_ids = set(campaign.categories.values_list("pk", flat=True))
        self.prompt_at = {p.position: p for p in prompts}
        self.prompts_with_text: dict[str, list[Prompt]] = defaultdict(list)
        for prompt in prompts:
            self.prompts_with_text[prompt.text.strip()].append(prompt)
        self.models = [
            entry.model
            for entry in CampaignModel.objects.filter(campaign=campaign)
            .select_related("model")
            .order_by("position")
        ]
        # spelling -> the models it may mean; a bare name shared by two models means neither
        self.model_named: dict[str, list[VideoModel]] = defaultdict(list)
        for model in self.models:
            spellings = {str(model), f"{model.name}:{model.version}" if model.version else str(model)}
            for spelling in spellings:
                self.model_named[spelling].append(model)
        for model in self.models:
            self.model_named.setdefault(model.name, [])
            if not self.model_named[model.name] and all(
                other.name != model.name for other in self.models if other != model
            ):
                self.model_named[model.name].append(model)
        self.usernames: set[str] = set()
        labels = {model.pk: str(model) for model in self.models}
        self.left_out: dict[int, list[str]] = defaultdict(list)  # prompt id -> why the campaign left it out
        for entry in left_out_rules([campaign.pk]).prompts_not_in_campaign:
            why = ExcludedPrompt.Reason(entry.reason).label
            self.left_out[entry.prompt_id].append(
                f"{why} of {labels[entry.model_id]}" if entry.model_id in labels else why
            )

    def prompt(self, value: str) -> Prompt | str:
        value = value.strip()
        if not value:
            return "the prompt is empty"
        if value.isdecimal():  # not isdigit(): int() refuses digits such as "²"
            prompt = self.prompt_at.get(int(value))
            if prompt is None:
                return f"benchmark {self.benchmark.slug!r} has no prompt at position {value}"
            return self._usable(prompt) if self._in_campaign(prompt) else self._outside([prompt])
        matches = self.prompts_with_text.get(value, [])
        inside = [p for p in matches if self._in_campaign(p)]
        if len(inside) > 1:
            positions = ", ".join(str(p.position) for p in inside)
            return f"several prompts have this text (positions {positions}); give the position"
        if matches and not inside:
            return self._outside(matches)
        if not matches:
            short = value if len(value) <= 60 else value[:57] + "..."
            return f"no prompt of benchmark {self.benchmark.slug!r} has the text {short!r}"
        return self._usable(inside[0])

    def _usable(self, prompt: Prompt) -> Prompt | str:
        """The prompt, or why the campaign left it out (its judgments would be listed as left out)."""
        why = self.left_out.get(prompt.pk)
        if why:
            return (
                f"prompt {prompt.position} was left out of this campaign ({'; '.join(why)}); "
                "a judgment of it would not count"
            )
        return prompt

    def _in_campaign(self, prompt: Prompt) -> bool:
        return not self.category_ids or prompt.category_id in self.category_ids

    @staticmethod
    def _outside(prompts: list[Prompt]) -> str:
        if len(prompts) == 1:
            return f"prompt {prompts[0].position} is not in this campaign's categories"
        positions = ", ".join(str(p.position) for p in prompts)
        return f"prompts {positions} (with this text) are not in this campaign's categories"

    def model(self, value: str, column: str) -> VideoModel | str:
        value = value.strip()
        matches = self.model_named.get(value)
        if matches is None:
            known = ", ".join(str(m) for m in self.models)
            return f"{column}: {value!r} is not a model of this campaign (its models: {known})"
        if len(matches) != 1:
            return f"{column}: several of the campaign's models are named {value!r}; add the version"
        return matches[0]


def _parse_rows(
    campaign: Campaign, header: list[str], raw_rows: list[tuple[int, list[str]]], report: ImportReport
) -> list[_Row]:
    expected = PAIRWISE_COLUMNS if campaign.is_paired else SCORE_COLUMNS
    missing = [c for c in expected if c not in header]
    unknown = [c for c in header if c not in expected]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or repeated or not header:
        problems = []
        if missing or not header:
            problems.append(f"missing column(s) {', '.join(missing or expected)}")
        if unknown:
            problems.append(f"unexpected column(s) {', '.join(unknown)}")
        if repeated:
            problems.append(f"column(s) named twice: {', '.join(repeated)}")
        report.errors.append(
            ImportProblem(
                1,
                f"{'; '.join(problems)}. A {campaign.kind} campaign takes the columns {', '.join(expected)}",
            )
        )
        return []
    lookups = _Lookups(campaign)
    rows = []
    for line, cells in raw_rows:
        report.rows += 1
        if len(cells) != len(header):
            report.errors.append(ImportProblem(line, f"expected {len(header)} fields, found {len(cells)}"))
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        problems: list[str] = []
        prompt = lookups.prompt(values["prompt"])
        if isinstance(prompt, str):
            problems.append(prompt)
        annotator = values["annotator"]
        if not USERNAME_RE.match(annotator):
            problems.append(f"annotator: {annotator!r} is not a valid username (letters, digits, @.+-_)")
        if campaign.is_paired:
            columns = ("left_model", "right_model")
        else:
            columns = ("model",)
        models = [lookups.model(values[c], c) for c in columns]
        problems += [m for m in models if isinstance(m, str)]
        choice, scores = "", ()
        if campaign.is_paired:
            choice = values["choice"].lower()
            if choice not in CHOICES:
                problems.append(f"choice: {values['choice']!r} is not one of {', '.join(CHOICES)}")
            left, right = models
            same_allowed = campaign.kind == Campaign.Kind.SEED_PREFERENCE
            if isinstance(left, VideoModel) and left == right and not same_allowed:
                problems.append("left_model and right_model are the same model")
        else:
            parsed = []
            for dimension in RUBRIC_DIMENSIONS:
                text = values[dimension]
                if not (text.isdecimal() and 1 <= int(text) <= 5):
                    problems.append(f"{dimension}: {text!r} is not a whole number from 1 to 5")
                else:
                    parsed.append(int(text))
            scores = tuple(parsed)
        if problems:
            report.errors.extend(ImportProblem(line, problem) for problem in problems)
            continue
        rows.append(
            _Row(
                line=line,
                annotator=annotator,
                prompt=prompt,  # type: ignore[arg-type]
                models=tuple(models),  # type: ignore[arg-type]
                choice=choice,
                scores=scores,
            )
        )
    if not raw_rows:
        report.errors.append(ImportProblem(1, "the file has a header but no rows"))
    return rows


def _already_imported(campaign: Campaign) -> Counter:
    if campaign.is_paired:
        return Counter(
            (username, prompt_id, left_id, right_id, choice)
            for username, prompt_id, left_id, right_id, choice in Judgment.objects.filter(
                campaign=campaign, source=Judgment.Source.IMPORT
            ).values_list("annotator__username", "prompt_id", "left_model_id", "right_model_id", "choice")
        )
    return Counter(
        (username, prompt_id, model_id, "", *scores)
        for username, prompt_id, model_id, *scores in RubricScore.objects.filter(
            judgment__campaign=campaign, judgment__source=Judgment.Source.IMPORT
        ).values_list("judgment__annotator__username", "judgment__prompt_id", "model_id", *RUBRIC_DIMENSIONS)
    )


def _only_ready_video(rows: list[_Row]) -> dict[tuple[int, int], Video]:
    """(model, prompt) -> its video, where the model has exactly one ready video for the prompt."""
    found: dict[tuple[int, int], list[Video]] = defaultdict(list)
    videos = Video.objects.filter(
        model_id__in={m.pk for r in rows for m in r.models},
        prompt_id__in={r.prompt.pk for r in rows},
        status=Video.Status.READY,
    )
    for video in videos:
        found[(video.model_id, video.prompt_id)].append(video)
    return {key: videos[0] for key, videos in found.items() if len(videos) == 1}


def _store(campaign: Campaign, rows: list[_Row], users: dict) -> None:
    videos = _only_ready_video(rows)
    judgments = []
    for row in rows:
        judgment = Judgment(
            campaign=campaign,
            annotator=users[row.annotator],
            prompt=row.prompt,
            source=Judgment.Source.IMPORT,
        )
        if campaign.is_paired:
            left, right = row.models
            judgment.choice = row.choice
            judgment.left_model, judgment.right_model = left, right
            judgment.left_video = videos.get((left.pk, row.prompt.pk))
            judgment.right_video = videos.get((right.pk, row.prompt.pk))
        judgments.append(judgment)
    if campaign.is_paired:
        Judgment.objects.bulk_create(judgments)
        return
    # saved one by one: the scores need their judgment's id on every database
    scores = []
    for judgment, row in zip(judgments, rows, strict=True):
        judgment.save()
        (model,) = row.models
        scores.append(
            RubricScore(
                judgment=judgment,
                model=model,
                video=videos.get((model.pk, row.prompt.pk)),
                **dict(zip(RUBRIC_DIMENSIONS, row.scores, strict=True)),
            )
        )
    RubricScore.objects.bulk_create(scores)


def import_judgments(campaign: Campaign, data: bytes | str, *, dry_run: bool = False) -> ImportReport:
    """Check a CSV of judgments (see the module's docstring) and, when every row is good and this is not
    a dry run, store it in one transaction. The report lists every problem by line."""
    report = ImportReport(
        campaign=campaign.name, format="pairwise" if campaign.is_paired else "scores", dry_run=dry_run
    )
    try:
        header, raw_rows = _read_csv(data)
    except UnicodeDecodeError:
        report.errors.append(ImportProblem(1, "the file is not UTF-8 text (save the CSV as UTF-8)"))
        return report
    except csv.Error as exc:
        report.errors.append(ImportProblem(1, f"the file is not a readable CSV: {exc}"))
        return report
    rows = _parse_rows(campaign, header, raw_rows, report)
    if report.errors:
        return report
    user_model = get_user_model()
    with transaction.atomic():
        # one import of a campaign at a time, so two uploads of one file cannot both pass the duplicate check
        Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
        users = {
            u.get_username(): u for u in user_model.objects.filter(username__in={r.annotator for r in rows})
        }
        new_names = sorted({r.annotator for r in rows} - set(users))
        earlier = _already_imported(campaign)
        fresh = []
        for row in rows:
            signature = row.signature()
            if earlier[signature] > 0:
                earlier[signature] -= 1
                report.duplicates += 1
            else:
                fresh.append(row)
        report.imported = len(fresh)
        needed = {row.annotator for row in fresh}
        report.created_annotators = [name for name in new_names if name in needed]
        if dry_run:
            return report
        for name in report.created_annotators:
            user = user_model(username=name, is_active=False)
            user.set_unusable_password()
            user.save()
            users[name] = user
        _store(campaign, fresh, users)
    return report
