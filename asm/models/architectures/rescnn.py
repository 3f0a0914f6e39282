"""Architecture ``rescnn``: residual CNN (ResNet-style blocks) at laptop size, then the kind-aware parameter head."""

from asm.models.architectures import EncoderArchitecture, register
from asm.models.encoders import ResCNNEncoder


@register
class ResCNNArchitecture(EncoderArchitecture):
    name = "rescnn"
    description = "residual CNN (ResNet-style blocks) at laptop size"
    encoder_class = ResCNNEncoder
