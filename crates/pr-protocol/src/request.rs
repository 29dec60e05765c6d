//! Server side: decoding requests (CDB, descriptor, parameter list).

use crate::violation::Violation;
use crate::wire::{is_pr_opcode, transfer_allowed, transfer_length};
use crate::{CDB_SIZE, PERSISTENT_RESERVE_OUT};

/// Data direction of a request, from its opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// PERSISTENT RESERVE IN: data flows from the device to the client.
    In,
    /// PERSISTENT RESERVE OUT: a parameter list flows to the device.
    Out,
}

/// A CDB the daemon must refuse with CHECK CONDITION instead of passing on,
/// although the stream itself is in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CdbFault {
    /// PR OUT with non-zero `cdb[5..7]`: SPC's parameter list length is the
    /// u32 at `cdb[5..9]`, but the protocol only carries `cdb[7..9]` bytes,
    /// so the device would be told a length that was never sent.
    #[error("PR OUT parameter list length has non-zero high bytes {high:#06x} in cdb[5..7]")]
    ParameterListLengthHighBytes {
        /// The big-endian u16 at `cdb[5..7]`.
        high: u16,
    },
}

impl CdbFault {
    /// Sense key, ASC and ASCQ to answer with: ILLEGAL REQUEST / INVALID
    /// FIELD IN CDB (0x05/0x24/0x00).
    pub fn sense_code(&self) -> (u8, u8, u8) {
        match self {
            CdbFault::ParameterListLengthHighBytes { .. } => (0x05, 0x24, 0x00),
        }
    }
}

/// One complete request, with the descriptor it came with.
///
/// `F` is the descriptor type (`std::os::fd::OwnedFd` in the daemon); the
/// request owns it, so dropping the request closes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<F> {
    /// The 16 CDB bytes as received.
    pub cdb: [u8; CDB_SIZE],
    /// The descriptor of the device to run the command on.
    pub fd: F,
    /// The PR OUT parameter list (empty for PR IN).
    pub data_out: Vec<u8>,
}

impl<F> Request<F> {
    /// PR OUT for opcode 0x5F, PR IN otherwise (the decoder only produces
    /// requests with 0x5E or 0x5F).
    pub fn direction(&self) -> Direction {
        if self.cdb[0] == PERSISTENT_RESERVE_OUT {
            Direction::Out
        } else {
            Direction::In
        }
    }

    /// The transfer length at `cdb[7..9]`: the allocation length of a PR IN,
    /// the parameter list length that was carried for a PR OUT.
    pub fn transfer_length(&self) -> u16 {
        transfer_length(&self.cdb)
    }

    /// Checks the CDB rules the daemon answers with CHECK CONDITION rather
    /// than by closing the connection (see [`CdbFault`]).
    pub fn cdb_check(&self) -> Result<(), CdbFault> {
        let high = u16::from_be_bytes([self.cdb[5], self.cdb[6]]);
        if self.direction() == Direction::Out && high != 0 {
            Err(CdbFault::ParameterListLengthHighBytes { high })
        } else {
            Ok(())
        }
    }
}

/// What a call to [`RequestDecoder::feed`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<F> {
    /// The current request is not complete yet; read
    /// [`RequestDecoder::bytes_wanted`] more bytes at most.
    NeedMore,
    /// A complete request; the decoder is ready for the next one.
    Request(Request<F>),
}

/// Incremental server-side request decoder.
///
/// Read at most [`bytes_wanted`](Self::bytes_wanted) bytes from the socket
/// (with any descriptors), [`feed`](Self::feed) them, repeat. Asking only
/// for what the current stage needs keeps a read from ever taking bytes or
/// descriptors that belong to the next request.
#[derive(Debug)]
pub struct RequestDecoder<F> {
    state: State<F>,
}

#[derive(Debug)]
enum State<F> {
    Cdb {
        cdb: [u8; CDB_SIZE],
        filled: usize,
        fd: Option<F>,
    },
    ParameterList {
        cdb: [u8; CDB_SIZE],
        fd: F,
        data: Vec<u8>,
        length: usize,
    },
    Failed,
}

impl<F> State<F> {
    fn fresh() -> Self {
        State::Cdb {
            cdb: [0; CDB_SIZE],
            filled: 0,
            fd: None,
        }
    }
}

impl<F> Default for RequestDecoder<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F> RequestDecoder<F> {
    /// A decoder waiting for the first CDB byte.
    pub fn new() -> Self {
        Self {
            state: State::fresh(),
        }
    }

    /// How many bytes the current stage still needs: the rest of the CDB,
    /// or the rest of the parameter list (0 after a violation).
    pub fn bytes_wanted(&self) -> usize {
        match &self.state {
            State::Cdb { filled, .. } => CDB_SIZE.saturating_sub(*filled),
            State::ParameterList { data, length, .. } => length.saturating_sub(data.len()),
            State::Failed => 0,
        }
    }

    /// True between requests: nothing of a request has been received, so
    /// the peer may close the stream here without a violation.
    pub fn is_idle(&self) -> bool {
        matches!(
            self.state,
            State::Cdb {
                filled: 0,
                fd: None,
                ..
            }
        )
    }

    /// Feeds bytes read from the peer and the descriptors received with
    /// them. The decoder takes ownership of the descriptors: on a violation
    /// every one it holds is dropped (closed).
    ///
    /// `bytes` must not be longer than [`bytes_wanted`](Self::bytes_wanted);
    /// more is reported as [`Violation::Overfed`].
    pub fn feed(
        &mut self,
        bytes: &[u8],
        fds: impl IntoIterator<Item = F>,
    ) -> Result<Decoded<F>, Violation> {
        let result = self.step(bytes, fds.into_iter());
        if result.is_err() {
            // Drops (closes) whatever descriptor a partial request held.
            self.state = State::Failed;
        }
        result
    }

    /// Reports whether the peer closing the stream now is a violation
    /// (it is, in the middle of a request).
    pub fn end_of_stream(&self) -> Result<(), Violation> {
        match &self.state {
            State::Cdb {
                filled: 0,
                fd: None,
                ..
            } => Ok(()),
            State::Cdb { filled, .. } => Err(Violation::Truncated {
                stage: "CDB",
                received: *filled,
                expected: CDB_SIZE,
            }),
            State::ParameterList { data, length, .. } => Err(Violation::Truncated {
                stage: "parameter list",
                received: data.len(),
                expected: *length,
            }),
            State::Failed => Err(Violation::AlreadyFailed),
        }
    }

    fn step(
        &mut self,
        bytes: &[u8],
        mut fds: impl Iterator<Item = F>,
    ) -> Result<Decoded<F>, Violation> {
        let wanted = self.bytes_wanted();
        if matches!(self.state, State::Failed) {
            return Err(Violation::AlreadyFailed);
        }
        if bytes.len() > wanted {
            return Err(Violation::Overfed {
                wanted,
                given: bytes.len(),
            });
        }
        match &mut self.state {
            State::Cdb { cdb, filled, fd } => {
                for received in fds.by_ref() {
                    if fd.is_some() {
                        // The one held, this one, and any still queued.
                        let count = 2usize.saturating_add(fds.count());
                        return Err(Violation::ExtraDescriptors { count });
                    }
                    *fd = Some(received);
                }
                let end = filled.saturating_add(bytes.len());
                if let Some(slot) = cdb.get_mut(*filled..end) {
                    slot.copy_from_slice(bytes);
                }
                *filled = end;
                if *filled < CDB_SIZE {
                    return Ok(Decoded::NeedMore);
                }
            }
            State::ParameterList { data, .. } => {
                let count = fds.count();
                if count > 0 {
                    return Err(Violation::DescriptorWithParameterList { count });
                }
                data.extend_from_slice(bytes);
                if self.bytes_wanted() > 0 {
                    return Ok(Decoded::NeedMore);
                }
            }
            State::Failed => return Err(Violation::AlreadyFailed),
        }
        self.finish_stage()
    }

    /// Called when the current stage has all its bytes.
    fn finish_stage(&mut self) -> Result<Decoded<F>, Violation> {
        match std::mem::replace(&mut self.state, State::fresh()) {
            State::Cdb { cdb, fd, .. } => {
                let fd = fd.ok_or(Violation::MissingDescriptor)?;
                let opcode = cdb[0];
                if !is_pr_opcode(opcode) {
                    return Err(Violation::UnknownOpcode { opcode });
                }
                let length = transfer_length(&cdb);
                if !transfer_allowed(length) {
                    return Err(Violation::TransferTooLong { length });
                }
                if opcode == PERSISTENT_RESERVE_OUT && length > 0 {
                    let length = usize::from(length);
                    self.state = State::ParameterList {
                        cdb,
                        fd,
                        data: Vec::with_capacity(length),
                        length,
                    };
                    return Ok(Decoded::NeedMore);
                }
                Ok(Decoded::Request(Request {
                    cdb,
                    fd,
                    data_out: Vec::new(),
                }))
            }
            State::ParameterList { cdb, fd, data, .. } => Ok(Decoded::Request(Request {
                cdb,
                fd,
                data_out: data,
            })),
            State::Failed => Err(Violation::AlreadyFailed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// A stand-in descriptor whose drop is observable through the count.
    type Fd = Rc<()>;

    fn pr_in(alloc: u16) -> [u8; CDB_SIZE] {
        let mut cdb = [0u8; CDB_SIZE];
        cdb[0] = 0x5E;
        cdb[7..9].copy_from_slice(&alloc.to_be_bytes());
        cdb
    }

    fn pr_out(len: u16) -> [u8; CDB_SIZE] {
        let mut cdb = [0u8; CDB_SIZE];
        cdb[0] = 0x5F;
        cdb[1] = 0x06;
        cdb[7..9].copy_from_slice(&len.to_be_bytes());
        cdb
    }

    fn expect_request(decoded: Result<Decoded<Fd>, Violation>) -> Request<Fd> {
        match decoded {
            Ok(Decoded::Request(request)) => request,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn pr_in_in_one_piece() {
        let fd = Rc::new(());
        let mut dec = RequestDecoder::new();
        assert!(dec.is_idle());
        assert_eq!(dec.bytes_wanted(), 16);
        let req = expect_request(dec.feed(&pr_in(8192), [fd.clone()]));
        assert_eq!(req.cdb, pr_in(8192));
        assert_eq!(req.direction(), Direction::In);
        assert_eq!(req.transfer_length(), 8192);
        assert!(req.data_out.is_empty());
        assert_eq!(req.cdb_check(), Ok(()));
        assert!(Rc::ptr_eq(&req.fd, &fd));
        assert!(dec.is_idle());
        assert_eq!(dec.bytes_wanted(), 16);
        assert_eq!(dec.end_of_stream(), Ok(()));
    }

    #[test]
    fn cdb_in_pieces_with_descriptor_on_a_later_piece() {
        let cdb = pr_in(16);
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&cdb[..3], []), Ok(Decoded::NeedMore));
        assert!(!dec.is_idle());
        assert_eq!(dec.bytes_wanted(), 13);
        assert_eq!(dec.feed(&cdb[3..10], [Rc::new(())]), Ok(Decoded::NeedMore));
        assert_eq!(dec.bytes_wanted(), 6);
        let req = expect_request(dec.feed(&cdb[10..], []));
        assert_eq!(req.cdb, cdb);
    }

    #[test]
    fn pr_out_reads_exactly_the_parameter_list() {
        let cdb = pr_out(24);
        let list: Vec<u8> = (0..24).collect();
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&cdb, [Rc::new(())]), Ok(Decoded::NeedMore));
        assert_eq!(dec.bytes_wanted(), 24);
        assert_eq!(dec.feed(&list[..10], []), Ok(Decoded::NeedMore));
        assert_eq!(dec.bytes_wanted(), 14);
        let req = expect_request(dec.feed(&list[10..], []));
        assert_eq!(req.direction(), Direction::Out);
        assert_eq!(req.transfer_length(), 24);
        assert_eq!(req.data_out, list);
        assert_eq!(dec.bytes_wanted(), 16);
    }

    #[test]
    fn pr_out_without_parameter_list_completes_with_the_cdb() {
        let mut dec = RequestDecoder::new();
        let req = expect_request(dec.feed(&pr_out(0), [Rc::new(())]));
        assert_eq!(req.direction(), Direction::Out);
        assert!(req.data_out.is_empty());
    }

    #[test]
    fn two_requests_back_to_back() {
        let mut dec = RequestDecoder::new();
        let first = expect_request(dec.feed(&pr_in(8), [Rc::new(())]));
        assert_eq!(dec.feed(&pr_out(2), [Rc::new(())]), Ok(Decoded::NeedMore));
        let second = expect_request(dec.feed(&[7, 9], []));
        assert_eq!(first.direction(), Direction::In);
        assert_eq!(second.data_out, [7, 9]);
    }

    #[test]
    fn missing_descriptor_is_a_violation() {
        let mut dec = RequestDecoder::<Fd>::new();
        assert_eq!(dec.feed(&pr_in(8), []), Err(Violation::MissingDescriptor));
        assert_eq!(dec.bytes_wanted(), 0);
        assert_eq!(dec.feed(&[], []), Err(Violation::AlreadyFailed));
        assert_eq!(dec.end_of_stream(), Err(Violation::AlreadyFailed));
    }

    #[test]
    fn second_descriptor_in_the_same_piece_closes_both() {
        let fd = Rc::new(());
        let mut dec = RequestDecoder::new();
        let err = dec.feed(&pr_in(8), [fd.clone(), fd.clone()]).unwrap_err();
        assert_eq!(err, Violation::ExtraDescriptors { count: 2 });
        assert_eq!(Rc::strong_count(&fd), 1, "all descriptors closed");
    }

    #[test]
    fn second_descriptor_in_a_later_piece_closes_all() {
        let fd = Rc::new(());
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&[0x5E], [fd.clone()]), Ok(Decoded::NeedMore));
        assert_eq!(Rc::strong_count(&fd), 2, "decoder holds the first");
        let err = dec
            .feed(&[0; 2], [fd.clone(), fd.clone(), fd.clone()])
            .unwrap_err();
        assert_eq!(err, Violation::ExtraDescriptors { count: 4 });
        assert_eq!(Rc::strong_count(&fd), 1, "all descriptors closed");
    }

    #[test]
    fn unknown_opcode_closes_the_descriptor() {
        let fd = Rc::new(());
        let mut cdb = pr_in(8);
        cdb[0] = 0x12;
        let mut dec = RequestDecoder::new();
        let err = dec.feed(&cdb, [fd.clone()]).unwrap_err();
        assert_eq!(err, Violation::UnknownOpcode { opcode: 0x12 });
        assert_eq!(Rc::strong_count(&fd), 1);
    }

    #[test]
    fn transfer_length_limit_is_inclusive() {
        let mut dec = RequestDecoder::new();
        assert!(matches!(
            dec.feed(&pr_out(8192), [Rc::new(())]),
            Ok(Decoded::NeedMore)
        ));
        assert_eq!(dec.bytes_wanted(), 8192);
        let mut dec = RequestDecoder::new();
        assert_eq!(
            dec.feed(&pr_in(8193), [Rc::new(())]),
            Err(Violation::TransferTooLong { length: 8193 })
        );
        let mut dec = RequestDecoder::new();
        assert_eq!(
            dec.feed(&pr_out(u16::MAX), [Rc::new(())]),
            Err(Violation::TransferTooLong { length: u16::MAX })
        );
    }

    #[test]
    fn descriptor_with_the_parameter_list_closes_all() {
        let fd = Rc::new(());
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&pr_out(4), [fd.clone()]), Ok(Decoded::NeedMore));
        let err = dec.feed(&[1, 2], [fd.clone()]).unwrap_err();
        assert_eq!(err, Violation::DescriptorWithParameterList { count: 1 });
        assert_eq!(
            Rc::strong_count(&fd),
            1,
            "request's and extra descriptor closed"
        );
    }

    #[test]
    fn overfeeding_is_refused_without_reading_into_the_next_request() {
        let mut dec = RequestDecoder::<Fd>::new();
        assert_eq!(
            dec.feed(&[0x5E; 17], []),
            Err(Violation::Overfed {
                wanted: 16,
                given: 17
            })
        );
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&pr_out(2), [Rc::new(())]), Ok(Decoded::NeedMore));
        assert_eq!(
            dec.feed(&[0; 3], []),
            Err(Violation::Overfed {
                wanted: 2,
                given: 3
            })
        );
    }

    #[test]
    fn end_of_stream_mid_request_is_truncation() {
        let mut dec = RequestDecoder::new();
        dec.feed(&[0x5E; 5], [Rc::new(())]).unwrap();
        assert_eq!(
            dec.end_of_stream(),
            Err(Violation::Truncated {
                stage: "CDB",
                received: 5,
                expected: 16
            })
        );
        let mut dec = RequestDecoder::new();
        dec.feed(&pr_out(10), [Rc::new(())]).unwrap();
        dec.feed(&[0; 3], []).unwrap();
        assert_eq!(
            dec.end_of_stream(),
            Err(Violation::Truncated {
                stage: "parameter list",
                received: 3,
                expected: 10
            })
        );
    }

    #[test]
    fn descriptor_alone_makes_the_decoder_busy() {
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&[], [Rc::new(())]), Ok(Decoded::NeedMore));
        assert!(!dec.is_idle());
        assert!(dec.end_of_stream().is_err());
    }

    #[test]
    fn cdb_check_flags_high_parameter_list_bytes_on_pr_out_only() {
        let mut out = pr_out(0);
        out[5] = 0x01;
        out[6] = 0x02;
        let mut dec = RequestDecoder::new();
        let req = expect_request(dec.feed(&out, [Rc::new(())]));
        let fault = req.cdb_check().unwrap_err();
        assert_eq!(
            fault,
            CdbFault::ParameterListLengthHighBytes { high: 0x0102 }
        );
        assert_eq!(fault.sense_code(), (0x05, 0x24, 0x00));
        assert_eq!(
            fault.to_string(),
            "PR OUT parameter list length has non-zero high bytes 0x0102 in cdb[5..7]"
        );

        let mut inn = pr_in(8);
        inn[5] = 0xFF;
        inn[6] = 0xFF;
        let req = expect_request(dec.feed(&inn, [Rc::new(())]));
        assert_eq!(req.cdb_check(), Ok(()));
    }

    #[test]
    fn pr_out_with_high_bytes_still_reads_the_carried_list() {
        let mut out = pr_out(3);
        out[6] = 0x01;
        let mut dec = RequestDecoder::new();
        assert_eq!(dec.feed(&out, [Rc::new(())]), Ok(Decoded::NeedMore));
        assert_eq!(dec.bytes_wanted(), 3, "stream stays in step");
        let req = expect_request(dec.feed(&[1, 2, 3], []));
        assert!(req.cdb_check().is_err());
    }
}
