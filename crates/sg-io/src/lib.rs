//! Safe SG_IO and descriptor classification.
