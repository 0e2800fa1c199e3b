"""Names of the keys of prediction, target and batch dicts, in one place.

Ground-truth strings end in `_gt` (as deeplab2's), so no ground-truth key
reads like a prediction key; every string here is distinct.
"""

# Model outputs (float32, upsampled to the input size).
PRED_SEMANTIC_LOGITS = 'semantic_logits'    # [B, H, W, num_classes]
PRED_CENTER_HEATMAP = 'center_heatmap'      # [B, H, W]
PRED_OFFSET_MAP = 'offset_map'              # [B, H, W, 2], (y, x) pixels

# Post-processing outputs.
PRED_SEMANTIC = 'semantic_pred'             # int32 [B, H, W]
PRED_PANOPTIC = 'panoptic_pred'             # int32 [B, H, W]
PRED_INSTANCE = 'instance_pred'             # int32 [B, H, W]
PRED_CENTER_POINTS = 'center_points'        # int32 [B, K, 2], (y, x)
PRED_CENTER_SCORES = 'center_scores'        # float32 [B, K], 0 = no center
PRED_INSTANCE_SCORES = 'instance_scores'    # float32 [B, K]

# Decoded examples (tfrecord.parse_example, unbatched) and batches of the
# input pipeline.
IMAGE = 'image'                             # float32 [B, H, W, 3], 0..255
                                            # (decoded: uint8 [H, W, 3])
PANOPTIC_LABEL = 'panoptic_gt'              # int32 [B, H, W], -1 = no label
IMAGE_SIZE = 'image_size'                   # int32 [B, 2], (H, W) unpadded
LABEL_SIZE = 'label_size'                   # int32 [B, 2], original label
FILENAME = 'filename'                       # string [B]
IS_VALID = 'is_valid'                       # bool [B], False on eval padding

# Training targets (targets.make_targets).
GT_SEMANTIC = 'semantic_gt'                 # int32 [B, H, W]
GT_CENTER_HEATMAP = 'center_heatmap_gt'     # float32 [B, H, W]
GT_OFFSET = 'offset_gt'                     # float32 [B, H, W, 2], (y, x)
SEMANTIC_WEIGHT = 'semantic_weight'         # float32 [B, H, W]
CENTER_WEIGHT = 'center_weight'             # float32 [B, H, W]
OFFSET_WEIGHT = 'offset_weight'             # float32 [B, H, W]
