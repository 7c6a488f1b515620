"""An encoder loaded on first use, once, by whichever thread needs it first."""

from __future__ import annotations

import threading

from backend.encoders.encoder import Encoder
from backend.encoders.loader import load_encoder


class LazyEncoder:
    """Holds a spec and loads the encoder on the first :meth:`get` (thread-safe).

    Create it anywhere (e.g. before gunicorn forks): nothing is imported or loaded until
    :meth:`get` is called in the process that uses it.

    Parameters
    ----------
    spec : str
        Encoder spec for :func:`load_encoder`.
    **options
        Keyword arguments for :func:`load_encoder` (``device``, ``cache_dir``, ``offline``...).
    """

    def __init__(self, spec: str, **options):
        self.spec = spec
        self.options = options
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the weights are loaded already."""
        return self._encoder is not None

    def get(self) -> Encoder:
        """The encoder, loading it on the first call."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = load_encoder(self.spec, **self.options)
        return self._encoder
