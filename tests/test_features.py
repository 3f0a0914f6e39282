"""Shared features: the batched torch log-mel equals librosa's (the reference definition)."""

import numpy as np
import torch

from asm.audio.features import FeatureSettings, as_batch, logmel, logmel_from_power, power_spectrogram


def test_logmel_matches_librosa_and_power_path_is_the_same_code():
    import librosa

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 16000)) * 0.2).astype(np.float32)
    settings = FeatureSettings()
    ours = logmel(audio, 16000, settings).numpy()
    for i in range(2):
        ref = librosa.feature.melspectrogram(y=audio[i], sr=16000, n_fft=settings.n_fft, hop_length=settings.hop,
                                             n_mels=settings.n_mels, fmin=settings.fmin, center=True,
                                             pad_mode="constant", power=2.0)
        np.testing.assert_allclose(ours[i], np.log(ref + 1e-6), rtol=1e-5, atol=1e-4)
    power = power_spectrogram(audio, settings.n_fft, settings.hop)
    spec = torch.stft(torch.from_numpy(audio), settings.n_fft, settings.hop, window=torch.hann_window(settings.n_fft),
                      center=True, pad_mode="constant", return_complex=True)
    torch.testing.assert_close(power, spec.abs() ** 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logmel_from_power(power, 16000, settings), torch.from_numpy(ours))


def test_as_batch_accepts_views_int16_and_single_signals():
    audio = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert torch.equal(as_batch(audio[::-1])[0], torch.from_numpy(audio[2]))
    assert as_batch(np.zeros(5, np.float32)).shape == (1, 5)
    assert as_batch(np.array([16384], np.int16)).item() == 0.5
