"""Model zoos by name: ``torchvision:NAME`` and ``timm:NAME`` resolve to random-weight models
with their own input size. Skipped with the reason where the zoo package is absent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn as nn

import swapprobe
from swapprobe.errors import ModelLoadError, SettingsError, UnknownArchitectureError
from swapprobe.models import (
    ModelRef,
    input_size_of,
    list_schemes,
    register_scheme,
    resolve_models,
    unregister_scheme,
)
from swapprobe.models.zoos import zoo_scheme


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


@pytest.fixture
def fakezoo() -> Iterator[None]:
    """A zoo scheme of one tiny model whose input size depends on its name."""
    sizes = {"a": (40, 24)}
    register_scheme("fakezoo", zoo_scheme(lambda name: (Tiny(), sizes.get(name, (8, 8)))))
    yield
    unregister_scheme("fakezoo")


@pytest.mark.usefixtures("fakezoo")
def test_a_zoo_name_carries_its_input_size() -> None:
    (ref,) = resolve_models(["fakezoo:a"])
    assert ref.name == "fakezoo:a" and ref.input_size == (40, 24)
    result = swapprobe.score("fakezoo:a", repeats=1)
    assert result.units == 4 * 40 * 24  # one ReLU on a 4-channel 40x24 map: the size was used
    with pytest.raises(SettingsError, match="different input sizes"):
        input_size_of(resolve_models(["fakezoo:a", "fakezoo:b"]))


def test_an_unknown_scheme_lists_every_known_one_in_one_line() -> None:
    from swapprobe.searchspaces import list_spaces

    with pytest.raises(UnknownArchitectureError) as error:
        resolve_models(["nosuch:thing"])
    line = str(error.value)
    assert "\n" not in line and "'nosuch'" in line
    known = line.partition("known schemes: ")[2].partition(" (or ")[0].split(", ")
    assert known == sorted(["torchvision", "timm", *list_spaces()])
    assert list_schemes() == known


def test_a_registered_scheme_resolves_until_it_is_unregistered() -> None:
    def halves(scheme: str, rest: str, seed: int) -> list[ModelRef]:
        return [ModelRef(f"{scheme}:{rest}/{i}", f"k{i}{seed}", lambda: None) for i in range(2)]

    register_scheme("halves", halves)
    try:
        refs = resolve_models(["halves:x"], seed=3)
        assert [(r.name, r.key) for r in refs] == [("halves:x/0", "k03"), ("halves:x/1", "k13")]
        assert "halves" in list_schemes()
    finally:
        unregister_scheme("halves")
    with pytest.raises(UnknownArchitectureError, match="unknown model scheme 'halves'"):
        resolve_models(["halves:x"])
    with pytest.raises(SettingsError, match="a model scheme is a name"):
        register_scheme("no:colon", halves)


def test_registering_a_scheme_twice_warns_with_both_resolvers() -> None:
    def first(scheme: str, rest: str, seed: int) -> list[ModelRef]:
        return [ModelRef("first", "k1", lambda: None)]

    def second(scheme: str, rest: str, seed: int) -> list[ModelRef]:
        return [ModelRef("second", "k2", lambda: None)]

    register_scheme("twice", first)
    try:
        with pytest.warns(UserWarning, match=r"'twice' re-registered: .*first replaced .*second"):
            register_scheme("twice", second)
        assert [r.name for r in resolve_models(["twice:x"])] == ["second"]
    finally:
        unregister_scheme("twice")


def _torchvision() -> Any:
    try:
        (ref,) = resolve_models(["torchvision:resnet18"])
    except ModelLoadError as error:
        pytest.skip(f"torchvision unusable here: {error}")
    return ref


def test_torchvision_resnet18_scores_with_every_relu_call_counted() -> None:
    ref = _torchvision()
    assert ref.input_size == (224, 224)  # from its weights' metadata, no download
    model = ref.load()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # resnet18's known size
    # independent count: every call of an nn.ReLU (torchvision reuses each block's ReLU)
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel()))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    result = swapprobe.score(ref, batch_size=4, repeats=1, input_size=(64, 64))
    assert result.units == sum(sizes)


def test_unknown_zoo_model_is_one_line() -> None:
    _torchvision()
    with pytest.raises(ModelLoadError, match="no classification model 'resnet19'"):
        resolve_models(["torchvision:resnet19"])


def test_a_saturated_score_names_the_s_that_lifts_the_bound() -> None:
    import numpy as np

    from swapprobe import report
    from swapprobe.results import Result

    full = Result("big", "k", np.array([65536.0]), param_count=1, units=2_308_096, samples=16)
    unsaturated = Result("small", "k2", np.array([900.0]), param_count=1, units=1000, samples=16)
    (note,) = report.saturation_notes([full, unsaturated])
    # 2^22 = 4,194,304 is the first power of two above 2,308,096 units
    assert note.startswith("big: SWAP is at its bound 2^S = 65,536") and "-S 22 " in note


def _timm() -> Any:
    from swapprobe.models.zoos import import_zoo

    try:
        return import_zoo("timm", "timm")
    except ModelLoadError as error:
        pytest.skip(f"timm unusable here: {error}")


def _gelu_oracle(model: nn.Module, inputs: Any) -> Any:
    """(S, V) signs of the input of every GELU module (torch's or timm's own), in call order:
    the TPAMI code's hooks, independent of the ONNX graph."""
    recorded: list[torch.Tensor] = []
    handles = [
        m.register_forward_pre_hook(
            lambda _m, args: recorded.append((args[0] > 0).reshape(args[0].shape[0], -1))
        )
        for m in model.modules()
        if type(m).__name__ == "GELU"
    ]
    with torch.no_grad():
        model(torch.from_numpy(inputs))
    for handle in handles:
        handle.remove()
    return torch.cat(recorded, dim=1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options"), [("convnext_atto", {}), ("vit_tiny_patch16_224", {"img_size": 64})]
)
def test_timm_models_exported_by_timm_score_exactly(
    name: str, options: dict[str, Any], tmp_path: Any
) -> None:
    """A ConvNeXt and a ViT, exported with timm's own ``onnx_export`` (torch's dynamo exporter),
    score their GELU units exactly as torch hooks on the same weights see them."""
    timm = _timm()
    from timm.utils.onnx import onnx_export

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **options).eval()
    path = tmp_path / f"{name}.onnx"
    onnx_export(model, str(path), input_size=(3, 64, 64), batch_size=2, opset=17)
    inputs = swapprobe.load_batch("synthetic", batch_size=16, input_size=(64, 64)).inputs
    result = swapprobe.score(path, data=inputs, batch_size=16, repeats=1, init="keep")
    expected = _gelu_oracle(model, inputs)
    assert result.units == expected.shape[1]
    assert result.swap_per_repeat[0] == torch.unique(expected.T, dim=0).shape[0]
