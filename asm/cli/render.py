"""``asm render``: play notes on a synth with a preset and write the audio."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asm.audio.io import check_writable, write_audio
from asm.audio.signal import is_finite, peak_dbfs
from asm.cli import choices
from asm.cli.app import app, console
from asm.errors import AsmError
from asm.midi.notes import held, load_midi, parse_chord, parse_pitch
from asm.registry.db import session_scope
from asm.registry.synth_loader import render_defaults, spec_of
from asm.registry.synths import find_preset, get_synth
from asm.synth.host import open_synth


@app.command()
def render(
    out: Path = typer.Option(..., "--out", "-o", help="Output audio file (.wav, .flac, ...)."),
    synth: str = typer.Option("asm-sub", "--synth", "-s", help="Registered synth name."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Start from a stored preset (name or #id)."),
    set_: list[str] = typer.Option([], "--set", help="name=value: normalised value, a choice name or 'default'; repeatable."),
    note: Optional[str] = typer.Option(None, "--note", "-n", help="One note: MIDI number or name (60, C4)."),
    chord: Optional[str] = typer.Option(None, "--chord", help="Notes struck together, e.g. 60,64,67."),
    midi: Optional[Path] = typer.Option(None, "--midi", help="Play the notes of a MIDI file."),
    velocity: Optional[int] = typer.Option(None, "--velocity", min=1, max=127, help="Note-on velocity."),
    duration: Optional[float] = typer.Option(None, "--duration", callback=choices.seconds,
                                             help="Seconds of audio (0.01 to 600)."),
    note_off: Optional[float] = typer.Option(None, "--note-off", callback=choices.seconds,
                                             help="Seconds until note-off."),
    sr: Optional[int] = typer.Option(None, "--sr", callback=choices.sample_rate,
                                     help="Sample rate: 16000, 22050, 44100 or 48000."),
) -> None:
    """Render a note, a chord or a MIDI file with a synth and write mono float audio."""
    if sum(x is not None for x in (note, chord, midi)) > 1:
        raise AsmError("give only one of --note, --chord and --midi")
    check_writable(out)
    with session_scope() as session:
        row = get_synth(session, synth)
        defaults = render_defaults(row)
        sample_rate = sr if sr is not None else defaults.sample_rate
        if sample_rate not in (16000, 22050, 44100, 48000) and not 8000 <= sample_rate <= 192000:
            raise AsmError(f"unsupported sample rate {sample_rate}")
        spec = spec_of(row, sample_rate)
        base = find_preset(session, row, preset).values if preset else None
    space = spec.space
    assignments = space.parse_assignments(set_, "--set")  # plugin index -> normalised value
    locked = [space.spec(i).name for i in assignments if space.spec(i).locked]
    if locked:
        console.print(f"[yellow]note:[/yellow] locked parameters keep their locked value: {', '.join(locked)}")
    values = space.from_named(assignments, base)

    vel = velocity if velocity is not None else defaults.velocity
    if midi is not None:
        notes = load_midi(midi)
        if velocity is not None:
            notes = [n._replace(velocity=velocity) for n in notes]
        length = duration if duration is not None else max(n.end for n in notes) + defaults.tail
    else:
        pitches = parse_chord(chord) if chord else [parse_pitch(note) if note else defaults.note]
        length = duration if duration is not None else defaults.duration
        off = note_off if note_off is not None else min(defaults.note_off, 0.75 * length)
        if not 0 < off <= length:
            raise AsmError(f"--note-off must be in (0, duration], got {off} with duration {length}")
        notes = held(pitches, vel, off)
    if not length > 0 or length > 600:
        raise AsmError(f"--duration must be in (0, 600] seconds, got {length}")

    audio = open_synth(spec).render(values, notes, length)
    if not is_finite(audio):
        raise AsmError("the synth produced non-finite audio (NaN/Inf); nothing written")
    write_audio(out, audio, sample_rate)
    console.print(
        f"wrote [bold]{out}[/bold]: {length:g} s at {sample_rate} Hz, {len(notes)} note(s), "
        f"peak {peak_dbfs(audio):.1f} dBFS"
    )
