"""SavedModel export and inference helpers."""
