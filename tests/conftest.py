"""Shared test set-up: synthc's working caches go to a temporary folder, never the repo."""

from __future__ import annotations

import os
import tempfile

# Set at import so subprocesses started by tests inherit it too.
os.environ.setdefault("SYNTHC_CACHE_DIR", tempfile.mkdtemp(prefix="synthc-test-cache-"))
# Runs of the examples and the corpus must not write lock files into the repository;
# the tests of lock files clear this for themselves.
os.environ.setdefault("SYNTHC_NO_LOCK", "1")
