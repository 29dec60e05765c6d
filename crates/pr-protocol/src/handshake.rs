//! Server side of the feature handshake.

use crate::HANDSHAKE_SIZE;
use crate::features::{self, SUPPORTED};
use crate::violation::Violation;

/// Progress of the server-side handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// Part of the requested-features word is still missing.
    NeedMore,
    /// The handshake is complete; these feature bits are enabled.
    Done {
        /// Enabled bits (exactly what the client requested).
        enabled: u32,
    },
}

/// Server side of the handshake: write [`greeting`](Self::greeting), then
/// feed what the client sends until [`Negotiation::Done`].
#[derive(Debug, Clone)]
pub struct HandshakeDecoder {
    supported: u32,
    word: [u8; HANDSHAKE_SIZE],
    filled: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Done(u32),
    Failed,
}

impl Default for HandshakeDecoder {
    fn default() -> Self {
        Self::new(SUPPORTED)
    }
}

impl HandshakeDecoder {
    /// A decoder for a server supporting the `supported` feature bits
    /// (normally [`features::SUPPORTED`]).
    pub fn new(supported: u32) -> Self {
        Self {
            supported,
            word: [0; HANDSHAKE_SIZE],
            filled: 0,
            state: State::Reading,
        }
    }

    /// The 4 bytes the server writes first: its supported features.
    pub fn greeting(&self) -> [u8; HANDSHAKE_SIZE] {
        self.supported.to_be_bytes()
    }

    /// How many more bytes the handshake needs (0 once done or failed).
    pub fn bytes_wanted(&self) -> usize {
        match self.state {
            State::Reading => HANDSHAKE_SIZE.saturating_sub(self.filled),
            State::Done(_) | State::Failed => 0,
        }
    }

    /// Feeds bytes read from the client and any descriptors received with
    /// them. Descriptors are a violation here; they are dropped (closed).
    ///
    /// `bytes` must not be longer than [`bytes_wanted`](Self::bytes_wanted).
    pub fn feed<F>(
        &mut self,
        bytes: &[u8],
        fds: impl IntoIterator<Item = F>,
    ) -> Result<Negotiation, Violation> {
        let count = fds.into_iter().count();
        match self.state {
            State::Failed => return Err(Violation::AlreadyFailed),
            State::Done(enabled) if bytes.is_empty() && count == 0 => {
                return Ok(Negotiation::Done { enabled });
            }
            State::Done(_) | State::Reading => {}
        }
        let wanted = self.bytes_wanted();
        if bytes.len() > wanted {
            return Err(self.fail(Violation::Overfed {
                wanted,
                given: bytes.len(),
            }));
        }
        if count > 0 {
            return Err(self.fail(Violation::DescriptorDuringHandshake { count }));
        }
        let end = self.filled.saturating_add(bytes.len());
        if let Some(slot) = self.word.get_mut(self.filled..end) {
            slot.copy_from_slice(bytes);
        }
        self.filled = end;
        if self.filled < HANDSHAKE_SIZE {
            return Ok(Negotiation::NeedMore);
        }
        let requested = u32::from_be_bytes(self.word);
        match features::negotiate(self.supported, requested) {
            Ok(enabled) => {
                self.state = State::Done(enabled);
                Ok(Negotiation::Done { enabled })
            }
            Err(unsupported) => Err(self.fail(unsupported.into())),
        }
    }

    /// Reports whether the peer closing the stream now is a violation
    /// (it is, unless the handshake already completed).
    pub fn end_of_stream(&self) -> Result<(), Violation> {
        match self.state {
            State::Done(_) => Ok(()),
            State::Failed => Err(Violation::AlreadyFailed),
            State::Reading => Err(Violation::Truncated {
                stage: "feature word",
                received: self.filled,
                expected: HANDSHAKE_SIZE,
            }),
        }
    }

    fn fail(&mut self, violation: Violation) -> Violation {
        self.state = State::Failed;
        violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{TAGGED_COMMANDS, UnsupportedFeatures};

    const NO_FDS: [(); 0] = [];

    #[test]
    fn greeting_is_the_supported_word_big_endian() {
        assert_eq!(HandshakeDecoder::default().greeting(), [0, 0, 0, 0]);
        assert_eq!(HandshakeDecoder::new(0x0102_0304).greeting(), [1, 2, 3, 4]);
    }

    #[test]
    fn zero_word_in_one_piece_completes() {
        let mut hs = HandshakeDecoder::default();
        assert_eq!(hs.bytes_wanted(), 4);
        assert_eq!(
            hs.feed(&[0; 4], NO_FDS),
            Ok(Negotiation::Done { enabled: 0 })
        );
        assert_eq!(hs.bytes_wanted(), 0);
        assert_eq!(hs.end_of_stream(), Ok(()));
    }

    #[test]
    fn word_in_pieces_completes() {
        let mut hs = HandshakeDecoder::new(0b11);
        assert_eq!(hs.feed(&[0], NO_FDS), Ok(Negotiation::NeedMore));
        assert_eq!(hs.bytes_wanted(), 3);
        assert_eq!(hs.feed(&[], NO_FDS), Ok(Negotiation::NeedMore));
        assert_eq!(hs.feed(&[0, 0], NO_FDS), Ok(Negotiation::NeedMore));
        assert_eq!(hs.feed(&[2], NO_FDS), Ok(Negotiation::Done { enabled: 2 }));
    }

    #[test]
    fn unsupported_bit_is_a_violation() {
        let mut hs = HandshakeDecoder::default();
        let err = hs.feed(&TAGGED_COMMANDS.to_be_bytes(), NO_FDS).unwrap_err();
        assert_eq!(
            err,
            Violation::UnsupportedFeatures(UnsupportedFeatures {
                requested: 1,
                unsupported: 1
            })
        );
        assert_eq!(hs.bytes_wanted(), 0);
        assert_eq!(hs.feed(&[], NO_FDS), Err(Violation::AlreadyFailed));
    }

    #[test]
    fn descriptor_with_the_word_is_dropped_and_refused() {
        let dropped = std::rc::Rc::new(());
        let mut hs = HandshakeDecoder::default();
        let err = hs
            .feed(&[0, 0], [dropped.clone(), dropped.clone()])
            .unwrap_err();
        assert_eq!(err, Violation::DescriptorDuringHandshake { count: 2 });
        assert_eq!(std::rc::Rc::strong_count(&dropped), 1, "descriptors closed");
    }

    #[test]
    fn overfeeding_is_refused() {
        let mut hs = HandshakeDecoder::default();
        assert_eq!(
            hs.feed(&[0; 5], NO_FDS),
            Err(Violation::Overfed {
                wanted: 4,
                given: 5
            })
        );
        let mut hs = HandshakeDecoder::default();
        hs.feed(&[0; 4], NO_FDS).unwrap();
        assert_eq!(
            hs.feed(&[0], NO_FDS),
            Err(Violation::Overfed {
                wanted: 0,
                given: 1
            })
        );
    }

    #[test]
    fn end_of_stream_mid_word_is_truncation() {
        let mut hs = HandshakeDecoder::default();
        hs.feed(&[0; 3], NO_FDS).unwrap();
        assert_eq!(
            hs.end_of_stream(),
            Err(Violation::Truncated {
                stage: "feature word",
                received: 3,
                expected: 4
            })
        );
        assert_eq!(
            hs.end_of_stream().unwrap_err().to_string(),
            "peer closed the connection after 3 of 4 feature word bytes"
        );
    }
}
