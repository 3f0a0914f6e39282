"""Preset file formats, one module each (fxp/fxb, vstpreset, asm's JSON, amsynth banks), and the
import/export pipeline that moves presets between those files and the registry."""
