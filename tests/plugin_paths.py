"""Where the real plugin lives, and a marker for tests that need it (no fixtures here: see plugin_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

AMSYNTH = Path("/usr/lib/vst/amsynth_vst.so")
BANKS = Path("/usr/share/amsynth/banks")
needs_amsynth = pytest.mark.skipif(
    not AMSYNTH.is_file() or not BANKS.is_dir(),
    reason="amsynth is not installed (make synths, or apt-get install amsynth)",
)


def amsynth_spec(sample_rate: int = 16000):
    """A SynthSpec for amsynth straight from the plugin (no registry), for in-process tests."""
    from asm.synth.host import SynthSpec
    from asm.synth.plugin import describe_plugin, space_from

    info = describe_plugin(AMSYNTH)
    return SynthSpec("amsynth", "vst2", str(AMSYNTH), space_from(info), sample_rate)
