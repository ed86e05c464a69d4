"""The I3D architecture with random weights (shapes, determinism, batching) and its loader (state dicts,
TorchScript files in the reference's calling convention, missing and invalid files).

Tiny networks (`width_divisor`) and tiny clips keep this fast on two CPU cores. Tolerance for batched versus
one-by-one outputs: 1e-5 relative and absolute (float32; the convolution algorithms may differ per batch).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metrics.video.fvd import i3d_features
from metrics.video.i3d import (
    I3D,
    I3D_PATH_SETTING,
    I3D_TORCHSCRIPT_FILENAME,
    I3DConfig,
    I3DWeightsInvalid,
    I3DWeightsMissing,
    TorchScriptI3D,
    config_from_state_dict,
    load_i3d,
    tf_same_padding,
)

TINY = I3DConfig(num_classes=10, width_divisor=16)


@pytest.fixture(autouse=True)
def _one_torch_thread(single_torch_thread):
    """Tiny convolutions run faster on one thread than split over two busy cores."""


def tiny_i3d(seed: int = 0, config: I3DConfig = TINY) -> I3D:
    torch.manual_seed(seed)
    model = I3D(config).eval()
    # Non-trivial batch-norm statistics, so that loading them is tested too.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return model


def clips(batch: int, frames: int = 6, size: int = 32, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, size, size, generator=generator) * 2 - 1


class ReferenceStyleI3D(I3D):
    """Stands in for `i3d_torchscript.pt`: the reference's signature and conventions around the same network."""

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        if rescale:
            x = x / 255.0 * 2 - 1
        if resize:
            x = F.interpolate(x, size=[x.shape[2], 224, 224], mode="trilinear", align_corners=False)
        logits = self.logits(x)
        if return_features:
            return logits
        return F.softmax(logits, dim=1)


@pytest.mark.parametrize(("frames", "height", "width"), [(9, 32, 32), (5, 48, 64), (2, 16, 24)])
def test_output_is_one_feature_vector_per_clip(frames, height, width):
    model = tiny_i3d()
    with torch.no_grad():
        out = model(torch.rand(2, 3, frames, height, width) * 2 - 1)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_full_network_has_the_kinetics_layout():
    model = I3D()
    state = model.state_dict()
    assert state["conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["mixed_5c.branch_1.1.conv3d.weight"].shape == (384, 192, 3, 3, 3)
    assert state["mixed_5b.branch_2.0.batch3d.running_var"].shape == (32,)
    assert state["mixed_4f.branch_3.1.conv3d.weight"].shape == (128, 528, 1, 1, 1)
    assert state["conv3d_0c_1x1.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert state["conv3d_0c_1x1.conv3d.bias"].shape == (400,)
    assert model.mixed_5c.out_channels == 1024
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm3d))
    assert config_from_state_dict(state) == I3DConfig()
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, 4, 32, 32) * 2 - 1)
    assert out.shape == (1, 400)


def test_tensorflow_same_padding():
    # TF: out = ceil(in / stride), total = max((out - 1) * stride + kernel - in, 0), the extra pixel at the end.
    assert tf_same_padding([16, 224, 224], [7, 7, 7], [2, 2, 2]) == [2, 3, 2, 3, 2, 3]
    assert tf_same_padding([25, 112, 112], [1, 3, 3], [1, 2, 2]) == [0, 1, 0, 1, 0, 0]
    assert tf_same_padding([25, 28, 28], [3, 3, 3], [2, 2, 2]) == [0, 1, 0, 1, 1, 1]
    assert tf_same_padding([13, 14, 14], [2, 2, 2], [2, 2, 2]) == [0, 0, 0, 0, 0, 1]


def test_outputs_are_deterministic():
    model = tiny_i3d()
    x = clips(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(model(x), tiny_i3d()(x), rtol=0, atol=0)


def test_batched_equals_one_by_one():
    model = tiny_i3d()
    x = clips(3)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(i3d_features(model, x, clips_per_batch=2), batched, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "state_dict_key"])
def test_state_dict_round_trip_through_the_loader(tmp_path, wrap):
    model = tiny_i3d(seed=3)
    state = model.state_dict()
    if wrap == "module_prefix":
        state = {f"module.{key}": value for key, value in state.items()}
    elif wrap == "state_dict_key":
        state = {"state_dict": state, "epoch": 7}
    path = tmp_path / "i3d.pt"
    torch.save(state, path)
    loaded = load_i3d(path)
    assert isinstance(loaded, I3D) and loaded.source == "native" and not loaded.training
    assert loaded.config == TINY
    x = clips(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_file_runs_as_the_reference_calls_it(tmp_path):
    reference = ReferenceStyleI3D(TINY).eval()
    reference.load_state_dict(tiny_i3d(seed=4).state_dict())
    path = tmp_path / I3D_TORCHSCRIPT_FILENAME
    torch.jit.script(reference).save(str(path))
    loaded = load_i3d(path)
    assert isinstance(loaded, TorchScriptI3D) and loaded.source == "torchscript"
    x = clips(2, frames=6, size=32)
    # No profiling passes of the TorchScript executor: they only cost time here.
    with torch.no_grad(), torch.jit.optimized_execution(False):
        expected = reference(x, rescale=False, resize=False, return_features=True)
        torch.testing.assert_close(loaded(x), expected, rtol=1e-6, atol=1e-6)
        native = load_i3d(path, backend="native", agreement_clip_shape=(6, 32))
        assert isinstance(native, I3D) and native.source == "native"
        torch.testing.assert_close(native(x), expected, rtol=1e-5, atol=1e-5)


def test_missing_weights_say_where_to_put_the_file(tmp_path):
    with pytest.raises(I3DWeightsMissing) as missing:
        load_i3d(tmp_path / "nowhere" / I3D_TORCHSCRIPT_FILENAME)
    message = str(missing.value)
    assert "rFVD is unavailable" in message
    assert str(tmp_path / "nowhere" / I3D_TORCHSCRIPT_FILENAME) in message
    assert I3D_TORCHSCRIPT_FILENAME in message and I3D_PATH_SETTING in message
    with pytest.raises(I3DWeightsMissing, match=I3D_PATH_SETTING):
        load_i3d(None)
    assert issubclass(I3DWeightsMissing, FileNotFoundError)


def test_invalid_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(I3DWeightsInvalid):
        load_i3d(garbage)
    wrong_keys = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(1)}, wrong_keys)
    with pytest.raises(I3DWeightsInvalid, match="conv3d_1a_7x7"):
        load_i3d(wrong_keys)
    incomplete = tmp_path / "incomplete.pt"
    state = tiny_i3d().state_dict()
    del state["mixed_4c.branch_0.conv3d.weight"]
    torch.save(state, incomplete)
    with pytest.raises(I3DWeightsInvalid, match="mixed_4c"):
        load_i3d(incomplete)
    with pytest.raises(I3DWeightsInvalid, match="not a TorchScript"):
        torch.save(tiny_i3d().state_dict(), tmp_path / "plain.pt")
        load_i3d(tmp_path / "plain.pt", backend="torchscript")
