from django import forms

from generation.models import Benchmark, VideoModel


def vae_kind_choices() -> list[tuple[str, str]]:
    from .services import supported_vae_kinds

    return [("", "from the saved config")] + [(kind, name) for kind, name in supported_vae_kinds().items()]


class VaeEvaluationForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="how this VAE is named in the comparison table")
    test_model = forms.ModelChoiceField(
        queryset=VideoModel.objects.order_by("name", "version"),
        help_text="its ready videos are the test videos (their original files are decoded)",
    )
    benchmark = forms.ModelChoiceField(
        queryset=Benchmark.objects.order_by("name"),
        required=False,
        help_text="only the test videos of one benchmark",
    )
    vae_path = forms.CharField(
        required=False,
        max_length=500,
        label="VAE folder",
        help_text="a diffusers video autoencoder saved on this server (config.json and weights, or a pipeline folder with vae/)",
    )
    vae_kind = forms.ChoiceField(choices=vae_kind_choices, required=False, label="VAE kind")
    reconstruction_model = forms.ModelChoiceField(
        queryset=VideoModel.objects.order_by("name", "version"),
        required=False,
        label="or reconstructions from",
        help_text="a model whose videos are the reconstructions (paired by prompt and seed)",
    )
    downsample_label = forms.CharField(
        required=False,
        max_length=40,
        label="Downsample factor",
        help_text="for reconstructions from the library, e.g. 8x16x16 (a VAE's is measured)",
    )
    max_frames = forms.IntegerField(required=False, min_value=1, help_text="use only the first frames")
    chunk_frames = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="reconstruct in chunks of this many frames (1 + k x frame step)",
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("vae_path")) == bool(data.get("reconstruction_model")):
            raise forms.ValidationError(
                "Give either a VAE folder or a model whose videos are the reconstructions."
            )
        return data


class AutoScoreRunForm(forms.Form):
    model = forms.ModelChoiceField(queryset=VideoModel.objects.order_by("name", "version"))
    benchmark = forms.ModelChoiceField(queryset=Benchmark.objects.order_by("name"))
