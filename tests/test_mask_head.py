"""MaskXMaskHead against detectron2's own Mask R-CNN head, and the weight transfer options."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead, mask_rcnn_loss
from detectron2.utils.events import EventStorage
from model_fixtures import box_predictor, mask_proposals

from maskx_d2.modeling import MaskMLPBranch, MaskXMaskHead, WeightTransfer
from maskx_d2.modeling.weight_transfer import transfer_input_dim

K, C, D = 5, 8, 16
# The paper's class embeddings live in the shared folder beside the checkout (not copied here).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAPE = ShapeSpec(channels=C, height=7, width=7)


def _pooled(num_rois, seed=0):
    return torch.rand(num_rois, C, 7, 7, generator=torch.Generator().manual_seed(seed))


def _transfer_head(kind="cls+box", num_layers=2, activation="leaky_relu", mlp=False, **kw):
    torch.manual_seed(0)
    embeddings = torch.randn(K, 12) if kind == "embedding" else None
    in_dim = transfer_input_dim(kind, D, embedding_dim=12)
    transfer = WeightTransfer(in_dim, C, num_layers=num_layers, hidden_dim=6, activation=activation)
    return MaskXMaskHead(
        SHAPE,
        num_classes=K,
        conv_dims=[C, C, C],
        mask_predictor="transfer",
        transfer=transfer,
        transfer_input=kind,
        class_embeddings=embeddings,
        mlp_branch=MaskMLPBranch(C, 14) if mlp else None,
        **kw,
    )


def test_class_specific_equals_detectron2_mask_rcnn():
    torch.manual_seed(0)
    reference = MaskRCNNConvUpsampleHead(SHAPE, num_classes=K, conv_dims=[C, C, C])
    ours = MaskXMaskHead(SHAPE, num_classes=K, conv_dims=[C, C, C], mask_predictor="class_specific")
    # Same parameter names as detectron2: a released Mask R-CNN head loads strictly.
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():  # non-zero bias so the bias path is compared too
        ours.predictor.bias.copy_(torch.linspace(-1, 1, K))
        reference.predictor.bias.copy_(ours.predictor.bias)
    proposals = mask_proposals(K)
    x = _pooled(5)
    with EventStorage():
        ours.train(), reference.train()
        loss = ours(x, proposals)["loss_mask"]
        expected = mask_rcnn_loss(reference.layers(x), proposals)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)

    ours.eval(), reference.eval()
    detections = mask_proposals(K, seed=1)
    for d in detections:
        d.pred_classes = d.gt_classes
    expected = [d.__class__(d.image_size, **d.get_fields()) for d in detections]
    reference(x, expected)
    ours(x, detections)
    for a, b in zip(detections, expected):
        assert a.pred_masks.shape == b.pred_masks.shape == (len(a), 1, 14, 14)
        assert torch.allclose(a.pred_masks, b.pred_masks, atol=1e-6)


def test_class_agnostic_has_one_shared_channel():
    head = MaskXMaskHead(SHAPE, num_classes=K, conv_dims=[C, C, C], mask_predictor="class_agnostic")
    assert head.predictor.weight.shape == (1, C, 1, 1)
    feats = head.layers(_pooled(4))
    same = head.mask_logits(feats, torch.tensor([0, 1, 2, 3]))
    other = head.mask_logits(feats, torch.tensor([4, 4, 4, 4]))
    assert torch.equal(same, other)


@pytest.mark.parametrize(
    "kind,num_layers,activation",
    list(
        itertools.product(["cls", "box", "cls+box", "embedding"], [1, 2, 3], ["relu", "leaky_relu"])
    ),
)
def test_transfer_shapes(kind, num_layers, activation):
    head = _transfer_head(kind, num_layers, activation).eval()
    expected_in = {"cls": D, "box": 4 * D, "cls+box": 5 * D, "embedding": 12}[kind]
    fcs = [m for m in head.transfer.layers if isinstance(m, torch.nn.Linear)]
    assert len(fcs) == num_layers and fcs[0].in_features == expected_in
    assert fcs[-1].out_features == C and all(fc.bias is not None for fc in fcs)
    acts = [m for m in head.transfer.layers if not isinstance(m, torch.nn.Linear)]
    assert len(acts) == num_layers - 1
    assert all(
        isinstance(a, torch.nn.LeakyReLU if activation == "leaky_relu" else torch.nn.ReLU)
        for a in acts
    )
    assert not hasattr(head, "predictor")  # no learned per-class conv in transfer mode
    detections = mask_proposals(K)
    for d in detections:
        d.pred_classes = d.gt_classes
    head(_pooled(5), detections, box_predictor=box_predictor(K, D))
    assert [tuple(d.pred_masks.shape) for d in detections] == [(3, 1, 14, 14), (2, 1, 14, 14)]


def test_transfer_without_activation_is_linear_and_low_rank():
    # 2 FCs through a hidden width of 2 and no activation: T(x) = B (A x + a) + b, an affine map
    # whose outputs for any number of classes span at most 2 dimensions around T(0).
    transfer = WeightTransfer(5 * D, C, num_layers=2, hidden_dim=2, activation="none")
    assert [type(m) for m in transfer.layers] == [torch.nn.Linear, torch.nn.Linear]
    torch.manual_seed(1)
    x = torch.randn(K, 5 * D)
    with torch.no_grad():
        out, at_zero = transfer(x), transfer(torch.zeros(1, 5 * D))
        assert torch.allclose(transfer(2 * x) - at_zero, 2 * (out - at_zero), atol=1e-5)
    assert torch.linalg.matrix_rank(out - at_zero) == 2
    with pytest.raises(ValueError, match="ACTIVATION must be one of"):
        WeightTransfer(5 * D, C, activation="gelu")


def test_transfer_uses_the_detector_weights_of_each_class():
    """T's output for class c must be T(w_det[c]) with cls rows and 4 box rows of class c."""
    head = _transfer_head("cls+box")
    predictor = box_predictor(K, D)
    c = 3
    w_det = torch.cat(
        [predictor.cls_score.weight[c], predictor.bbox_pred.weight[4 * c : 4 * c + 4].reshape(-1)]
    )
    weight, bias = head.per_roi_mask_weights(torch.tensor([c, c]), predictor)
    assert bias is None
    assert torch.allclose(weight[0], head.transfer(w_det[None])[0])
    feats = torch.rand(2, C, 14, 14)
    expected = torch.nn.functional.conv2d(feats, weight[0].view(1, C, 1, 1))
    assert torch.allclose(
        head.mask_logits(feats, torch.tensor([c, c]), predictor), expected, atol=1e-6
    )


@pytest.mark.parametrize("detach", [True, False])
def test_stop_gradient_on_detector_weights(detach):
    head = _transfer_head("cls+box", detach_det_weights=detach).train()
    predictor = box_predictor(K, D)
    with EventStorage():
        head(_pooled(5), mask_proposals(K), box_predictor=predictor)["loss_mask"].backward()
    grads = [predictor.cls_score.weight.grad, predictor.bbox_pred.weight.grad]
    if detach:
        assert all(g is None for g in grads)
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert head.transfer.layers[0].weight.grad.abs().sum() > 0


def test_mlp_branch_adds_the_same_logits_to_every_class():
    head = _transfer_head("cls", mlp=True)
    with torch.no_grad():
        head.mlp_branch.layers[-1].bias.fill_(0.5)
    predictor = box_predictor(K, D)
    feats = head.layers(_pooled(3))
    with_mlp = head.mask_logits(feats, torch.tensor([0, 1, 2]), predictor)
    mlp = head.mlp_branch(feats)
    head.mlp_branch = None
    without = head.mask_logits(feats, torch.tensor([0, 1, 2]), predictor)
    assert torch.allclose(with_mlp - without, mlp[:, None], atol=1e-6)
    assert mlp.shape == (3, 14, 14)


def test_paper_mlp_branch_size():
    # The official single FC: 256*28*28 -> 28*28, about 157M parameters.
    with torch.device("meta"):
        branch = MaskMLPBranch(256, 28, num_fc=1)
    assert sum(p.numel() for p in branch.parameters()) == 256 * 28 * 28 * 784 + 784


def test_mlp_branch_init_is_the_official_one():
    # Hidden FCs: MSRA (std sqrt(2 / fan_out)), zero bias; the last FC: std 0.001, zero bias.
    torch.manual_seed(0)
    branch = MaskMLPBranch(8, 8, num_fc=3, fc_dim=512)
    hidden = [m for m in branch.layers if isinstance(m, torch.nn.Linear)]
    last = hidden.pop()
    assert len(hidden) == 2
    for fc in hidden:
        assert fc.weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.05)
        assert not fc.bias.any()
    assert last.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert not last.bias.any()


def test_class_agnostic_box_regression_is_refused():
    head = _transfer_head("cls+box")
    with pytest.raises(ValueError, match="CLS_AGNOSTIC_BBOX_REG"):
        head.check_box_predictor(box_predictor(K, D, cls_agnostic_bbox_reg=True))
    head = _transfer_head("cls")  # cls rows only: class-agnostic regression is fine
    head.check_box_predictor(box_predictor(K, D, cls_agnostic_bbox_reg=True))


def test_class_embedding_files_load(tmp_path):
    from maskx_d2.modeling.mask_head import load_class_embeddings

    good = tmp_path / "good.npy"
    np.save(good, np.random.RandomState(0).randn(80, 300).astype(np.float32))
    assert load_class_embeddings(str(good), 80).shape == (80, 300)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((79, 300), dtype=np.float32))
    with pytest.raises(ValueError, match="bad.npy.*79"):
        load_class_embeddings(str(bad), 80)
    with pytest.raises(ValueError, match="missing.npy"):
        load_class_embeddings(str(tmp_path / "missing.npy"), 80)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} (paper's embeddings) absent")
def test_paper_glove_and_randn_embeddings_feed_transfer():
    from maskx_d2.modeling.mask_head import load_class_embeddings

    for name, norm_range in (
        ("coco80_glove_300d.npy", (3, 12)),
        ("coco80_randn_300d.npy", (0.5, 2)),
    ):
        emb = load_class_embeddings(str(SHARED_DATA / name), 80)
        assert emb.shape == (80, 300) and emb.dtype == torch.float32
        assert norm_range[0] < emb.norm(dim=1).mean() < norm_range[1]
        transfer = WeightTransfer(300, C, num_layers=2, hidden_dim=6)
        head = MaskXMaskHead(
            SHAPE,
            num_classes=80,
            conv_dims=[C, C, C],
            mask_predictor="transfer",
            transfer=transfer,
            transfer_input="embedding",
            class_embeddings=emb,
        )
        logits = head.mask_logits(head.layers(_pooled(3)), torch.tensor([0, 40, 79]))
        assert logits.shape == (3, 1, 14, 14) and torch.isfinite(logits).all()
