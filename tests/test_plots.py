"""Spectrogram pictures: calibrated levels, a real PNG, written atomically."""

import numpy as np
import pytest

from asm.audio.plots import save_match_picture, save_spectrograms, spectrogram_db
from asm.errors import AsmError

SR = 16000


def test_spectrogram_levels_are_db_re_a_full_scale_sine():
    t = np.arange(SR) / SR
    times, freqs, level = spectrogram_db(np.sin(2 * np.pi * 1000 * t), SR)
    middle = level[:, 20:-20]
    assert abs(freqs[middle.max(axis=1).argmax()] - 1000) < 16
    assert abs(middle.max() - 0.0) < 0.1  # amplitude 1 reads 0 dB
    assert abs(times[-1] - 1.0) < 0.01 and freqs[-1] == SR / 2


def test_match_picture_is_a_png_written_atomically(tmp_path):
    import matplotlib.image

    t = np.arange(SR) / SR
    target = (0.5 * np.sign(np.sin(2 * np.pi * 220 * t)) * np.exp(-3 * t)).astype(np.float32)
    match = (0.4 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * t)).astype(np.float32)[: SR // 2]
    path = save_match_picture(target, match, SR, tmp_path / "match.png", title="mr-stft 1.00")
    assert path == tmp_path / "match.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[1] > 900 and image.shape[0] > 400 and image[..., :3].std() > 0.1
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    save_spectrograms([("a", target), ("b", match), ("c", np.zeros(0, np.float32))], SR, tmp_path / "three.png")
    assert matplotlib.image.imread(tmp_path / "three.png").shape[1] > image.shape[1]
    with pytest.raises(AsmError, match="does not exist"):
        save_match_picture(target, match, SR, tmp_path / "missing" / "x.png")
