"""Notes, chords, note sequences and MIDI files."""
