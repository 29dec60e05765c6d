//! TODO(owner: startup helper)
