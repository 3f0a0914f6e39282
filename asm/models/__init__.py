"""Estimators: neural regressors from audio features to synth parameters, a conditional flow that
returns several candidate presets, and a nearest-neighbour baseline; plus training and evaluation."""
