"""cartdigest: a weekly digest of new research on B-cell lymphoma that relapsed after CAR-T."""

__version__ = "0.1.0"
