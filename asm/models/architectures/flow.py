"""Architecture ``flow``: an encoder (``flow_encoder``, any encoder architecture) with the point head,
plus a conditional neural spline flow (zuko) over the free parameters that yields K candidates."""

from __future__ import annotations

from asm.models.architectures import Architecture, EncoderArchitecture, get, register
from asm.registry.fixtures import FieldError

FLOW_SETTINGS = ("hidden", "transforms", "weight")


@register
class FlowArchitecture(Architecture):
    name = "flow"
    description = "encoder + point head + a conditional neural spline flow over the free parameters"
    many_candidates = True
    sections = ("encoder", "flow")

    @staticmethod
    def base(encoder_name: str) -> EncoderArchitecture:
        arch = get(encoder_name)
        if not isinstance(arch, EncoderArchitecture):
            raise FieldError("flow_encoder", f"{encoder_name!r} is not an encoder architecture")
        return arch

    def check(self, config) -> None:
        super().check(config)
        self.base(config.flow_encoder).check_encoder(config.encoder)
        unknown = set(config.flow) - set(FLOW_SETTINGS)
        if unknown:
            raise FieldError("flow", f"unknown setting(s) {', '.join(sorted(unknown))}; known: "
                                     f"{', '.join(FLOW_SETTINGS)}")

    def encoder(self, config, n_mels: int, frames: int):
        return self.base(config.flow_encoder).encoder(config, n_mels, frames)

    def density(self, config, n_free: int, context: int):
        import zuko

        settings = {"transforms": 4, "hidden": (256, 256), "weight": 0.1, **config.flow}
        flow = zuko.flows.NSF(features=n_free, context=context, transforms=int(settings["transforms"]),
                              hidden_features=tuple(settings["hidden"]))
        return flow, float(settings["weight"])
