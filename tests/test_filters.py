"""asm's mel filter banks and A-weighting are librosa's numbers (without librosa's slow import)."""

import numpy as np
import pytest

from asm.audio.filters import a_weighting_db, mel_filters


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,norm", [
    (16000, 1024, 64, 20.0, None, "slaney"),
    (16000, 2048, 32, 20.0, None, None),
    (44100, 4096, 128, 0.0, 8000.0, "slaney"),
    (22050, 512, 16, 30.0, 11025.0, None),
])
def test_mel_filters_equal_librosa(sr, n_fft, n_mels, fmin, fmax, norm):
    from librosa.filters import mel

    ours = mel_filters(sr, n_fft, n_mels, fmin=fmin, fmax=fmax, norm=norm)
    theirs = mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=norm)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_a_weighting_equals_librosa_and_reads_0_db_at_1_khz():
    from librosa import A_weighting

    freqs = np.fft.rfftfreq(2048, 1 / 16000)
    with np.errstate(divide="ignore"):
        theirs = A_weighting(freqs, min_db=-100.0)
    np.testing.assert_allclose(a_weighting_db(freqs, min_db=-100.0), theirs, rtol=1e-9, atol=1e-9)
    assert abs(a_weighting_db(np.array([1000.0]))[0]) < 0.01 and a_weighting_db(np.array([0.0]))[0] == -80.0


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError):
        mel_filters(16000, 1024, 8, norm="l2")
