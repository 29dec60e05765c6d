//! Backends that execute requests.
