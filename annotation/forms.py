"""Forms of the managers' pages. They check the shape of the input; the services (`create_campaign`,
`annotation.services`) check the meaning and report problems that the views add to the form."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from generation.models import Benchmark, Category, VideoModel

from .campaigns import (
    MAX_CLAIM_TIMEOUT_S,
    MAX_JUDGMENTS_PER_ITEM,
    MAX_REPEAT_FRACTION,
    MIN_CLAIM_TIMEOUT_S,
    CampaignSpec,
)
from .models import Campaign, Item
from .selectors import annotator_group_members

MULTI_SELECT_HELP = _("Hold Ctrl (⌘ on a Mac) and click to choose several, or to unchoose one.")

# The campaign kinds a field of the new-campaign form applies to; fields not listed apply to every kind.
# The page shows only the chosen kind's fields (annotation/manage/campaign_form.js).
KIND_FIELDS = {
    "model_b": (Campaign.Kind.PAIRWISE, Campaign.Kind.AB_SHARED_NOISE, Campaign.Kind.RUBRIC),
    "more_models": (Campaign.Kind.RUBRIC,),
    "rubric_layout": (Campaign.Kind.RUBRIC,),
    "generate_count": (Campaign.Kind.SEED_PREFERENCE, Campaign.Kind.AB_SHARED_NOISE),
}


def annotator_candidates(campaign: Campaign | None = None):
    """People a manager may add as annotators: active accounts that are not managers (staff) and, for an
    existing campaign, not already among its annotators."""
    people = get_user_model().objects.filter(is_active=True, is_staff=False).order_by("username")
    if campaign is not None:
        people = people.exclude(pk__in=campaign.annotators.values("pk"))
    return people


class UserChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_username()


class CategoryChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.benchmark.name}: {obj.name}"


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200, label=_("Name"))
    kind = forms.ChoiceField(choices=Campaign.Kind.choices, label=_("Kind"))
    benchmark = forms.ModelChoiceField(queryset=Benchmark.objects.order_by("name"), label=_("Benchmark"))
    categories = CategoryChoices(
        queryset=Category.objects.select_related("benchmark").order_by("benchmark__name", "position"),
        required=False,
        label=_("Categories"),
        help_text=format_lazy(
            "{} {}",
            _("none means every category; the categories must belong to the benchmark"),
            MULTI_SELECT_HELP,
        ),
    )
    model_a = forms.ModelChoiceField(
        queryset=VideoModel.objects.order_by("name", "version"),
        label=_("Model A"),
        help_text=_("pairwise: model A; A/B: the baseline; seed preference: the only model"),
    )
    model_b = forms.ModelChoiceField(
        queryset=VideoModel.objects.order_by("name", "version"),
        required=False,
        label=_("Model B"),
        help_text=_("pairwise: model B; A/B: the tuned model; rubric: the second model"),
    )
    more_models = forms.ModelMultipleChoiceField(
        queryset=VideoModel.objects.order_by("name", "version"),
        required=False,
        label=_("More models"),
        help_text=format_lazy(
            "{} {}",
            _("a rubric campaign may score up to twenty models; they follow A and B"),
            MULTI_SELECT_HELP,
        ),
    )
    annotators = UserChoices(
        queryset=annotator_candidates(), required=False, label=_("Annotators"), help_text=MULTI_SELECT_HELP
    )
    annotator_group = forms.BooleanField(
        required=False,
        label=_("Everyone in the group 'annotators'"),
        help_text=_("in addition to those chosen"),
    )
    overlap = forms.ChoiceField(
        choices=Campaign.Overlap.choices,
        initial=Campaign.Overlap.K_PER_ITEM,
        label=_("Overlap"),
        help_text=_("the report's evaluation used k = 3; its Table 11 had 6 annotators do every item"),
    )
    judgments_per_item = forms.IntegerField(
        min_value=1,
        max_value=MAX_JUDGMENTS_PER_ITEM,
        initial=3,
        label="k",
        help_text=_("annotators per item, for 'k per item'"),
    )
    rubric_layout = forms.ChoiceField(
        choices=Campaign.RubricLayout.choices, initial=Campaign.RubricLayout.SINGLE, label=_("Rubric layout")
    )
    require_full_playback = forms.BooleanField(required=False, label=_("Require full playback"))
    repeat_fraction = forms.FloatField(
        min_value=0,
        max_value=MAX_REPEAT_FRACTION,
        initial=0.0,
        label=_("Repeat fraction"),
        help_text=format_lazy(
            _("share of items shown again, mirrored (0 to {most})"), most=MAX_REPEAT_FRACTION
        ),
    )
    claim_timeout_s = forms.IntegerField(
        min_value=MIN_CLAIM_TIMEOUT_S,
        max_value=MAX_CLAIM_TIMEOUT_S,
        initial=900,
        label=_("Claim timeout (seconds)"),
    )
    description = forms.CharField(
        required=False,
        label=_("Instructions"),
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("shown to annotators; must not name a compared model"),
    )
    generate_count = forms.IntegerField(
        min_value=1,
        max_value=16,
        initial=2,
        required=False,
        label=_("Videos per prompt to generate"),
        help_text=_(
            "for “Generate the missing videos”: seeds (seed preference) or shared-noise ids (A/B) per prompt"
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, kinds in KIND_FIELDS.items():
            self.fields[name].widget.attrs["data-kinds"] = " ".join(kinds)

    def ordered_models(self) -> list[VideoModel]:
        data = self.cleaned_data
        models = [data["model_a"]]
        if data.get("model_b"):
            models.append(data["model_b"])
        models += list(data.get("more_models") or [])
        return models

    def chosen_annotators(self) -> list:
        people = list(self.cleaned_data.get("annotators") or [])
        if self.cleaned_data.get("annotator_group"):
            people += [u for u in annotator_group_members() if u not in people]
        return people

    def to_spec(self) -> CampaignSpec:
        data = self.cleaned_data
        return CampaignSpec(
            name=data["name"],
            kind=data["kind"],
            benchmark=data["benchmark"],
            models=self.ordered_models(),
            categories=list(data.get("categories") or []),
            annotators=self.chosen_annotators(),
            overlap=data["overlap"],
            judgments_per_item=data["judgments_per_item"],
            rubric_layout=data["rubric_layout"],
            require_full_playback=data["require_full_playback"],
            repeat_fraction=data["repeat_fraction"],
            claim_timeout_s=data["claim_timeout_s"],
            description=data.get("description") or "",
        )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Campaign.Status.choices)


class AddAnnotatorsForm(forms.Form):
    annotators = UserChoices(
        queryset=annotator_candidates(), required=False, label=_("Annotators"), help_text=MULTI_SELECT_HELP
    )
    annotator_group = forms.BooleanField(required=False, label=_("Everyone in the group 'annotators'"))

    def __init__(self, *args, campaign: Campaign | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if campaign is not None:
            self.fields["annotators"].queryset = annotator_candidates(campaign)

    def chosen(self) -> list:
        people = list(self.cleaned_data.get("annotators") or [])
        if self.cleaned_data.get("annotator_group"):
            people += [u for u in annotator_group_members() if u not in people]
        return people

    def clean(self):
        data = super().clean()
        if not data.get("annotators") and not data.get("annotator_group"):
            raise forms.ValidationError("Choose annotators, or the group.")
        return data


class GoldForm(forms.Form):
    gold_answer = forms.ChoiceField(
        label=_("Gold answer"), choices=[("", _("not gold")), *Item.GoldAnswer.choices], required=False
    )


class ExclusionForm(forms.Form):
    annotator = forms.ModelChoiceField(label=_("Annotator"), queryset=get_user_model().objects.none())
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def __init__(self, *args, people=None, **kwargs):
        super().__init__(*args, **kwargs)
        if people is not None:
            self.fields["annotator"].queryset = people


class ImportJudgmentsForm(forms.Form):
    file = forms.FileField(label=_("File"), help_text=_("a CSV with a header row (see the formats below)"))
    dry_run = forms.BooleanField(
        label=_("Dry run"), required=False, initial=True, help_text=_("only check and report")
    )
