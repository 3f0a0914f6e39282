"""Datasets: generation (plan, executor, shards on disk, registry rows) and the torch Dataset.

- ``settings.DatasetSettings``: everything that determines a dataset's contents.
- ``plan.build_plan``: first-choice presets, splits and notes of every slot, from the seed.
- ``executor.RenderPool``: persistent render workers (shard jobs, and batches of candidates for
  searches: ``pool.render(values, notes, duration, reduce=...)``); ``executor.RayExecutor``.
- ``shardgen``: what a worker does with one shard job.
- ``generate.generate_dataset``: generate or resume a dataset (the ``generate-dataset`` command).
- ``store``: listing, showing, verifying and deleting datasets.
- ``torch_dataset.ShardDataset``: map-style torch Dataset over a dataset's shards (memory-mapped).
"""
