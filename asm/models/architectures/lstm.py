"""Architecture ``lstm``: bidirectional LSTM over MFCC frames (deepDIVA), then the kind-aware parameter head."""

from asm.models.architectures import EncoderArchitecture, register
from asm.models.encoders import LSTMEncoder


@register
class LSTMArchitecture(EncoderArchitecture):
    name = "lstm"
    description = "bidirectional LSTM over MFCC frames (deepDIVA)"
    encoder_class = LSTMEncoder
