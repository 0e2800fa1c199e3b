"""The plain values of the inference path, built by the config door."""

import dataclasses

from deeplab2.inference import tta as tta_lib


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
  """Evaluation's preprocessing and test-time augmentation.

  Attributes:
    crop_size: (height, width) of eval_dataset_options.crop_size; inputs are
      padded to it (ASPP image pooling then averages over the same map as
      in evaluation).
    output_stride: the backbone's; larger inputs pad to output_stride * k
      + 1.
    min_resize_value, max_resize_value, resize_factor: the eval dataset's
      resize to a range (0: off).
    tta: the test-time augmentation (evaluation's unless overridden).
  """
  crop_size: tuple[int, int]
  output_stride: int
  min_resize_value: int = 0
  max_resize_value: int = 0
  resize_factor: int = 0
  tta: tta_lib.TestTimeAugmentation = tta_lib.TestTimeAugmentation()

  @property
  def resizes(self) -> bool:
    """Whether inputs are resized to a range before the padding."""
    return bool(self.min_resize_value or self.max_resize_value)
