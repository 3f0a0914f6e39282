"""Synth hosting: parameter spaces, the built-in Faust synths and plugin hosts behind one render API."""
