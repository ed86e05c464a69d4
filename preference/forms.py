from django import forms

from .export import FORMATS, OPTION_HELP, ExportOptions
from .models import EXPORT_NAME_HELP, EXPORT_NAME_PATTERN
from .pairs import GRANULARITIES, TIE_HANDLING
from .selectors import exportable_campaigns

DEFAULTS = ExportOptions()


class ExportForm(forms.Form):
    name = forms.RegexField(regex=EXPORT_NAME_PATTERN, max_length=100, help_text=EXPORT_NAME_HELP)
    campaigns = forms.ModelMultipleChoiceField(
        queryset=exportable_campaigns(),
        widget=forms.CheckboxSelectMultiple,
        help_text="pairwise, seed-preference and A/B campaigns give pairs; rubric campaigns give scores",
    )
    min_agreement = forms.FloatField(
        min_value=0, max_value=1, initial=DEFAULTS.min_agreement, help_text=OPTION_HELP["min_agreement"]
    )
    ties = forms.ChoiceField(
        choices=[(t, t) for t in TIE_HANDLING], initial=DEFAULTS.ties, help_text=OPTION_HELP["ties"]
    )
    granularity = forms.ChoiceField(
        choices=[(g, g) for g in GRANULARITIES],
        initial=DEFAULTS.granularity,
        help_text=OPTION_HELP["granularity"],
    )
    validation_fraction = forms.FloatField(
        min_value=0,
        max_value=0.99,
        initial=DEFAULTS.validation_fraction,
        help_text=OPTION_HELP["validation_fraction"],
    )
    split_seed = forms.CharField(
        max_length=100, initial=DEFAULTS.split_seed, help_text=OPTION_HELP["split_seed"]
    )
    formats = forms.MultipleChoiceField(
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
    kind = forms.ChoiceField(choices=[("video_dpo", "Video-DPO"), ("reward_model", "Reward model")])
    export = forms.ModelChoiceField(queryset=None, help_text="a published export version")
    base_model = forms.ModelChoiceField(queryset=None, help_text="Video-DPO tunes a diffusers checkpoint")
    settings = forms.JSONField(
        required=False,
        initial=dict,
        help_text='trainer settings as JSON, e.g. {"max_steps": 500, "beta": 500, "learning_rate": 1e-4}',
    )

    def __init__(self, *args, **kwargs):
        from generation.models import VideoModel

        from .models import PreferenceExport

        super().__init__(*args, **kwargs)
        self.fields["export"].queryset = PreferenceExport.objects.filter(status=PreferenceExport.Status.READY)
        self.fields["base_model"].queryset = VideoModel.objects.filter(adapter="")


class EvaluateAgainstBaseForm(forms.Form):
    benchmark = forms.ModelChoiceField(queryset=None)
    noise_per_prompt = forms.IntegerField(
        min_value=1, max_value=16, initial=1, help_text="shared-noise pairs per prompt"
    )

    def __init__(self, *args, **kwargs):
        from generation.models import Benchmark

        super().__init__(*args, **kwargs)
        self.fields["benchmark"].queryset = Benchmark.objects.all()


class RewardScoringForm(forms.Form):
    model = forms.ModelChoiceField(queryset=None)
    benchmark = forms.ModelChoiceField(queryset=None)
    on_policy_export = forms.RegexField(
        regex=EXPORT_NAME_PATTERN,
        required=False,
        help_text="export name for the on-policy pairs (its next version); empty: scores only",
    )
    min_gap = forms.FloatField(
        min_value=0, initial=0.5, help_text="standardised reward gap a pair must exceed"
    )

    def __init__(self, *args, **kwargs):
        from generation.models import Benchmark, VideoModel

        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = VideoModel.objects.all()
        self.fields["benchmark"].queryset = Benchmark.objects.all()
