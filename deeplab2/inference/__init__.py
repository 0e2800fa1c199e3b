"""The one inference path of evaluation, export and the predictor.

image -> evaluation's preprocessing (resize to a range, pad with 127.5 to
the eval crop) -> `predict`: the model, with test-time augmentation ->
outputs cropped to the (resized) image -> post-processing -> every map back
at the image's own size. The evaluator (whose input pipeline preprocesses
alike) and the exported SavedModel both call these functions, so a
deployed model predicts what evaluation scored.

An input larger than the crop (after the resize) is padded on each side to
the next output_stride * k + 1 instead: evaluation never sees one (its
pipeline refuses it), and this is what evaluating with that larger crop
would do.

  padded, size = inference.preprocess(images, options)
  outputs = inference.crop(inference.predict(model, padded, options.tta),
                           size)

Modules: options (InferenceOptions), tta (TestTimeAugmentation and the
averaged forward pass), preprocessing, outputs.
"""

from deeplab2.inference.options import InferenceOptions
from deeplab2.inference.outputs import crop
from deeplab2.inference.outputs import deeplab2_maps
from deeplab2.inference.outputs import INSTANCE_CENTER_PRED
from deeplab2.inference.outputs import INSTANCE_SCORE_LIST
from deeplab2.inference.outputs import output_maps
from deeplab2.inference.outputs import SEMANTIC_PROBS
from deeplab2.inference.outputs import to_size
from deeplab2.inference.preprocessing import padded_size
from deeplab2.inference.preprocessing import preprocess
from deeplab2.inference.preprocessing import processed_size
from deeplab2.inference.tta import NO_SCALING
from deeplab2.inference.tta import predict
from deeplab2.inference.tta import TestTimeAugmentation
