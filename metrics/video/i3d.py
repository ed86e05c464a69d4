"""The I3D network of FVD (Inception-v1 inflated to 3-D, Carreira & Zisserman 2017) and its loader (no Django).

FVD's features are the 400 Kinetics-400 logits of the RGB I3D, averaged over time. The reference FVD code
(StyleGAN-V, common_metrics_on_video_quality) loads a TorchScript port of the TF-Hub
`deepmind/i3d-kinetics-400` module, `i3d_torchscript.pt`, and calls it as

    detector(x, rescale=False, resize=False, return_features=True)

with x a float tensor `(B, 3, T, 224, 224)` already in [-1, 1]; it returns `(B, 400)` float32, the
pre-softmax logits averaged over time (its forward is `forward(Tensor x, bool rescale=False,
bool resize=False, bool return_features=False) -> Tensor`; `rescale=True` would map [0, 255] input to
[-1, 1] with x / 255 * 2 - 1, `resize=True` would resize to 224 x 224 inside the model, and
`return_features=False` returns softmax probabilities instead). The file is not shipped with this
repository: rFVD is unavailable (`I3DWeightsMissing`) until it is put where the caller says.

`I3D` below re-implements that architecture in PyTorch with the parameter names of the widely used
PyTorch port (hassony2/kinetics_i3d_pytorch, from which the TorchScript file's `I3D` class descends), so a
state dict in that layout loads into it: "SAME" padding as TensorFlow computes it (asymmetric where the
stride needs it), batch norm with eps 1e-3 after every convolution but the last, ReLU, max pools with
SAME padding, a final (2, 7, 7) average pool (valid), a 1x1x1 convolution to the logits, then the mean over
time. For inputs too small for the (2, 7, 7) pool (tests use tiny clips) the pool shrinks to the feature
map; at the reference input (224 x 224, at least 9 frames) nothing changes.

`load_i3d(path)` returns a module mapping `(B, 3, T, 224, 224)` clips in [-1, 1] to `(B, num_classes)`
features, from either kind of file:
- the TorchScript file: by default the scripted module itself runs (the exact reference);
  `backend="native"` copies its weights into `I3D` instead and checks both agree on a random clip;
- a state dict for `I3D` (optionally under a "state_dict" key, optionally with "module." prefixes).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

I3D_PATH_SETTING = "EVALSITE_I3D_PATH"
I3D_TORCHSCRIPT_FILENAME = "i3d_torchscript.pt"
I3D_NUM_KINETICS_CLASSES = 400
I3D_INPUT_SIZE = 224
BATCH_NORM_EPS = 1e-3

# (input, [branch 0 1x1, branch 1 1x1, branch 1 3x3, branch 2 1x1, branch 2 3x3, branch 3 1x1 after pool])
MIXED_BRANCH_CHANNELS: dict[str, list[int]] = {
    "mixed_3b": [64, 96, 128, 16, 32, 32],
    "mixed_3c": [128, 128, 192, 32, 96, 64],
    "mixed_4b": [192, 96, 208, 16, 48, 64],
    "mixed_4c": [160, 112, 224, 24, 64, 64],
    "mixed_4d": [128, 128, 256, 24, 64, 64],
    "mixed_4e": [112, 144, 288, 32, 64, 64],
    "mixed_4f": [256, 160, 320, 32, 128, 128],
    "mixed_5b": [256, 160, 320, 32, 128, 128],
    "mixed_5c": [384, 192, 384, 48, 128, 128],
}


class I3DWeightsMissing(FileNotFoundError):
    """rFVD cannot be computed: no I3D weights file. The message says where to put one."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        where = (
            f"no I3D weights path is configured (set {I3D_PATH_SETTING})"
            if path is None
            else f"the I3D weights file was not found at {os.fspath(path)!r}"
        )
        super().__init__(
            f"rFVD is unavailable: {where}. Put the Kinetics-400 I3D TorchScript file that StyleGAN-V and "
            f"common_metrics_on_video_quality use ({I3D_TORCHSCRIPT_FILENAME}), or a state dict of "
            f"metrics.video.i3d.I3D, at that path; the site reads the path from the {I3D_PATH_SETTING} "
            "setting. No rFVD value is reported without it."
        )
        self.path = None if path is None else os.fspath(path)


class I3DWeightsInvalid(ValueError):
    """The I3D file exists but is neither a usable TorchScript I3D nor a matching state dict."""


def tf_same_padding(input_size: list[int], kernel: list[int], stride: list[int]) -> list[int]:
    """TensorFlow "SAME" padding of a (T, H, W) input, in `F.pad` order (W left, W right, H ..., T ...)."""
    pads: list[int] = []
    for dim in [2, 1, 0]:
        out = (input_size[dim] + stride[dim] - 1) // stride[dim]
        total = max((out - 1) * stride[dim] + kernel[dim] - input_size[dim], 0)
        pads.append(total // 2)
        pads.append(total - total // 2)
    return pads


class Unit3D(nn.Module):
    """Conv3d with TensorFlow SAME padding, then batch norm (eps 1e-3) and ReLU unless switched off."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        use_bias: bool = False,
        use_bn: bool = True,
        use_relu: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = list(kernel_size)
        self.stride = list(stride)
        # With stride 1 and an odd kernel SAME padding is symmetric and the convolution can do it itself.
        self.pad_in_forward = any(s != 1 for s in stride) or any(k % 2 == 0 for k in kernel_size)
        static_padding = (
            (0, 0, 0)
            if self.pad_in_forward
            else (kernel_size[0] // 2, kernel_size[1] // 2, kernel_size[2] // 2)
        )
        self.conv3d = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=static_padding, bias=use_bias
        )
        self.use_bn = use_bn
        self.batch3d = nn.BatchNorm3d(out_channels, eps=BATCH_NORM_EPS) if use_bn else nn.Identity()
        self.use_relu = use_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_in_forward:
            x = F.pad(x, tf_same_padding(list(x.shape[-3:]), self.kernel_size, self.stride))
        x = self.batch3d(self.conv3d(x))
        if self.use_relu:
            x = F.relu(x)
        return x


class MaxPool3dSame(nn.Module):
    """Max pooling with TensorFlow SAME padding.

    Inputs are ReLU outputs (>= 0), so zero padding, which the reference port uses, and ignoring the
    padding give the same maxima.
    """

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel_size = list(kernel_size)
        self.stride = list(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, tf_same_padding(list(x.shape[-3:]), self.kernel_size, self.stride))
        return F.max_pool3d(x, self.kernel_size, self.stride)


class Mixed(nn.Module):
    """An inflated Inception block: four branches concatenated along channels."""

    def __init__(self, in_channels: int, branch_channels: list[int]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = branch_channels
        self.branch_0 = Unit3D(in_channels, b0)
        self.branch_1 = nn.Sequential(Unit3D(in_channels, b1a), Unit3D(b1a, b1b, (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(in_channels, b2a), Unit3D(b2a, b2b, (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, b3))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], dim=1)


@dataclass(frozen=True)
class I3DConfig:
    """Shape of an `I3D`. The default is the Kinetics-400 RGB network; `width_divisor` > 1 makes the tiny
    networks the tests use (every channel count divided, at least 1)."""

    num_classes: int = I3D_NUM_KINETICS_CLASSES
    in_channels: int = 3
    width_divisor: int = 1

    def width(self, channels: int) -> int:
        return max(1, channels // self.width_divisor)


class I3D(nn.Module):
    """Inception-v1 I3D, RGB stream. `forward` maps `(B, C, T, H, W)` in [-1, 1] to `(B, num_classes)`
    logits averaged over time (and over space when the input is larger than 224 x 224)."""

    def __init__(self, config: I3DConfig | None = None) -> None:
        super().__init__()
        self.config = config or I3DConfig()
        w = self.config.width
        self.conv3d_1a_7x7 = Unit3D(self.config.in_channels, w(64), (7, 7, 7), (2, 2, 2))
        self.maxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.conv3d_2b_1x1 = Unit3D(w(64), w(64))
        self.conv3d_2c_3x3 = Unit3D(w(64), w(192), (3, 3, 3))
        self.maxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = w(192)
        blocks: dict[str, Mixed] = {}
        for name, branches in MIXED_BRANCH_CHANNELS.items():
            blocks[name] = Mixed(channels, [w(c) for c in branches])
            channels = blocks[name].out_channels
        self.mixed_3b = blocks["mixed_3b"]
        self.mixed_3c = blocks["mixed_3c"]
        self.maxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.mixed_4b = blocks["mixed_4b"]
        self.mixed_4c = blocks["mixed_4c"]
        self.mixed_4d = blocks["mixed_4d"]
        self.mixed_4e = blocks["mixed_4e"]
        self.mixed_4f = blocks["mixed_4f"]
        self.maxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.mixed_5b = blocks["mixed_5b"]
        self.mixed_5c = blocks["mixed_5c"]
        self.conv3d_0c_1x1 = Unit3D(
            channels, self.config.num_classes, use_bias=True, use_bn=False, use_relu=False
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random weights that keep activations of order 1 (for timing and tests; real use loads weights)."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d_1a_7x7(x)
        x = self.maxPool3d_2a_3x3(x)
        x = self.conv3d_2b_1x1(x)
        x = self.conv3d_2c_3x3(x)
        x = self.maxPool3d_3a_3x3(x)
        x = self.mixed_3b(x)
        x = self.mixed_3c(x)
        x = self.maxPool3d_4a_3x3(x)
        x = self.mixed_4b(x)
        x = self.mixed_4c(x)
        x = self.mixed_4d(x)
        x = self.mixed_4e(x)
        x = self.mixed_4f(x)
        x = self.maxPool3d_5a_2x2(x)
        x = self.mixed_5b(x)
        x = self.mixed_5c(x)
        t, h, w = x.shape[-3], x.shape[-2], x.shape[-1]
        x = F.avg_pool3d(x, [min(2, t), min(7, h), min(7, w)], [1, 1, 1])
        x = self.conv3d_0c_1x1(x)
        return x.mean(dim=[3, 4]).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


class TorchScriptI3D(nn.Module):
    """The reference TorchScript I3D behind the same interface as `I3D`: `(B, 3, T, 224, 224)` in [-1, 1]
    -> `(B, 400)` time-averaged logits."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scripted(x, rescale=False, resize=False, return_features=True)


I3DBackend = Literal["auto", "torchscript", "native"]


def _strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    stripped = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "model.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        stripped[key] = value
    return stripped


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> I3DConfig:
    """The `I3DConfig` whose `I3D` has the tensor shapes of this state dict (hassony2 key layout)."""
    try:
        first = state_dict["conv3d_1a_7x7.conv3d.weight"]
        logits = state_dict["conv3d_0c_1x1.conv3d.weight"]
    except KeyError as missing:
        raise I3DWeightsInvalid(
            f"not an I3D state dict in the expected layout: no {missing.args[0]!r} key"
        ) from None
    out_channels, in_channels = int(first.shape[0]), int(first.shape[1])
    if 64 % out_channels:
        raise I3DWeightsInvalid(f"unexpected first-layer width {out_channels}")
    return I3DConfig(
        num_classes=int(logits.shape[0]), in_channels=in_channels, width_divisor=64 // out_channels
    )


def i3d_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> I3D:
    """A native `I3D` holding these weights (strict: every key must match)."""
    state_dict = _strip_prefixes(state_dict)
    model = I3D(config_from_state_dict(state_dict))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise I3DWeightsInvalid(f"the state dict does not fit metrics.video.i3d.I3D: {error}") from None
    return model


def _agreement_clip(config: I3DConfig, frames: int, size: int, device: torch.device | str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(1, config.in_channels, frames, size, size, generator=generator)
    return (clip * 2 - 1).to(device)


@torch.no_grad()
def _check_native_matches_script(
    native: I3D, scripted: TorchScriptI3D, clip_shape: tuple[int, int], device: torch.device | str
) -> None:
    clip = _agreement_clip(native.config, clip_shape[0], clip_shape[1], device)
    expected = scripted(clip)
    got = native(clip)
    error = (got - expected).abs().max().item()
    scale = 1.0 + expected.abs().max().item()
    if not error <= 1e-3 * scale:
        raise I3DWeightsInvalid(
            f"the native I3D with the TorchScript file's weights differs from the TorchScript module by "
            f"{error:.3g} (scale {scale:.3g}); use backend='torchscript'"
        )


def _is_torchscript_archive(path: str | os.PathLike[str]) -> bool:
    """TorchScript archives hold compiled code (`<archive>/code/...`) and `constants.pkl`; a `torch.save`
    state dict holds only `data.pkl` and tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def load_i3d(
    path: str | os.PathLike[str] | None,
    *,
    device: torch.device | str = "cpu",
    backend: I3DBackend = "auto",
    agreement_clip_shape: tuple[int, int] = (10, I3D_INPUT_SIZE),
) -> nn.Module:
    """Load the FVD I3D from a TorchScript file (`i3d_torchscript.pt`) or an `I3D` state dict.

    Returns an eval-mode module on `device` that maps `(B, 3, T, 224, 224)` clips in [-1, 1] to
    `(B, num_classes)` features; its `source` attribute says which backend runs ("torchscript" or "native").
    Raises `I3DWeightsMissing` when `path` is None or no file is there, `I3DWeightsInvalid` when the file is
    not an I3D. `backend`: "auto" runs a TorchScript file as it is and a state dict natively; "torchscript"
    requires a TorchScript file; "native" loads either kind into `I3D` (for a TorchScript file it then checks
    that both agree on one random clip of `agreement_clip_shape` = (frames, side), to 1e-3 relative).
    """
    if path is None or not Path(path).is_file():
        raise I3DWeightsMissing(path)
    scripted: torch.jit.ScriptModule | None = None
    if _is_torchscript_archive(path):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.load.* is deprecated", category=FutureWarning
            )
            try:
                scripted = torch.jit.load(os.fspath(path), map_location="cpu")
            except (RuntimeError, ValueError) as error:
                raise I3DWeightsInvalid(
                    f"cannot load TorchScript file {os.fspath(path)!r}: {error}"
                ) from None
    model: nn.Module
    if scripted is not None:
        reference = TorchScriptI3D(scripted).eval().to(device)
        if backend == "native":
            native = i3d_from_state_dict(scripted.state_dict()).eval().to(device)
            _check_native_matches_script(native, reference, agreement_clip_shape, device)
            model = native
            source = "native"
        else:
            model = reference
            source = "torchscript"
    else:
        if backend == "torchscript":
            raise I3DWeightsInvalid(f"{os.fspath(path)!r} is not a TorchScript file")
        try:
            loaded = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except Exception as error:
            raise I3DWeightsInvalid(f"cannot read {os.fspath(path)!r} as an I3D: {error}") from None
        if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, Mapping):
            raise I3DWeightsInvalid(f"{os.fspath(path)!r} holds a {type(loaded).__name__}, not a state dict")
        model = i3d_from_state_dict(loaded).eval().to(device)
        source = "native"
    model.source = source  # type: ignore[assignment]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


__all__ = [
    "I3D",
    "I3DConfig",
    "I3DWeightsInvalid",
    "I3DWeightsMissing",
    "I3D_INPUT_SIZE",
    "I3D_PATH_SETTING",
    "I3D_TORCHSCRIPT_FILENAME",
    "TorchScriptI3D",
    "config_from_state_dict",
    "i3d_from_state_dict",
    "load_i3d",
    "tf_same_padding",
]
