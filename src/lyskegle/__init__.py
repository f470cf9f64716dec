"""lyskegle: predictive risk analytics on Danish register extracts.

The package holds pure functions (frames and graphs in, frames out). Paths live in the
stage entry points under ``pipelines/`` and in ``dvc.yaml``; numbers live in ``params.yaml``.
"""

__version__ = "0.1.0"
