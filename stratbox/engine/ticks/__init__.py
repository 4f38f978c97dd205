"""Tick execution, one question per module (see docs/engine.md for the whole path):

- `batch`    — a batch of scheduled ticks: begun together, due ticks' user code run together
- `prefetch` — what a batch reads once (rows, quotes, trusted snapshots, audience) and its flush
- `rows`     — the row-stamp cache of instance rows between batches
- `tick`     — one tick of one instance: claim, lock, recovery, orders, persisting
- `inputs`   — a tick's input from the quote, and the snapshot sent with it
- `door`     — the door into the sandbox: one style dispatch, the reply re-checked
- `sizing`   — signal style: signals into sized orders
- `failures` — a failed tick, the daily-loss check, the automatic pause
- `shaping`  — a tick's outcome, action rows and dashboard events

Recording runs is `engine.runs`, the dry run `engine.dry_run`, the instance loader `engine.selectors`.
"""
