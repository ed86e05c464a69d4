from django import forms

from evalsite.query import DB_INT_MAX

from .models import Benchmark, Prompt, VideoModel
from .uploads import UploadError, check_generation_settings


class VideoModelForm(forms.ModelForm):
    class Meta:
        model = VideoModel
        fields = ["name", "version", "kind", "checkpoint", "base_model", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def validate_unique(self):
        pass  # create_video_model reports a taken name/version with a clearer message


class UploadForm(forms.Form):
    file = forms.FileField()
    model = forms.ModelChoiceField(queryset=VideoModel.objects.order_by("name", "version"))
    benchmark = forms.ModelChoiceField(queryset=Benchmark.objects.order_by("name"))
    prompt_position = forms.IntegerField(
        min_value=1, max_value=DB_INT_MAX, help_text="line of the prompt in the benchmark"
    )
    seed = forms.IntegerField(required=False)  # its range is checked by upload_video
    noise_id = forms.CharField(required=False, max_length=200)
    generation_settings = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='a JSON object, e.g. {"sampler": "euler", "steps": 50}',
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
    archive = forms.FileField(required=False, help_text="a .zip of videos, with or without a manifest")
    root = forms.CharField(
        required=False, label="or a folder on the server", help_text="must be under EVALSITE_IMPORT_ROOTS"
    )
    manifest = forms.CharField(
        required=False, help_text="manifest file name in the folder (default manifest.csv/.jsonl)"
    )
    benchmark = forms.ModelChoiceField(
        queryset=Benchmark.objects.order_by("name"), required=False, to_field_name="slug"
    )
    model = forms.CharField(
        required=False, help_text="model name, for a folder of <position>[_seed<N>] files"
    )
    create_models = forms.BooleanField(required=False, help_text="create models the import names")
    dry_run = forms.BooleanField(required=False, initial=True, help_text="only check and report")

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
    benchmark = forms.ModelChoiceField(queryset=Benchmark.objects.order_by("name"))
    prompt_position = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=500)
