//! Property tests: every decoder takes arbitrary bytes without panicking (errors
//! are typed values), every encoder round-trips through its decoder, and PR IN
//! decoders accept any truncation of valid data.

use proptest::prelude::*;
use scsi::cdb;
use scsi::pr::{
    FullStatus, FullStatusDescriptor, PrInAction, PrInCdb, PrOutAction, PrOutCdb, PrOutParams,
    ReadKeys, ReadReservation, RegisterMoveParams, ReportCapabilities, Reservation, ScopeType,
    TransportId, TypeMask, protocol_id,
};
use scsi::sense::{self, Sense, SenseFormat};
use scsi::sgio::{SgIoOutcome, map_sg_io_outcome};
use scsi::status::Status;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Byte 0 of a TransportID this crate keeps raw: an undecoded protocol with any
/// format, or FC/SRP/SAS with a format other than 0. (iSCSI is variable length and
/// is covered by the `Iscsi` variant.)
fn raw_transport_id() -> impl Strategy<Value = TransportId> {
    let first = prop_oneof![
        (
            prop::sample::select(vec![
                0x1u8, 0x2, 0x3, 0x7, 0x8, 0x9, 0xA, 0xB, 0xC, 0xD, 0xE, 0xF
            ]),
            0u8..4,
            0u8..4
        )
            .prop_map(|(protocol, format, reserved)| format << 6 | reserved << 4 | protocol),
        (
            prop::sample::select(vec![
                protocol_id::FIBRE_CHANNEL,
                protocol_id::SRP,
                protocol_id::SAS
            ]),
            1u8..4
        )
            .prop_map(|(protocol, format)| format << 6 | protocol),
    ];
    (first, proptest::collection::vec(any::<u8>(), 23)).prop_map(|(first, rest)| {
        let mut bytes = vec![first];
        bytes.extend(rest);
        TransportId::Other { bytes }
    })
}

fn transport_id() -> impl Strategy<Value = TransportId> {
    prop_oneof![
        any::<u64>().prop_map(|n_port_name| TransportId::FibreChannel { n_port_name }),
        any::<u64>().prop_map(|address| TransportId::Sas { address }),
        any::<[u8; 16]>().prop_map(|id| TransportId::Srp { id }),
        ("[^\\x00]{0,60}", proptest::option::of("[0-9a-fA-F]{0,12}"))
            .prop_map(|(name, isid)| TransportId::Iscsi { name, isid }),
        raw_transport_id(),
    ]
}

fn pr_out_params() -> impl Strategy<Value = PrOutParams> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(transport_id(), 0..4),
    )
        .prop_map(
            |(reservation_key, service_action_key, spec_i_pt, all_tg_pt, aptpl, ids)| PrOutParams {
                reservation_key,
                service_action_key,
                spec_i_pt,
                all_tg_pt,
                aptpl,
                transport_ids: if spec_i_pt { ids } else { Vec::new() },
            },
        )
}

fn register_move_params() -> impl Strategy<Value = RegisterMoveParams> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        transport_id(),
    )
        .prop_map(
            |(
                reservation_key,
                service_action_key,
                unreg,
                aptpl,
                relative_target_port,
                transport_id,
            )| {
                RegisterMoveParams {
                    reservation_key,
                    service_action_key,
                    unreg,
                    aptpl,
                    relative_target_port,
                    transport_id,
                }
            },
        )
}

fn type_mask() -> impl Strategy<Value = TypeMask> {
    any::<[u8; 2]>().prop_map(TypeMask::from_bytes)
}

fn report_capabilities() -> impl Strategy<Value = ReportCapabilities> {
    (any::<[bool; 7]>(), 0u8..8, type_mask()).prop_map(|(b, allow_commands, type_mask)| {
        ReportCapabilities {
            rlr_c: b[0],
            crh: b[1],
            sip_c: b[2],
            atp_c: b[3],
            ptpl_c: b[4],
            tmv: b[5],
            allow_commands,
            ptpl_a: b[6],
            type_mask,
        }
    })
}

fn full_status() -> impl Strategy<Value = FullStatus> {
    let descriptor = (
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
        any::<u16>(),
        transport_id(),
    )
        .prop_map(
            |(
                reservation_key,
                all_tg_pt,
                r_holder,
                scope_type,
                relative_target_port,
                transport_id,
            )| {
                FullStatusDescriptor {
                    reservation_key,
                    all_tg_pt,
                    r_holder,
                    scope_type: ScopeType(scope_type),
                    relative_target_port,
                    transport_id,
                }
            },
        );
    (any::<u32>(), proptest::collection::vec(descriptor, 0..5)).prop_map(
        |(generation, descriptors)| FullStatus {
            generation,
            descriptors,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic_on_random_bytes(buf in bytes(400)) {
        let _ = Sense::parse(&buf);
        let _ = sense::format_of(&buf);
        let _ = sense::is_deferred(&buf);
        let mut out = [0u8; 20];
        for to in [SenseFormat::Fixed, SenseFormat::Descriptor] {
            let written = sense::convert(&buf, to, &mut out);
            prop_assert!(written <= out.len().min(buf.len().max(18)));
            prop_assert_eq!(sense::format_of(&out[..written]), (written > 0).then_some(to));
        }
        let _ = cdb::cdb_length_of(&buf);
        let _ = cdb::transfer_length(&buf);
        let _ = cdb::lba(&buf);
        let _ = cdb::pr_out_parameter_list_length(&buf);
        let _ = PrInCdb::decode(&buf);
        let _ = PrOutCdb::decode(&buf);
        if let Ok((_, used)) = TransportId::decode(&buf) {
            prop_assert!(used <= buf.len());
        }
        let _ = TransportId::decode_exact(&buf);
        let _ = PrOutParams::decode(&buf);
        let _ = RegisterMoveParams::decode(&buf);
        for decoded in [
            ReadKeys::decode(&buf).map(|d| (d.advertised_len, d.truncated)),
            ReadReservation::decode(&buf).map(|d| (d.advertised_len, d.truncated)),
            ReportCapabilities::decode(&buf).map(|d| (d.advertised_len, d.truncated)),
            FullStatus::decode(&buf).map(|d| (d.advertised_len, d.truncated)),
        ] {
            if let Ok((advertised, truncated)) = decoded {
                prop_assert_eq!(truncated, (buf.len() as u64) < advertised);
            } else if let Err(e) = decoded {
                prop_assert!(!e.to_string().is_empty());
                let _ = e.sense();
            }
        }
    }

    #[test]
    fn pr_shaped_random_bytes_never_panic(
        sa in any::<u8>(),
        header in any::<[u8; 8]>(),
        body in bytes(200),
    ) {
        // Random data behind a plausible PR IN header or a 0x5E/0x5F opcode reaches
        // deeper code paths than fully random bytes.
        let mut cdb = vec![0x5E, sa];
        cdb.extend_from_slice(&body);
        let _ = PrInCdb::decode(&cdb);
        cdb[0] = 0x5F;
        let _ = PrOutCdb::decode(&cdb);
        let mut payload = header.to_vec();
        payload[4] = 0;
        payload[5] = 0;
        payload.extend_from_slice(&body);
        let _ = ReadKeys::decode(&payload);
        let _ = ReadReservation::decode(&payload);
        let _ = FullStatus::decode(&payload);
        let mut id = vec![sa & 0xCF, 0];
        id.extend_from_slice(&body);
        let _ = TransportId::decode(&id);
    }

    #[test]
    fn sgio_mapping_never_reports_good_for_host_trouble(
        errno in proptest::option::of(any::<i32>()),
        host_status in any::<u16>(),
        driver_status in any::<u16>(),
        scsi_status in any::<u8>(),
    ) {
        let outcome = SgIoOutcome { errno, host_status, driver_status, scsi_status };
        let result = map_sg_io_outcome(&outcome);
        if host_status != 0 || errno.is_some_and(|e| e != 0) {
            prop_assert_ne!(result.status, Status::GOOD);
        }
        if result.synthesized_sense.is_some() {
            prop_assert_eq!(result.status, Status::CHECK_CONDITION);
        }
        if result.status == Status::GOOD {
            prop_assert_eq!(scsi_status, 0);
        }
    }

    #[test]
    fn sense_round_trips_through_both_formats(key in 0u8..16, asc in any::<u8>(), ascq in any::<u8>()) {
        let sense = Sense::new(key, asc, ascq);
        prop_assert_eq!(Sense::parse(&sense.fixed_bytes()), sense);
        prop_assert_eq!(Sense::parse(&sense.descriptor_bytes()), sense);
        let mut out = [0u8; 18];
        sense::convert(&sense.descriptor_bytes(), SenseFormat::Fixed, &mut out);
        prop_assert_eq!(out, sense.fixed_bytes());
        prop_assert!(!sense.to_string().is_empty());
    }

    #[test]
    fn pr_cdbs_round_trip(sa in 0u8..9, scope_type in any::<u8>(), len in any::<u32>()) {
        let in_action = PrInAction::from_code(sa % 4).unwrap();
        let pr_in = PrInCdb { action: in_action, allocation_length: len as u16 };
        prop_assert_eq!(PrInCdb::decode(&pr_in.encode()), Ok(pr_in));
        let out_action = PrOutAction::from_code(sa).unwrap();
        let pr_out = PrOutCdb { action: out_action, scope_type: ScopeType(scope_type), parameter_list_length: len };
        prop_assert_eq!(PrOutCdb::decode(&pr_out.encode()), Ok(pr_out));
        prop_assert_eq!(cdb::pr_out_parameter_list_length(&pr_out.encode()), Some(len));
    }

    #[test]
    fn transport_ids_round_trip(id in transport_id()) {
        let bytes = id.to_bytes().unwrap();
        prop_assert_eq!(TransportId::decode(&bytes), Ok((id.clone(), bytes.len())));
        prop_assert_eq!(TransportId::decode_exact(&bytes), Ok(id.clone()));
        if matches!(id, TransportId::Iscsi { .. }) {
            prop_assert_eq!(bytes.len() % 4, 0);
        } else {
            prop_assert_eq!(bytes.len(), 24);
        }
    }

    #[test]
    fn pr_out_params_round_trip(params in pr_out_params()) {
        let bytes = params.encode().unwrap();
        prop_assert_eq!(PrOutParams::decode(&bytes), Ok(params));
    }

    #[test]
    fn register_move_params_round_trip(params in register_move_params()) {
        let bytes = params.encode().unwrap();
        prop_assert_eq!(RegisterMoveParams::decode(&bytes), Ok(params));
    }

    #[test]
    fn read_keys_round_trip_and_any_truncation_decodes(
        generation in any::<u32>(),
        keys in proptest::collection::vec(any::<u64>(), 0..20),
        cut in any::<prop::sample::Index>(),
    ) {
        let value = ReadKeys { generation, keys };
        let bytes = value.encode().unwrap();
        let full = ReadKeys::decode(&bytes).unwrap();
        prop_assert!(!full.truncated);
        prop_assert_eq!(&full.value, &value);
        let at = 8 + cut.index(bytes.len() - 7);
        let part = ReadKeys::decode(&bytes[..at]).unwrap();
        prop_assert_eq!(part.truncated, at < bytes.len());
        prop_assert_eq!(part.advertised_len, bytes.len() as u64);
        prop_assert!(value.keys.starts_with(&part.value.keys));
    }

    #[test]
    fn read_reservation_round_trips(
        generation in any::<u32>(),
        reservation in proptest::option::of((any::<u64>(), any::<u8>())),
        cut in any::<prop::sample::Index>(),
    ) {
        let value = ReadReservation {
            generation,
            reservation: reservation.map(|(key, st)| Reservation { key, scope_type: ScopeType(st) }),
        };
        let bytes = value.encode();
        prop_assert_eq!(ReadReservation::decode(&bytes).unwrap().value, value);
        let at = 8 + cut.index(bytes.len() - 7);
        let part = ReadReservation::decode(&bytes[..at]).unwrap();
        prop_assert_eq!(part.truncated, at < bytes.len());
        prop_assert!(part.value.reservation.is_none() || part.value.reservation == value.reservation);
    }

    #[test]
    fn report_capabilities_round_trip(caps in report_capabilities(), cut in 2usize..9) {
        let bytes = caps.encode();
        let decoded = ReportCapabilities::decode(&bytes).unwrap();
        prop_assert_eq!(decoded.value, caps);
        prop_assert!(!decoded.truncated);
        prop_assert_eq!(ReportCapabilities::decode(&bytes[..cut]).unwrap().truncated, cut < 8);
    }

    #[test]
    fn full_status_round_trips_and_any_truncation_decodes(
        value in full_status(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = value.encode().unwrap();
        let full = FullStatus::decode(&bytes).unwrap();
        prop_assert!(!full.truncated);
        prop_assert_eq!(&full.value, &value);
        let at = 8 + cut.index(bytes.len() - 7);
        let part = FullStatus::decode(&bytes[..at]).unwrap();
        prop_assert_eq!(part.truncated, at < bytes.len());
        prop_assert_eq!(part.value.generation, value.generation);
        prop_assert!(value.descriptors.starts_with(&part.value.descriptors));
    }
}
