"""Generated protobuf modules of the experiment schema (built from proto/)."""
