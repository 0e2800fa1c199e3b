"""The network as a Keras 3 `.keras` file.

  model.save('panoptic_deeplab.keras')          # any PanopticDeepLab
  model = saving.load_model('panoptic_deeplab.keras')

Every layer of the network is registered (`deeplab2>ClassName`) and gives
its whole construction in get_config, so a `.keras` file holds the
architecture and the weights: loading it needs this package (for the
classes) but no experiment config. The inference path around the network
(preprocessing, post-processing) is not in the file: export_model.py
writes that.
"""

import keras

# Imported for their registrations: the model, every backbone and every
# layer.
# pylint: disable=unused-import
from deeplab2.modeling import backbones
from deeplab2.modeling import panoptic_deeplab
from deeplab2.modeling.layers import aspp
from deeplab2.modeling.layers import atrous
from deeplab2.modeling.layers import convolutions
from deeplab2.modeling.layers import decoder
from deeplab2.modeling.layers import drop_path
from deeplab2.modeling.layers import heads
from deeplab2.modeling.layers import normalization
from deeplab2.modeling.layers import squeeze_excite
from deeplab2.modeling.layers import switchable_atrous
# pylint: enable=unused-import


def load_model(path: str) -> keras.Model:
  """The model saved at `path` (a `.keras` file), weights included.

  Raises:
    ValueError: not a `.keras` file (Keras' message).
  """
  return keras.saving.load_model(path, compile=False)
