from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .export import FORMATS, ExportOptions
from .models import EXPORT_NAME_HELP, EXPORT_NAME_PATTERN
from .pairs import GRANULARITIES, TIE_HANDLING
from .selectors import exportable_campaigns

DEFAULTS = ExportOptions()
# What each option value means, on the form (the API takes the values themselves).
CHOICE_LABELS = {
    "drop": _("drop: a tie is left out"),
    "label": _("label: a tie is kept with label 0.5"),
    "pair": _("pair: one record per pair, votes aggregated"),
    "judgment": _("judgment: one record per judgment"),
}
# Help for the export options, shared by this form and the API's serializer.
OPTION_HELP = {
    "min_agreement": _("keep pairs whose majority option has at least this share of the votes (0 to 1)"),
    "ties": format_lazy(
        _("one of {choices}: a tie is dropped or kept with label 0.5"), choices=", ".join(TIE_HANDLING)
    ),
    "granularity": format_lazy(
        _("one of {choices}: one record per pair (votes aggregated) or per judgment"),
        choices=", ".join(GRANULARITIES),
    ),
    "validation_fraction": _("share of prompts (not records) that go to the validation split"),
    "split_seed": _("text that, with the normalised prompt text, decides each prompt's split"),
    "formats": format_lazy(_("some of {choices}"), choices=", ".join(FORMATS)),
}


class ExportForm(forms.Form):
    name = forms.RegexField(
        label=_("Name"), regex=EXPORT_NAME_PATTERN, max_length=100, help_text=EXPORT_NAME_HELP
    )
    campaigns = forms.ModelMultipleChoiceField(
        label=_("Campaigns"),
        queryset=exportable_campaigns(),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("pairwise, seed-preference and A/B campaigns give pairs; rubric campaigns give scores"),
    )
    min_agreement = forms.FloatField(
        label=_("Min agreement"),
        min_value=0,
        max_value=1,
        initial=DEFAULTS.min_agreement,
        help_text=OPTION_HELP["min_agreement"],
    )
    ties = forms.ChoiceField(
        label=_("Ties"),
        choices=[(t, CHOICE_LABELS[t]) for t in TIE_HANDLING],
        initial=DEFAULTS.ties,
        help_text=OPTION_HELP["ties"],
    )
    granularity = forms.ChoiceField(
        label=_("Granularity"),
        choices=[(g, CHOICE_LABELS[g]) for g in GRANULARITIES],
        initial=DEFAULTS.granularity,
        help_text=OPTION_HELP["granularity"],
    )
    validation_fraction = forms.FloatField(
        label=_("Validation fraction"),
        min_value=0,
        max_value=0.99,
        initial=DEFAULTS.validation_fraction,
        help_text=OPTION_HELP["validation_fraction"],
    )
    split_seed = forms.CharField(
        label=_("Split seed"),
        max_length=100,
        initial=DEFAULTS.split_seed,
        help_text=OPTION_HELP["split_seed"],
    )
    formats = forms.MultipleChoiceField(
        label=_("Formats"),
        choices=[(f, f) for f in FORMATS],
        initial=list(DEFAULTS.formats),
        widget=forms.CheckboxSelectMultiple,
        help_text=OPTION_HELP["formats"],
    )

    def options(self) -> dict:
        data = self.cleaned_data
        return {
            "min_agreement": data["min_agreement"],
            "ties": data["ties"],
            "granularity": data["granularity"],
            "validation_fraction": data["validation_fraction"],
            "split_seed": data["split_seed"],
            "formats": data["formats"],
        }


class TrainingRunForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("video_dpo", "Video-DPO"), ("reward_model", _("Reward model"))]
    )
    export = forms.ModelChoiceField(
        label=_("Export"), queryset=None, help_text=_("a published export version")
    )
    base_model = forms.ModelChoiceField(
        label=_("Base model"), queryset=None, help_text=_("Video-DPO tunes a diffusers checkpoint")
    )
    settings = forms.JSONField(
        label=_("Settings"),
        required=False,
        initial=dict,
        help_text=_('trainer settings as JSON, e.g. {"max_steps": 500, "beta": 500, "learning_rate": 1e-4}'),
    )

    def __init__(self, *args, **kwargs):
        from generation.models import VideoModel

        from .models import PreferenceExport

        super().__init__(*args, **kwargs)
        self.fields["export"].queryset = PreferenceExport.objects.filter(status=PreferenceExport.Status.READY)
        self.fields["base_model"].queryset = VideoModel.objects.filter(adapter="")


class EvaluateAgainstBaseForm(forms.Form):
    benchmark = forms.ModelChoiceField(label=_("Benchmark"), queryset=None)
    noise_per_prompt = forms.IntegerField(
        label=_("Noise per prompt"),
        min_value=1,
        max_value=16,
        initial=1,
        help_text=_("shared-noise pairs per prompt"),
    )

    def __init__(self, *args, **kwargs):
        from generation.models import Benchmark

        super().__init__(*args, **kwargs)
        self.fields["benchmark"].queryset = Benchmark.objects.all()


class RewardScoringForm(forms.Form):
    model = forms.ModelChoiceField(label=_("Model"), queryset=None)
    benchmark = forms.ModelChoiceField(label=_("Benchmark"), queryset=None)
    on_policy_export = forms.RegexField(
        label=_("On policy export"),
        regex=EXPORT_NAME_PATTERN,
        required=False,
        help_text=_("export name for the on-policy pairs (its next version); empty: scores only"),
    )
    min_gap = forms.FloatField(
        label=_("Min gap"),
        min_value=0,
        initial=0.5,
        help_text=_("standardised reward gap a pair must exceed"),
    )

    def __init__(self, *args, **kwargs):
        from generation.models import Benchmark, VideoModel

        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = VideoModel.objects.all()
        self.fields["benchmark"].queryset = Benchmark.objects.all()
