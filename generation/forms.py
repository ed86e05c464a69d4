from django import forms
from django.utils.translation import gettext_lazy as _

from evalsite.query import DB_INT_MAX

from .models import Benchmark, Prompt, VideoModel
from .uploads import UploadError, check_generation_settings


class VideoModelForm(forms.ModelForm):
    class Meta:
        model = VideoModel
        fields = [
            "name",
            "version",
            "kind",
            "backend",
            "checkpoint",
            "adapter",
            "base_model",
            "default_settings",
            "backend_options",
            "description",
        ]
        labels = {
            "name": _("Name"),
            "version": _("Version"),
            "kind": _("Kind"),
            "checkpoint": _("Checkpoint"),
            "adapter": _("Adapter"),
            "base_model": _("Base model"),
            "default_settings": _("Default settings"),
            "backend_options": _("Backend options"),
            "description": _("Description"),
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "default_settings": forms.Textarea(
                attrs={"rows": 2, "placeholder": '{"steps": 50, "guidance_scale": 5}'}
            ),
            "backend_options": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, **kwargs):
        from .backends import BACKENDS

        super().__init__(*args, **kwargs)
        self.fields["backend"] = forms.ChoiceField(
            required=False,
            choices=[("", _("none: videos are uploaded or imported"))]
            + [(name, name) for name in sorted(BACKENDS)],
            label=_("Backend"),
            help_text=_("how the site generates this model's videos"),
        )

    def validate_unique(self):
        pass  # create_video_model reports a taken name/version with a clearer message


class UploadForm(forms.Form):
    file = forms.FileField(label=_("File"))
    model = forms.ModelChoiceField(label=_("Model"), queryset=VideoModel.objects.order_by("name", "version"))
    benchmark = forms.ModelChoiceField(label=_("Benchmark"), queryset=Benchmark.objects.order_by("name"))
    prompt_position = forms.IntegerField(
        label=_("Prompt position"),
        min_value=1,
        max_value=DB_INT_MAX,
        help_text=_("line of the prompt in the benchmark"),
    )
    seed = forms.IntegerField(label=_("Seed"), required=False)  # its range is checked by upload_video
    noise_id = forms.CharField(label=_("Noise id"), required=False, max_length=200)
    generation_settings = forms.JSONField(
        label=_("Generation settings"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_('a JSON object, e.g. {"sampler": "euler", "steps": 50}'),
    )

    def clean_generation_settings(self):
        try:
            return check_generation_settings(self.cleaned_data.get("generation_settings"))
        except UploadError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self):
        data = super().clean()
        if data.get("benchmark") and data.get("prompt_position"):
            prompt = Prompt.objects.filter(
                benchmark=data["benchmark"], position=data["prompt_position"]
            ).first()
            if prompt is None:
                raise forms.ValidationError(
                    f"{data['benchmark'].name} has no prompt at position {data['prompt_position']}"
                )
            data["prompt"] = prompt
        return data


class ImportForm(forms.Form):
    archive = forms.FileField(
        label=_("Archive"), required=False, help_text=_("a .zip of videos, with or without a manifest")
    )
    root = forms.CharField(
        required=False,
        label=_("or a folder on the server"),
        help_text=_("must be under EVALSITE_IMPORT_ROOTS"),
    )
    manifest = forms.CharField(
        label=_("Manifest"),
        required=False,
        help_text=_("manifest file name in the folder (default manifest.csv/.jsonl)"),
    )
    benchmark = forms.ModelChoiceField(
        label=_("Benchmark"),
        queryset=Benchmark.objects.order_by("name"),
        required=False,
        to_field_name="slug",
    )
    model = forms.CharField(
        label=_("Model"),
        required=False,
        help_text=_("model name, for a folder of <position>[_seed<N>] files"),
    )
    create_models = forms.BooleanField(
        label=_("Create models"), required=False, help_text=_("create models the import names")
    )
    dry_run = forms.BooleanField(
        label=_("Dry run"), required=False, initial=True, help_text=_("only check and report")
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("archive")) == bool(data.get("root")):
            raise forms.ValidationError("Give either an archive or a folder.")
        return data

    def options(self) -> dict:
        data = self.cleaned_data
        return {
            "manifest": data.get("manifest") or "",
            "benchmark": data["benchmark"].slug if data.get("benchmark") else "",
            "model": data.get("model") or "",
            "create_models": bool(data.get("create_models")),
            "dry_run": bool(data.get("dry_run")),
        }


class RefusalForm(forms.Form):
    benchmark = forms.ModelChoiceField(label=_("Benchmark"), queryset=Benchmark.objects.order_by("name"))
    prompt_position = forms.IntegerField(label=_("Prompt position"), min_value=1)
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)


def _numbers(text: str, what: str) -> list[int]:
    """ "1, 2, 5-8" -> [1, 2, 5, 6, 7, 8]."""
    numbers: list[int] = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise forms.ValidationError(f"{what}: {part!r} is not a number or a range a-b") from None
        if high < low or high - low > 10_000:
            raise forms.ValidationError(f"{what}: {part!r} is not a usable range")
        numbers.extend(range(low, high + 1))
    return numbers


class GenerationRunForm(forms.Form):
    VARIANTS = [
        ("seeds", _("these seeds")),
        ("seeds_per_prompt", _("k seeds per prompt (0..k-1)")),
        ("noise_seeds", _("shared noise from these seeds")),
        ("noise_ids", _("these noise ids")),
        ("noise_per_prompt", _("k shared noise ids per prompt")),
    ]

    model = forms.ModelChoiceField(
        label=_("Model"), queryset=VideoModel.objects.exclude(backend="").order_by("name", "version")
    )
    benchmark = forms.ModelChoiceField(
        label=_("Benchmark"), queryset=Benchmark.objects.order_by("name"), to_field_name="slug"
    )
    categories = forms.CharField(
        label=_("Categories"), required=False, help_text=_("category names, comma-separated; empty: all")
    )
    prompts = forms.CharField(
        label=_("Prompts"), required=False, help_text=_("or prompt positions, e.g. 1,2,10-20")
    )
    variant = forms.ChoiceField(label=_("Variant"), choices=VARIANTS, initial="seeds")
    values = forms.CharField(
        initial="0",
        help_text=_("the seeds, noise seeds or noise ids (comma-separated), or k"),
        label=_("Seeds / k"),
    )
    settings = forms.JSONField(
        label=_("Settings"),
        required=False,
        initial=dict,
        help_text=_('on top of the model\'s, e.g. {"steps": 30}'),
    )
    grid = forms.JSONField(
        label=_("Grid"),
        required=False,
        initial=dict,
        help_text=_('lists of values to combine, e.g. {"steps": [10, 50], "guidance_scale": [1, 5]}'),
    )
    batch_size = forms.IntegerField(
        label=_("Batch size"), min_value=1, max_value=64, initial=4, help_text=_("videos per gpu job")
    )

    def clean(self):
        data = super().clean()
        for name in ("settings", "grid"):
            if data.get(name) in (None, ""):
                data[name] = {}
            elif not isinstance(data[name], dict):
                self.add_error(name, "must be a JSON object")
        return data

    def spec(self):
        from .runs.planning import RunSpec

        data = self.cleaned_data
        variant, values = data["variant"], data["values"]
        kwargs: dict = {}
        if variant in ("seeds", "noise_seeds"):
            kwargs[variant] = _numbers(values, "seeds")
        elif variant == "noise_ids":
            kwargs[variant] = [v.strip() for v in values.split(",") if v.strip()]
        else:
            try:
                kwargs[variant] = int(values)
            except ValueError:
                raise forms.ValidationError("k must be a whole number") from None
        return RunSpec(
            model=data["model"],
            benchmark=data["benchmark"],
            categories=[c.strip() for c in data.get("categories", "").split(",") if c.strip()],
            prompt_positions=_numbers(data.get("prompts", ""), "prompts"),
            settings=data["settings"],
            grid=data["grid"],
            batch_size=data["batch_size"],
            **kwargs,
        )
