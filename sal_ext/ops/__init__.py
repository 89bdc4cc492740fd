"""sal_ext.ops: one documented Python front per kernel.

Each op checks its inputs, picks the C++/CUDA kernel or the pure-torch fallback
(``backend="auto" | "kernel" | "torch"``, default from SAL_EXT_BACKEND, else auto) and, for
the differentiable ones, is a torch.library custom op with autograd and fake kernels.
``emulate_cuda()`` (development builds, tools/emu_build.sh) runs CPU tensors through the ops'
CUDA branches with the CUDA kernels executed by the CPU emulator of csrc/emu/.
"""
from ._common import backends, emulate_cuda
from .detection import detection_ap, segment_iou
from .nms import nms_1d
from .proposals import oic_proposals, oic_proposals_batched
from .second_order_pool import second_order_pool
from .segment_mixup import mix_targets, segment_mixup
from .topk import topk_mask, topk_mil

__all__ = [
    "backends",
    "emulate_cuda",
    "second_order_pool",
    "topk_mil",
    "topk_mask",
    "segment_mixup",
    "mix_targets",
    "nms_1d",
    "segment_iou",
    "detection_ap",
    "oic_proposals",
    "oic_proposals_batched",
]
