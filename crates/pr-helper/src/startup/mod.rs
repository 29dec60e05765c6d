//! Start-up sequence.
