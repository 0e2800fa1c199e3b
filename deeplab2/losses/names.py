"""The config names of the losses (no TensorFlow, so config validation
stays light). panoptic_deeplab_loss registers one function per name."""

SEMANTIC_LOSS_NAMES = ('softmax_cross_entropy',)
CENTER_LOSS_NAMES = ('mse',)
REGRESSION_LOSS_NAMES = ('l1',)
