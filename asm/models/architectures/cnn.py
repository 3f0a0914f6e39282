"""Architecture ``cnn``: 2-D CNN on the log-mel, frequency pooled away, a coarse time axis kept, then the kind-aware parameter head."""

from asm.models.architectures import EncoderArchitecture, register
from asm.models.encoders import CNNEncoder


@register
class CNNArchitecture(EncoderArchitecture):
    name = "cnn"
    description = "2-D CNN on the log-mel, frequency pooled away, a coarse time axis kept"
    encoder_class = CNNEncoder
