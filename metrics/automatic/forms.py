from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from generation.models import Benchmark, VideoModel


def vae_kind_choices() -> list[tuple[str, str]]:
    from .services import supported_vae_kinds

    return [("", gettext("from the saved config"))] + [
        (kind, name) for kind, name in supported_vae_kinds().items()
    ]


class VaeEvaluationForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=200, help_text=_("how this VAE is named in the comparison table")
    )
    test_model = forms.ModelChoiceField(
        label=_("Test model"),
        queryset=VideoModel.objects.order_by("name", "version"),
        help_text=_("its ready videos are the test videos (their original files are decoded)"),
    )
    benchmark = forms.ModelChoiceField(
        label=_("Benchmark"),
        queryset=Benchmark.objects.order_by("name"),
        required=False,
        help_text=_("only the test videos of one benchmark"),
    )
    vae_path = forms.CharField(
        required=False,
        max_length=500,
        label=_("VAE folder"),
        help_text=_(
            "a diffusers video autoencoder saved on this server (config.json and weights, or a pipeline "
            "folder with vae/)"
        ),
    )
    vae_kind = forms.ChoiceField(choices=vae_kind_choices, required=False, label=_("VAE kind"))
    reconstruction_model = forms.ModelChoiceField(
        queryset=VideoModel.objects.order_by("name", "version"),
        required=False,
        label=_("or reconstructions from"),
        help_text=_("a model whose videos are the reconstructions (paired by prompt and seed)"),
    )
    downsample_label = forms.CharField(
        required=False,
        max_length=40,
        label=_("Downsample factor"),
        help_text=_("for reconstructions from the library, e.g. 8x16x16 (a VAE's is measured)"),
    )
    max_frames = forms.IntegerField(
        label=_("Max frames"), required=False, min_value=1, help_text=_("use only the first frames")
    )
    chunk_frames = forms.IntegerField(
        label=_("Chunk frames"),
        required=False,
        min_value=1,
        help_text=_("reconstruct in chunks of this many frames (1 + k x frame step)"),
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("vae_path")) == bool(data.get("reconstruction_model")):
            raise forms.ValidationError(
                _("Give either a VAE folder or a model whose videos are the reconstructions.")
            )
        return data


class AutoScoreRunForm(forms.Form):
    model = forms.ModelChoiceField(label=_("Model"), queryset=VideoModel.objects.order_by("name", "version"))
    benchmark = forms.ModelChoiceField(label=_("Benchmark"), queryset=Benchmark.objects.order_by("name"))
