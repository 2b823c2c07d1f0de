"""The gradient pass's targets and losses for heads other than classifiers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from swapprobe.capture.task_targets import check_fisher, task_loss_fn, task_targets
from swapprobe.errors import SettingsError
from swapprobe.searchspaces import get_space


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def test_classification_draws_the_same_labels_as_before() -> None:
    # the labels seeded random labels always were: randint over the output's classes
    inputs = torch.zeros(6, 3, 4, 4)
    got = task_targets("classification", inputs, (6, 10), _gen())
    assert torch.equal(got, torch.randint(0, 10, (6,), generator=_gen()))
    assert task_loss_fn("classification", 1) is F.cross_entropy


def test_segmentation_labels_every_pixel_within_the_classes() -> None:
    got = task_targets("segmentation", torch.zeros(2, 3, 8, 8), (2, 17, 8, 8), _gen())
    assert got.shape == (2, 8, 8) and got.dtype == torch.int64
    assert int(got.min()) >= 0 and int(got.max()) < 17
    logits = torch.zeros(2, 17, 8, 8)
    # uniform logits: per-pixel cross-entropy is log(17) whatever the labels
    loss = task_loss_fn("segmentation", 3)(logits, got)
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(17.0))))


def test_reconstruction_targets_the_input_with_l1() -> None:
    inputs = torch.arange(24.0).reshape(1, 3, 2, 4)
    target = task_targets("reconstruction", inputs, (1, 3, 2, 4), _gen())
    assert torch.equal(target, inputs)
    loss = task_loss_fn("reconstruction", 4)(inputs + 2.0, target)
    assert float(loss) == pytest.approx(2.0)  # |x + 2 − x| averaged
    with pytest.raises(SettingsError, match="input's shape"):
        task_targets("reconstruction", inputs, (1, 17, 2, 4), _gen())


def test_regression_is_l1_on_images_and_mse_on_vectors() -> None:
    vector = task_targets("regression", torch.zeros(5, 3, 4, 4), (5, 9), _gen())
    assert vector.shape == (5, 9) and vector.dtype == torch.float32
    assert float(task_loss_fn("regression", 2)(vector + 3.0, vector)) == pytest.approx(9.0)
    image = task_targets("regression", torch.zeros(2, 3, 4, 4), (2, 3, 4, 4), _gen())
    assert float(task_loss_fn("regression", 4)(image + 3.0, image)) == pytest.approx(3.0)


def test_vkdnw_is_refused_for_heads_that_are_not_classifiers() -> None:
    check_fisher("classification")
    with pytest.raises(SettingsError, match="segmentation"):
        check_fisher("segmentation")
    with pytest.raises(SettingsError, match="unknown task kind"):
        check_fisher("ranking")


def test_tnb101_names_each_task_head() -> None:
    micro = get_space("tnb101-micro")
    kinds = {
        task: micro.task_loss(micro.parse(f"{task}:(1, 0, 0, 2, 1, 0)"))
        for task in ("class_scene", "jigsaw", "segmentsemantic", "autoencoder", "room_layout")
    }
    assert kinds == {
        "class_scene": "classification",
        "jigsaw": "classification",
        "segmentsemantic": "segmentation",
        "autoencoder": "reconstruction",
        "room_layout": "regression",
    }
    nb201 = get_space("nb201")
    assert nb201.task_loss(nb201.sample(np.random.default_rng(0))) == "classification"


def test_a_dense_head_gets_gradient_proxies() -> None:
    """The segmentation head scores ZiCo: before, cross-entropy on one class label per image
    failed on its per-pixel logits."""
    from swapprobe.api import score

    arch = "tnb101-micro:segmentsemantic:(1, 0, 0, 2, 1, 0)"
    result = score(arch, batch_size=4, repeats=1, input_size=(32, 32), proxies=["zico"])
    assert np.isfinite(result.proxies["zico"]) and result.proxies["zico"] > 0
