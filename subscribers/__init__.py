"""The people side of cartdigest: readers, consent, preferences, tokens and delivery."""
