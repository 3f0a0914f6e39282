"""Architecture ``transformer``: small spectrogram transformer over log-mel patches (AST, scaled down), then the kind-aware parameter head."""

from asm.models.architectures import EncoderArchitecture, register
from asm.models.encoders import TransformerEncoder


@register
class TransformerArchitecture(EncoderArchitecture):
    name = "transformer"
    description = "small spectrogram transformer over log-mel patches (AST, scaled down)"
    encoder_class = TransformerEncoder
