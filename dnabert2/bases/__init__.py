"""Base-resolution models: the inputs a per-base head reads (tokens and the bases they span), the
SpliceAI-style CNN baseline, the fine-tuning job for dense tasks, and per-base metrics (PR-AUC and
top-k accuracy)."""
