"""Evaluation: the crash-safe run store and dataset runs, analyses over error tables, dataset class lists,
Winoground scores."""
