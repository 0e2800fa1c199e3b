"""Training and evaluation under a tf.distribute strategy."""
