"""Architecture ``mlp``: MLP on the flattened log-mel (time pooled), hidden layers with GELU, then the kind-aware parameter head."""

from asm.models.architectures import EncoderArchitecture, register
from asm.models.encoders import MLPEncoder


@register
class MLPArchitecture(EncoderArchitecture):
    name = "mlp"
    description = "MLP on the flattened log-mel (time pooled), hidden layers with GELU"
    encoder_class = MLPEncoder
