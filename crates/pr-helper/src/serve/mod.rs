//! Accept loop and connection tasks.
