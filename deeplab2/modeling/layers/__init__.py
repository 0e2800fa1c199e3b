"""Building blocks of the decoders and heads."""
