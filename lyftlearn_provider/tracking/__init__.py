"""Tracking many training jobs from one triggerer process: a shared watcher and one AWS call budget."""

from __future__ import annotations
