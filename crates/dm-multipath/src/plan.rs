//! Which paths a command goes to, decided from its CDB and parameter list alone
//! (what [`crate::fence`] refines with the device's state: RELEASE to the holder's
//! nexus, repair and rollback of registrations, failover only for undelivered
//! commands).
//!
//! | command | paths | why |
//! |---|---|---|
//! | REGISTER, REGISTER AND IGNORE EXISTING KEY | every usable path, in parallel | a registration belongs to one I_T nexus: every path must carry the key, or I/O through an unregistered path gets RESERVATION CONFLICT under a registrants-only reservation |
//! | PREEMPT, PREEMPT AND ABORT of the map's own key | one path, then the others registered again | the device removes every registration with that key but the issuing nexus's, i.e. the map's other paths too |
//! | RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT, REGISTER AND MOVE, REPLACE LOST RESERVATION | one path, the next only when it was not delivered | the reservation is held through one nexus; the others act as registrants. A second attempt after a device's answer would act twice |
//! | PR IN (all four) | one path, the next on a transport failure | every path sees the same logical unit |

use scsi::cdb::opcode;
use scsi::pr::{PrOutAction, PrOutCdb, PrOutParams, RegisterMoveParams};

/// A key the host registered through the map, re-registered on returning paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedKey {
    /// The key.
    pub key: u64,
    /// The APTPL bit of the registration that set it (a re-registration must not
    /// change the logical unit's persistence setting).
    pub aptpl: bool,
}

/// The paths a command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Every usable path, in parallel.
    EveryPath(Registration),
    /// One path, failing over on transport failures; with `reregister`, the map's other
    /// paths are registered with that key afterwards (PREEMPT of the map's own key).
    OnePath { reregister: Option<RememberedKey> },
}

/// A REGISTER or REGISTER AND IGNORE EXISTING KEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// REGISTER AND IGNORE EXISTING KEY rather than REGISTER.
    pub ignore_existing: bool,
    /// RESERVATION KEY field.
    pub reservation_key: u64,
    /// SERVICE ACTION RESERVATION KEY field: the new key (0 unregisters).
    pub service_action_key: u64,
    /// APTPL bit.
    pub aptpl: bool,
}

/// What the map's remembered key becomes after a command the device accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// Unchanged.
    Keep,
    /// The host's key is now this one.
    Remember(RememberedKey),
    /// The host is no longer registered (unregistered, cleared, moved away).
    Forget,
}

/// Routes a PR IN or PR OUT command. A command the device will refuse anyway (an
/// unknown service action, a short parameter list) goes to one path, which answers it.
pub fn route(cdb: &[u8], data_out: &[u8]) -> Route {
    let one_path = Route::OnePath { reregister: None };
    if cdb.first() != Some(&opcode::PERSISTENT_RESERVE_OUT) {
        return one_path;
    }
    let Ok(out) = PrOutCdb::decode(cdb) else {
        return one_path;
    };
    match out.action {
        PrOutAction::Register | PrOutAction::RegisterAndIgnoreExistingKey => {
            match PrOutParams::decode_header(data_out) {
                Ok(params) if !params.spec_i_pt => Route::EveryPath(Registration {
                    ignore_existing: out.action == PrOutAction::RegisterAndIgnoreExistingKey,
                    reservation_key: params.reservation_key,
                    service_action_key: params.service_action_key,
                    aptpl: params.aptpl,
                }),
                // SPEC_I_PT registers other initiators: sent once, through one path.
                _ => one_path,
            }
        }
        PrOutAction::Preempt | PrOutAction::PreemptAndAbort => {
            match PrOutParams::decode_header(data_out) {
                Ok(params)
                    if params.reservation_key != 0
                        && params.reservation_key == params.service_action_key =>
                {
                    Route::OnePath {
                        reregister: Some(RememberedKey {
                            key: params.reservation_key,
                            aptpl: params.aptpl,
                        }),
                    }
                }
                _ => one_path,
            }
        }
        _ => one_path,
    }
}

/// The remembered key after `cdb` succeeded (GOOD) on the map.
pub fn key_change(cdb: &[u8], data_out: &[u8], remembered: Option<RememberedKey>) -> KeyChange {
    if cdb.first() != Some(&opcode::PERSISTENT_RESERVE_OUT) {
        return KeyChange::Keep;
    }
    let Ok(out) = PrOutCdb::decode(cdb) else {
        return KeyChange::Keep;
    };
    match (route(cdb, data_out), out.action) {
        (Route::EveryPath(registration), _) => {
            if registration.service_action_key == 0 {
                KeyChange::Forget
            } else {
                KeyChange::Remember(RememberedKey {
                    key: registration.service_action_key,
                    aptpl: registration.aptpl,
                })
            }
        }
        (
            Route::OnePath {
                reregister: Some(own),
            },
            _,
        ) => KeyChange::Remember(RememberedKey {
            key: own.key,
            aptpl: remembered
                .filter(|r| r.key == own.key)
                .map_or(own.aptpl, |r| r.aptpl),
        }),
        (_, PrOutAction::Clear) => KeyChange::Forget,
        (_, PrOutAction::RegisterAndMove) => match RegisterMoveParams::decode(data_out) {
            Ok(params) if params.unreg => KeyChange::Forget,
            _ => KeyChange::Keep,
        },
        _ => KeyChange::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scsi::pr::{PrInAction, ReservationType, Scope, TransportId, pr_in_cdb, pr_out_cdb};

    fn out(action: PrOutAction, rk: u64, sak: u64) -> ([u8; 10], Vec<u8>) {
        let params = PrOutParams {
            reservation_key: rk,
            service_action_key: sak,
            ..Default::default()
        }
        .encode()
        .unwrap();
        let rtype = action
            .uses_type()
            .then_some(ReservationType::WriteExclusiveRegistrantsOnly);
        (
            pr_out_cdb(action, Scope::LogicalUnit, rtype, params.len() as u32),
            params,
        )
    }

    #[test]
    fn registrations_go_to_every_path() {
        let (cdb, data) = out(PrOutAction::Register, 0, 0xa1);
        assert_eq!(
            route(&cdb, &data),
            Route::EveryPath(Registration {
                ignore_existing: false,
                reservation_key: 0,
                service_action_key: 0xa1,
                aptpl: false
            })
        );
        let (cdb, data) = out(PrOutAction::RegisterAndIgnoreExistingKey, 0, 0xa2);
        assert!(matches!(
            route(&cdb, &data),
            Route::EveryPath(Registration {
                ignore_existing: true,
                ..
            })
        ));
        assert_eq!(
            key_change(&cdb, &data, None),
            KeyChange::Remember(RememberedKey {
                key: 0xa2,
                aptpl: false
            })
        );
        let (cdb, data) = out(PrOutAction::Register, 0xa2, 0);
        assert_eq!(key_change(&cdb, &data, None), KeyChange::Forget);
    }

    #[test]
    fn spec_i_pt_registration_goes_once() {
        let params = PrOutParams {
            service_action_key: 7,
            spec_i_pt: true,
            transport_ids: vec![TransportId::iscsi("iqn.x")],
            ..Default::default()
        }
        .encode()
        .unwrap();
        let cdb = pr_out_cdb(
            PrOutAction::Register,
            Scope::LogicalUnit,
            None,
            params.len() as u32,
        );
        assert_eq!(route(&cdb, &params), Route::OnePath { reregister: None });
    }

    #[test]
    fn everything_else_goes_to_one_path() {
        for action in [
            PrOutAction::Reserve,
            PrOutAction::Release,
            PrOutAction::Clear,
            PrOutAction::RegisterAndMove,
            PrOutAction::ReplaceLostReservation,
        ] {
            let (cdb, data) = out(action, 0xa1, 0xb2);
            assert_eq!(
                route(&cdb, &data),
                Route::OnePath { reregister: None },
                "{action:?}"
            );
        }
        for action in PrInAction::ALL {
            assert_eq!(
                route(&pr_in_cdb(action, 8192), &[]),
                Route::OnePath { reregister: None }
            );
        }
        // Too short a parameter list: the device refuses it, through one path.
        let (cdb, _) = out(PrOutAction::Register, 0, 1);
        assert_eq!(route(&cdb, &[0; 4]), Route::OnePath { reregister: None });
        assert_eq!(
            route(&[0x12, 0, 0, 0, 36, 0], &[]),
            Route::OnePath { reregister: None }
        );
    }

    #[test]
    fn preempting_the_own_key_reregisters_the_other_paths() {
        for action in [PrOutAction::Preempt, PrOutAction::PreemptAndAbort] {
            let (cdb, data) = out(action, 0xc3, 0xc3);
            assert_eq!(
                route(&cdb, &data),
                Route::OnePath {
                    reregister: Some(RememberedKey {
                        key: 0xc3,
                        aptpl: false
                    })
                }
            );
            let (cdb, data) = out(action, 0xc3, 0xb2);
            assert_eq!(route(&cdb, &data), Route::OnePath { reregister: None });
            assert_eq!(key_change(&cdb, &data, None), KeyChange::Keep);
        }
    }

    #[test]
    fn clear_and_moving_away_forget_the_key() {
        let (cdb, data) = out(PrOutAction::Clear, 0xa1, 0);
        assert_eq!(key_change(&cdb, &data, None), KeyChange::Forget);
        let moved = |unreg| {
            RegisterMoveParams {
                reservation_key: 0xa1,
                service_action_key: 0xb1,
                unreg,
                aptpl: false,
                relative_target_port: 1,
                transport_id: TransportId::Sas {
                    address: 0x5001405000000a02,
                },
            }
            .encode()
            .unwrap()
        };
        for (unreg, change) in [(true, KeyChange::Forget), (false, KeyChange::Keep)] {
            let data = moved(unreg);
            let cdb = pr_out_cdb(
                PrOutAction::RegisterAndMove,
                Scope::LogicalUnit,
                Some(ReservationType::WriteExclusive),
                data.len() as u32,
            );
            assert_eq!(key_change(&cdb, &data, None), change);
        }
        assert_eq!(
            key_change(&pr_in_cdb(PrInAction::ReadKeys, 100), &[], None),
            KeyChange::Keep
        );
    }
}
