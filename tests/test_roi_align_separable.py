"""The separable CPU backward of RoIAlign (maskx_d2/layers/roi_align.py) against torchvision's."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ROIAlign
from torchvision.ops import roi_align

from maskx_d2 import add_maskx_config
from maskx_d2.layers import (
    ROIAlignSeparableBackward,
    roi_align_axis_weights,
    separable_backward_is_cheaper,
    use_separable_roi_align_backward,
)


def _rois(images, count, image_side, seed, largest=60.0):
    """(count, 5) RoIs on ``images`` images of ``image_side`` pixels, some reaching past the
    image (centres up to 10 px outside), some smaller than a feature cell."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(count, 2, generator=generator) * (image_side + 20) - 10
    sizes = torch.rand(count, 2, generator=generator) * largest + 0.1
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
    image = torch.randint(0, images, (count, 1), generator=generator).float()
    return torch.cat([image, boxes], 1)


def _gradients(module_or_fn, features, rois, grad_output):
    features = features.detach().requires_grad_(True)
    out = module_or_fn(features, rois)
    out.backward(grad_output)
    return out.detach(), features.grad


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("output_size", [(7, 7), (14, 14), (7, 5)])
def test_output_and_gradient_are_torchvisions(aligned, sampling_ratio, output_size):
    # Image 3 of 4 gets no RoI: its gradient must be 0, as torchvision's.
    features = torch.randn(4, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    rois = _rois(3, 96, 128, seed=1)
    module = ROIAlignSeparableBackward(output_size, 0.25, sampling_ratio, aligned)
    grad_output = torch.randn(96, 8, *output_size, generator=torch.Generator().manual_seed(2))
    out, grad = _gradients(module, features, rois, grad_output)

    def reference(x, r):
        return roi_align(x, r, output_size, 0.25, sampling_ratio, aligned)

    expected_out, expected_grad = _gradients(reference, features, rois, grad_output)
    assert torch.equal(out, expected_out)  # the forward is torchvision's own
    assert grad.abs().max() > 1.0  # not a vanishing gradient that any code would match
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(grad[3]) == 0


def test_double_precision_gradient_matches_to_rounding():
    features = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    rois = _rois(2, 20, 64, seed=3).double()
    module = ROIAlignSeparableBackward((5, 5), 0.25, 0, True)
    grad_output = torch.randn(20, 3, 5, 5, dtype=torch.float64)
    _, grad = _gradients(module, features, rois, grad_output)
    _, expected = _gradients(
        lambda x, r: roi_align(x, r, 5, 0.25, 0, True), features, rois, grad_output
    )
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-10)


def test_a_known_axis_weight():
    # One RoI from cell 1.0 to 3.0 on a map of 4 cells, 2 output cells, 2 samples each:
    # samples at 1.25, 1.75 (cell 0) and 2.25, 2.75 (cell 1), each averaged with weight 1/2.
    weights = roi_align_axis_weights(torch.tensor([1.0]), torch.tensor([2.0]), 2, 4, 2)
    expected = torch.tensor([[[0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]]])
    torch.testing.assert_close(weights, expected)
    # A sample at or past the last cell reads the last cell alone; one beyond size is dropped.
    edge = roi_align_axis_weights(torch.tensor([3.0]), torch.tensor([2.0]), 2, 4, 1)
    torch.testing.assert_close(edge, torch.tensor([[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]]))


def test_no_rois_gives_a_zero_gradient():
    features = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = ROIAlignSeparableBackward((7, 7), 0.5, 0, True)(features, torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)
    out.sum().backward()
    assert torch.count_nonzero(features.grad) == 0


def test_large_maps_keep_torchvisions_backward_exactly():
    # A COCO-sized level (100 x 160 cells) with small RoIs: the products would cost more.
    rois = _rois(2, 64, 1280, seed=4, largest=200.0)
    assert not separable_backward_is_cheaper(rois, (100, 160), (7, 7), 0.125, 0, True)
    assert separable_backward_is_cheaper(rois, (16, 16), (7, 7), 0.125, 0, True)
    features = torch.randn(2, 4, 100, 160)
    module = ROIAlignSeparableBackward((7, 7), 0.125, 0, True)
    grad_output = torch.randn(64, 4, 7, 7)
    _, grad = _gradients(module, features, rois, grad_output)
    _, expected = _gradients(
        lambda x, r: roi_align(x, r, 7, 0.125, 0, True), features, rois, grad_output
    )
    assert torch.equal(grad, expected)


def test_without_gradients_the_module_is_detectron2s():
    features = torch.randn(1, 4, 16, 16)
    rois = torch.tensor([[0, 1.0, 1, 9, 9]])
    ours = ROIAlignSeparableBackward((7, 7), 1.0, 0, True)(features, rois)
    assert torch.equal(ours, ROIAlign((7, 7), 1.0, 0, True)(features, rois))


def _tiny_model_cfg(backward):
    cfg = get_cfg()
    add_maskx_config(cfg)
    cfg.merge_from_file("configs/Synthetic/maskx_attributes_boxsup_R_18_FPN_synthetic.yaml")
    cfg.MODEL.ROI_ALIGN_BACKWARD = backward
    return cfg


def test_train_net_puts_the_separable_backward_in_every_pooler():
    from train_net import Trainer

    model = Trainer.build_model(_tiny_model_cfg("auto"))
    kinds = [type(m) for m in model.modules() if isinstance(m, ROIAlign)]
    # 4 FPN levels for the box pooler and 4 for the mask pooler.
    assert kinds == [ROIAlignSeparableBackward] * 8
    plain = Trainer.build_model(_tiny_model_cfg("torchvision"))
    assert [type(m) for m in plain.modules() if isinstance(m, ROIAlign)] == [ROIAlign] * 8
    assert model.state_dict().keys() == plain.state_dict().keys()  # checkpoints unchanged


def test_replacing_keeps_each_poolers_settings():
    parent = torch.nn.ModuleList([ROIAlign((14, 14), 0.125, 2, aligned=False)])
    assert use_separable_roi_align_backward(parent) == 1
    (module,) = parent
    assert type(module) is ROIAlignSeparableBackward
    assert (module.output_size, module.spatial_scale, module.sampling_ratio, module.aligned) == (
        (14, 14),
        0.125,
        2,
        False,
    )
    assert use_separable_roi_align_backward(parent) == 0  # already replaced


def test_an_unknown_backward_is_refused_naming_the_key():
    from train_net import Trainer

    with pytest.raises(ValueError, match=r"MODEL.ROI_ALIGN_BACKWARD.*'fast'"):
        Trainer.build_model(_tiny_model_cfg("fast"))
