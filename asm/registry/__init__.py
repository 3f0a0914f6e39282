"""The relational registry (SQLite by default): synths, parameters, presets, datasets, models, results."""
