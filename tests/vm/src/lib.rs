//! Host-side driver for the VM test tier; the tests live in `tests/`.
