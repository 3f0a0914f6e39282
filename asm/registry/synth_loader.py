"""From registry rows to rendering synths: the synth layer below knows nothing of the database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from asm.registry.db import session_scope
from asm.registry.models import Synth as SynthRow
from asm.registry.synths import get_synth, space_of
from asm.synth.defaults import RenderDefaults
from asm.synth.host import Synth, SynthSpec, open_synth


def spec_of(row: SynthRow, sample_rate: int = 16000) -> SynthSpec:
    return SynthSpec(name=row.name, kind=row.kind, path=row.path, space=space_of(row), sample_rate=int(sample_rate))


def load_spec(session: Session, name: str, sample_rate: int = 16000) -> SynthSpec:
    return spec_of(get_synth(session, name), sample_rate)


def load_synth(name: str, sample_rate: int = 16000) -> Synth:
    """Open the registered synth ``name`` (with its current locks) for rendering."""
    with session_scope() as session:
        spec = load_spec(session, name, sample_rate)
    return open_synth(spec)


def render_defaults(row: SynthRow) -> RenderDefaults:
    """The render defaults a fixture stored on the synth's row (``SynthConfig.render``)."""
    return RenderDefaults(**(row.settings or {}).get("render", {}))
