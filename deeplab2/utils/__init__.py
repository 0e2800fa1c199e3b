"""Small TF helpers shared by data, modeling and post-processing."""
