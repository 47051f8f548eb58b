"""Labelling large image collections: `egtr predict SOURCES --out DIR` resumable, sharded, in many processes.

- sources.py: folders, glob patterns and file lists -> one ordered list of images, each known by its path;
- run.py: `CollectionRun`, one run into DIR (what is committed, what is left, which process does what, the
  summary); a job of the engine's prediction loop (egtr.engine.prediction: Lightning, one process or DDP);
- index.py + shard_formats.py: shards of JSON Lines or Parquet and their index, committed atomically;
- per_image.py: the per-image JSON layout and how it resumes;
- run_record.py: run.json, the model and settings a folder's results were made with;
- lock.py: one run per folder at a time.
The commit protocol and why a kill between any two writes loses nothing: index.py and architecture.md §3.
"""
