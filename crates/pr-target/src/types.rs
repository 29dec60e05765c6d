//! The kind of medium access a command makes, for the conflict question.

/// The kind of medium access a command makes, for the conflict question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// READ and other commands that only read the medium.
    Read,
    /// WRITE and other commands that change the medium.
    Write,
}
