//! Typed PERSISTENT RESERVE methods on both clients.

use std::os::fd::BorrowedFd;

use scsi::pr::{
    Decoded, FullStatus, PrInAction, ReadKeys, ReadReservation, RegisterMoveParams,
    ReportCapabilities, ReservationType,
};

use crate::Client;
use crate::command::DataTransfer;
use crate::error::Error;
use crate::typed::{
    PR_IN_ALLOCATION, PrInData, PrOutCommand, RegisterOptions, check_reply, decode_pr_in,
    pr_in_command,
};

impl Client {
    /// Runs a PR IN `action` and returns its raw payload.
    pub fn pr_in_payload(&self, fd: BorrowedFd<'_>, action: PrInAction) -> Result<Vec<u8>, Error> {
        let cdb = pr_in_command(action, PR_IN_ALLOCATION);
        let mut buf = vec![0u8; usize::from(PR_IN_ALLOCATION)];
        let reply = check_reply(self.execute(&cdb, fd, DataTransfer::FromDevice(&mut buf))?)?;
        buf.truncate(reply.data_len);
        Ok(buf)
    }

    /// Runs a PR IN `action` and decodes its payload.
    pub fn pr_in(&self, fd: BorrowedFd<'_>, action: PrInAction) -> Result<PrInData, Error> {
        decode_pr_in(action, &self.pr_in_payload(fd, action)?)
    }

    /// Runs a PR OUT command.
    pub fn pr_out(&self, fd: BorrowedFd<'_>, command: &PrOutCommand) -> Result<(), Error> {
        let (cdb, params) = command.encode()?;
        check_reply(self.execute(&cdb, fd, DataTransfer::ToDevice(&params))?)?;
        Ok(())
    }

    /// READ KEYS: generation and registered keys.
    pub fn read_keys(&self, fd: BorrowedFd<'_>) -> Result<Decoded<ReadKeys>, Error> {
        Ok(ReadKeys::decode(
            &self.pr_in_payload(fd, PrInAction::ReadKeys)?,
        )?)
    }

    /// READ RESERVATION: generation and the reservation, if any.
    pub fn read_reservation(&self, fd: BorrowedFd<'_>) -> Result<Decoded<ReadReservation>, Error> {
        Ok(ReadReservation::decode(
            &self.pr_in_payload(fd, PrInAction::ReadReservation)?,
        )?)
    }

    /// REPORT CAPABILITIES.
    pub fn report_capabilities(
        &self,
        fd: BorrowedFd<'_>,
    ) -> Result<Decoded<ReportCapabilities>, Error> {
        Ok(ReportCapabilities::decode(
            &self.pr_in_payload(fd, PrInAction::ReportCapabilities)?,
        )?)
    }

    /// READ FULL STATUS: every registrant with its port.
    pub fn read_full_status(&self, fd: BorrowedFd<'_>) -> Result<Decoded<FullStatus>, Error> {
        Ok(FullStatus::decode(
            &self.pr_in_payload(fd, PrInAction::ReadFullStatus)?,
        )?)
    }

    /// REGISTER `new_key` in place of `key` (0 if not registered).
    pub fn register(
        &self,
        fd: BorrowedFd<'_>,
        key: u64,
        new_key: u64,
        options: RegisterOptions,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::register(key, new_key, options))
    }

    /// REGISTER AND IGNORE EXISTING KEY.
    pub fn register_and_ignore(
        &self,
        fd: BorrowedFd<'_>,
        new_key: u64,
        options: RegisterOptions,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::register_and_ignore(new_key, options))
    }

    /// RESERVE.
    pub fn reserve(
        &self,
        fd: BorrowedFd<'_>,
        key: u64,
        rtype: ReservationType,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::reserve(key, rtype))
    }

    /// RELEASE.
    pub fn release(
        &self,
        fd: BorrowedFd<'_>,
        key: u64,
        rtype: ReservationType,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::release(key, rtype))
    }

    /// CLEAR.
    pub fn clear(&self, fd: BorrowedFd<'_>, key: u64) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::clear(key))
    }

    /// PREEMPT the registrant holding `victim`.
    pub fn preempt(
        &self,
        fd: BorrowedFd<'_>,
        key: u64,
        victim: u64,
        rtype: ReservationType,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::preempt(key, victim, rtype))
    }

    /// PREEMPT AND ABORT.
    pub fn preempt_and_abort(
        &self,
        fd: BorrowedFd<'_>,
        key: u64,
        victim: u64,
        rtype: ReservationType,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::preempt_and_abort(key, victim, rtype))
    }

    /// REGISTER AND MOVE.
    pub fn register_and_move(
        &self,
        fd: BorrowedFd<'_>,
        params: RegisterMoveParams,
        rtype: ReservationType,
    ) -> Result<(), Error> {
        self.pr_out(fd, &PrOutCommand::register_and_move(params, rtype))
    }
}

#[cfg(feature = "async")]
impl crate::AsyncClient {
    /// Runs a PR IN `action` and returns its raw payload.
    pub async fn pr_in_payload(
        &self,
        fd: BorrowedFd<'_>,
        action: PrInAction,
    ) -> Result<Vec<u8>, Error> {
        let cdb = pr_in_command(action, PR_IN_ALLOCATION);
        let mut buf = vec![0u8; usize::from(PR_IN_ALLOCATION)];
        let reply = self
            .execute(&cdb, fd, DataTransfer::FromDevice(&mut buf))
            .await?;
        let reply = check_reply(reply)?;
        buf.truncate(reply.data_len);
        Ok(buf)
    }

    /// Runs a PR IN `action` and decodes its payload.
    pub async fn pr_in(&self, fd: BorrowedFd<'_>, action: PrInAction) -> Result<PrInData, Error> {
        decode_pr_in(action, &self.pr_in_payload(fd, action).await?)
    }

    /// Runs a PR OUT command (build it with the [`PrOutCommand`] constructors).
    pub async fn pr_out(&self, fd: BorrowedFd<'_>, command: &PrOutCommand) -> Result<(), Error> {
        let (cdb, params) = command.encode()?;
        let reply = self
            .execute(&cdb, fd, DataTransfer::ToDevice(&params))
            .await?;
        check_reply(reply)?;
        Ok(())
    }
}
