"""ConvGAPBoxHead: a box head whose features are the global average of a conv map, so that the
box predictor's class weights give class activation maps (:mod:`.class_activation`).

detectron2's FastRCNNConvFCHead flattens its conv map into FC layers, which mix positions: no
map then averages to a class's logit. Here the box predictor's linear layers read the spatial
mean of the last conv map directly, as in OPMask (Biertimpel et al. 2021), whose box head is
4 convs of 1024 channels with BN.

Shape letters: R RoIs, C_in channels of the pooled RoI features (the FPN's), S the box pooler's
side, D = ROI_BOX_HEAD.CONV_DIM.
"""

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.box_head import ROI_BOX_HEAD_REGISTRY, FastRCNNConvFCHead

__all__ = ["ConvGAPBoxHead"]


@ROI_BOX_HEAD_REGISTRY.register()
class ConvGAPBoxHead(FastRCNNConvFCHead):
    """ROI_BOX_HEAD.NUM_CONV 3x3 convs of CONV_DIM (with ROI_BOX_HEAD.NORM, ReLU; detectron2's
    own layers and init), then global average pooling: (R, C_in, S, S) -> (R, D). No FC.

    Two entry points, one computation: :meth:`forward` gives the box predictor the pooled (R, D)
    vector and is :meth:`feature_map` followed by the mean, so no conv runs twice within a call.
    The ROI heads call :meth:`feature_map` for the CAM on the mask branch's own RoIs, which
    need not be the box branch's sampled proposals (ground-truth boxes with
    ``MODEL.MASKX.MASK_TRAIN_BOXES``, the detections at inference). Nothing is cached between the
    two calls: a cache would hold the maps of other boxes and tie the mask branch to the order of
    the box branch's calls. The price is the convs once more on the mask RoIs only (the
    foreground ones in training, at most POSITIVE_FRACTION of the sampled proposals; the
    detections at inference).
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, conv_dims, conv_norm=""):
        """
        Args:
            input_shape (ShapeSpec): the pooled RoI features, C_in x S x S.
            conv_dims (list[int]): output widths of the convs; the last is D. At least one.
            conv_norm (str or callable): normalization of the convs (see ``get_norm``).
        """
        if not conv_dims:
            raise ValueError(
                "ConvGAPBoxHead needs MODEL.ROI_BOX_HEAD.NUM_CONV >= 1: its last conv map is "
                "what the class activation maps are taken on"
            )
        super().__init__(input_shape, conv_dims=conv_dims, fc_dims=[], conv_norm=conv_norm)
        self._output_size = conv_dims[-1]  # the pooled vector: output_shape is ShapeSpec(D)

    @classmethod
    def from_config(cls, cfg, input_shape):
        num_fc = cfg.MODEL.ROI_BOX_HEAD.NUM_FC
        if num_fc > 0:
            # Silently ignoring them would leave a config that reads as a different model.
            raise ValueError(
                "ConvGAPBoxHead has no FC layers (the box predictor reads the pooled conv map, "
                f"which makes the CAM exact): set MODEL.ROI_BOX_HEAD.NUM_FC=0, got {num_fc}"
            )
        ret = super().from_config(cfg, input_shape)
        del ret["fc_dims"]
        return ret

    def feature_map(self, x):
        """(R, C_in, S, S) pooled RoI features -> (R, D, S, S), the last conv map."""
        for layer in self:  # only the convs: no flatten / FC modules were added
            x = layer(x)
        return x

    def forward(self, x):
        """(R, C_in, S, S) pooled RoI features -> (R, D), the spatial mean of the conv map."""
        return self.feature_map(x).mean(dim=(2, 3))
