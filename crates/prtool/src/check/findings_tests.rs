//! Every rule of the findings engine, on facts built by hand: a healthy map and
//! the ways it can go wrong, the helper's socket and process, image files.

use pr_manager::{
    FullStatus, FullStatusDescriptor, ReadKeys, ReadReservation, ReportCapabilities,
    ReservationType,
};
use scsi::pr::{Scope, ScopeType, TypeMask};

use super::*;
use crate::check::facts::*;

const A1: &str = "5001405000000a01";
const A3: &str = "5001405000000a03";
const B2: &str = "5001405000000a02";

fn sas(hex: &str) -> TransportId {
    TransportId::Sas {
        address: u64::from_str_radix(hex, 16).unwrap(),
    }
}

fn reg(k: u64, id: &str) -> FullStatusDescriptor {
    FullStatusDescriptor {
        reservation_key: k,
        all_tg_pt: false,
        r_holder: false,
        scope_type: ScopeType(0),
        relative_target_port: 1,
        transport_id: sas(id),
    }
}

fn holder(k: u64, id: &str, t: ReservationType) -> FullStatusDescriptor {
    FullStatusDescriptor {
        r_holder: true,
        scope_type: ScopeType::new(Scope::LogicalUnit, Some(t)),
        ..reg(k, id)
    }
}

fn full(descriptors: Vec<FullStatusDescriptor>) -> FullStatus {
    FullStatus {
        generation: 7,
        descriptors,
    }
}

fn caps() -> ReportCapabilities {
    ReportCapabilities {
        ptpl_c: true,
        tmv: true,
        sip_c: true,
        atp_c: true,
        type_mask: TypeMask::ALL,
        ..ReportCapabilities::default()
    }
}

fn path(node: &str, devnum: &str, id: &str, state: &FullStatus) -> PathFacts {
    PathFacts {
        node: node.into(),
        devnum: devnum.into(),
        usable: Some(true),
        fail_count: 0,
        initiator: Some(sas(id)),
        full_status: Some(PrAnswer::Good(state.clone())),
    }
}

fn our_helper() -> HelperProcess {
    HelperProcess {
        pid: 42,
        found_by: "listening on the socket".into(),
        program: Program::PrHelper,
        version: Some("pr-helper 0.1.0".into()),
        cmdline_known: true,
        multipath: true,
        landlock: true,
        ..HelperProcess::default()
    }
}

/// Host A's map (sda + sdc) with `state` on the LUN, our helper serving it,
/// everything readable, a guest holding the map open.
fn map_with(state: FullStatus) -> Facts {
    Facts {
        device: DeviceFacts {
            path: "/dev/dm-0".into(),
            kind: DeviceKind::Multipath {
                map: "mpatha".into(),
            },
            paths: vec![
                path("/dev/sda", "8:0", A1, &state),
                path("/dev/sdc", "8:32", A3, &state),
            ],
            pr: Some(PrState {
                source: Source::Direct("/dev/sda".into()),
                capabilities: PrAnswer::Good(caps()),
                full_status: PrAnswer::Good(state.clone()),
            }),
            openers: Some(vec![Opener {
                pid: 7,
                command: "qemu-system-x86".into(),
            }]),
            queue_timeout: Some(30),
            ..DeviceFacts::default()
        },
        helper: HelperFacts {
            socket: "/run/pr.sock".into(),
            socket_file: SocketFile::Socket(FileMode {
                mode: 0o660,
                ..FileMode::default()
            }),
            access: vec![Access {
                who: "root (uid 0)".into(),
                named: false,
                verdict: Ok(()),
                fix: None,
            }],
            handshake: Some(Ok(())),
            read_keys: Some(PrAnswer::Good(
                state
                    .descriptors
                    .iter()
                    .map(|d| d.reservation_key)
                    .collect(),
            )),
            process: Ok(our_helper()),
            ..HelperFacts::default()
        },
        caller: CallerFacts {
            uid: 0,
            cap_sys_rawio: true,
            cap_sys_admin: true,
        },
        ..Facts::default()
    }
}

fn healthy() -> Facts {
    map_with(full(vec![
        holder(0xa1, A1, ReservationType::WriteExclusiveRegistrantsOnly),
        reg(0xa1, A3),
    ]))
}

fn codes(d: &Diagnosis) -> Vec<&'static str> {
    d.findings.iter().map(|f| f.code).collect()
}

fn only(d: &Diagnosis, code: &str) -> Finding {
    let found = d.with_code(code);
    assert_eq!(found.len(), 1, "{code} in {:#?}", d.findings);
    found[0].clone()
}

fn absent(d: &Diagnosis, code: &str) {
    assert!(d.with_code(code).is_empty(), "{code} in {:#?}", d.findings);
}

#[test]
fn a_healthy_map_is_ready() {
    let d = diagnose(&healthy());
    assert_eq!(d.verdict, Verdict::Ready, "{:#?}", d.findings);
    assert!(d.findings.iter().all(|f| f.severity <= Severity::Note));
    let consistent = only(&d, "paths-consistent");
    assert!(consistent.summary.contains("(2) carries key 0xa1"));
    for code in [
        "multipath-map",
        "capabilities",
        "registrations",
        "host-registered",
        "socket",
        "socket-access",
        "handshake",
        "helper-read-keys",
        "helper-process",
        "sgio-timeout",
        "open-by",
    ] {
        only(&d, code);
    }
    absent(&d, "foreign-registration");
}

#[test]
fn an_unregistered_map_is_ready() {
    let d = diagnose(&map_with(full(vec![])));
    assert_eq!(d.verdict, Verdict::Ready);
    only(&d, "host-unregistered");
    assert!(
        only(&d, "paths-consistent")
            .summary
            .contains("no usable path")
    );
}

#[test]
fn a_path_missing_the_key_is_degraded_and_the_fix_is_named() {
    let mut facts = map_with(full(vec![holder(
        0xa1,
        A1,
        ReservationType::WriteExclusiveRegistrantsOnly,
    )]));
    facts.helper.read_keys = Some(PrAnswer::Good(vec![0xa1]));
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded);
    let f = only(&d, "path-missing-key");
    assert_eq!(f.severity, Severity::Degraded);
    assert!(f.summary.contains("/dev/sdc"), "{}", f.summary);
    let fix = f.fix.unwrap();
    assert!(
        fix.contains("prtool --socket /run/pr.sock register --key 0xa1 --sa-key 0xa1 /dev/dm-0"),
        "{fix}"
    );
    assert!(
        fix.contains("prtool --direct register-ignore --sa-key 0xa1 /dev/sdc"),
        "{fix}"
    );
    absent(&d, "paths-consistent");
    // Worst first.
    assert_eq!(d.findings[0].code, "path-missing-key");
}

#[test]
fn without_multipath_support_the_fix_is_on_the_path() {
    let mut facts = map_with(full(vec![reg(0xa1, A1)]));
    if let Ok(p) = &mut facts.helper.process {
        p.multipath = false;
    }
    let d = diagnose(&facts);
    let fix = only(&d, "path-missing-key").fix.unwrap();
    assert!(fix.starts_with("prtool --direct register-ignore"), "{fix}");
    assert_eq!(
        only(&d, "helper-multipath-off").severity,
        Severity::Degraded
    );
}

#[test]
fn a_path_with_an_old_key() {
    let state = full(vec![reg(0xa2, A1), reg(0xa1, A3)]);
    let mut facts = map_with(state);
    // Three paths: two carry 0xa2, so 0xa2 is the current key.
    let third = full(vec![
        reg(0xa2, A1),
        reg(0xa1, A3),
        reg(0xa2, "5001405000000a05"),
    ]);
    facts.device.paths = vec![
        path("/dev/sda", "8:0", A1, &third),
        path("/dev/sdc", "8:32", A3, &third),
        path("/dev/sde", "8:64", "5001405000000a05", &third),
    ];
    facts.helper.read_keys = Some(PrAnswer::Good(vec![0xa2, 0xa1]));
    let d = diagnose(&facts);
    let f = only(&d, "path-old-key");
    assert!(f.summary.contains("/dev/sdc") && f.summary.contains("key 0xa1, the other paths 0xa2"));
    assert_eq!(d.verdict, Verdict::Degraded);
}

#[test]
fn the_holders_key_wins_over_the_majority() {
    let state = full(vec![
        holder(0xa1, A1, ReservationType::WriteExclusiveRegistrantsOnly),
        reg(0xa2, A3),
    ]);
    let d = diagnose(&map_with(state));
    let f = only(&d, "path-old-key");
    assert!(f.summary.contains("/dev/sdc"), "{}", f.summary);
}

#[test]
fn a_failed_path_says_what_the_helper_does_on_its_return() {
    let mut facts = healthy();
    facts.device.paths[1].usable = Some(false);
    facts.device.paths[1].fail_count = 3;
    facts.device.paths[1].full_status = None;
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded);
    let f = only(&d, "path-failed");
    assert!(
        f.summary
            .contains("/dev/sdc (8:32) is failed (failed 3 time(s))")
    );
    assert!(f.fix.unwrap().contains("pr-helper registers it"));
    // The remaining path is consistent on its own.
    assert!(only(&d, "paths-consistent").summary.contains("(1)"));

    for (program, multipath, words) in [
        (Program::PrHelper, false, "--no-multipath"),
        (Program::QemuPrHelper, false, "multipathd"),
    ] {
        let mut facts = facts.clone();
        facts.helper.process = Ok(HelperProcess {
            program,
            multipath,
            ..our_helper()
        });
        let d = diagnose(&facts);
        assert!(only(&d, "path-failed").fix.unwrap().contains(words));
    }
    facts.helper.process = Err("not root".into());
    let d = diagnose(&facts);
    assert!(only(&d, "path-failed").fix.unwrap().contains("unknown"));
    only(&d, "helper-process-unknown");
}

#[test]
fn every_path_failed_is_not_ready() {
    let mut facts = healthy();
    for p in &mut facts.device.paths {
        p.usable = Some(false);
        p.full_status = None;
    }
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    only(&d, "no-usable-path");
    assert_eq!(d.with_code("path-failed").len(), 2);
}

#[test]
fn a_path_that_does_not_answer() {
    let mut facts = healthy();
    facts.device.paths[1].full_status = Some(PrAnswer::Failed("SG_IO: EIO".into()));
    let d = diagnose(&facts);
    assert!(only(&d, "path-unanswered").summary.contains("SG_IO: EIO"));
    assert_eq!(d.verdict, Verdict::Degraded);
}

#[test]
fn a_path_whose_initiator_is_unknown_is_noted() {
    let mut facts = healthy();
    facts.device.paths[1].initiator = None;
    let d = diagnose(&facts);
    only(&d, "path-initiator-unknown");
    assert_eq!(d.verdict, Verdict::Ready);
}

#[test]
fn a_foreign_hosts_reservation_is_shown_with_its_transport_id() {
    let state = full(vec![
        holder(0xb1, B2, ReservationType::WriteExclusiveRegistrantsOnly),
        reg(0xb1, "5001405000000a04"),
    ]);
    let d = diagnose(&map_with(state));
    assert_eq!(d.verdict, Verdict::Ready, "{:#?}", d.findings);
    let f = only(&d, "foreign-reservation");
    assert!(
        f.summary.contains("key 0xb1") && f.summary.contains("SAS address: 0x5001405000000a02")
    );
    assert!(f.cause.unwrap().contains("allowed once it is registered"));
    assert_eq!(d.with_code("foreign-registration").len(), 2);
    only(&d, "host-unregistered");

    let exclusive = full(vec![holder(0xb1, B2, ReservationType::ExclusiveAccess)]);
    let d = diagnose(&map_with(exclusive));
    assert!(
        only(&d, "foreign-reservation")
            .cause
            .unwrap()
            .contains("RESERVATION CONFLICT")
    );
}

#[test]
fn a_key_of_this_host_that_no_process_uses_is_stale() {
    let mut facts = map_with(full(vec![reg(0xa9, A1), reg(0xa9, A3)]));
    facts.device.openers = Some(Vec::new());
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded);
    let f = only(&d, "stale-registration");
    assert!(f.summary.contains("0xa9"));
    assert_eq!(
        f.fix.unwrap(),
        "if no guest of this host should hold it: prtool --socket /run/pr.sock register --key 0xa9 --sa-key 0 /dev/dm-0"
    );
    only(&d, "not-open");
    // The helper holding it open is no guest.
    facts.device.openers = Some(vec![Opener {
        pid: 42,
        command: "pr-helper".into(),
    }]);
    only(&diagnose(&facts), "stale-registration");
    // Openers unknown (not root): nothing is called stale.
    facts.device.openers = None;
    absent(&diagnose(&facts), "stale-registration");
}

#[test]
fn unknown_initiators_cannot_be_told_apart() {
    let mut facts = map_with(full(vec![reg(0xa1, A1)]));
    facts.device.kind = DeviceKind::ScsiDisk;
    facts.device.paths = vec![PathFacts {
        initiator: None,
        usable: None,
        ..path("/dev/sda", "8:0", A1, &full(vec![]))
    }];
    let d = diagnose(&facts);
    let f = only(&d, "initiators-unknown");
    assert!(f.fix.unwrap().contains("--initiator"));
    // --initiator names them.
    facts.device.extra_initiators = vec![sas(A1)];
    let d = diagnose(&facts);
    absent(&d, "initiators-unknown");
    only(&d, "host-registered");
    only(&d, "scsi-disk");
}

#[test]
fn iscsi_names_match_without_case_and_without_isid() {
    let plain = TransportId::iscsi("iqn.2026-11.org.example:Node-A");
    let with_isid = TransportId::Iscsi {
        name: "IQN.2026-11.org.example:node-a".into(),
        isid: Some("23d000001".into()),
    };
    assert!(same_initiator(&plain, &with_isid));
    let other_isid = TransportId::Iscsi {
        name: "iqn.2026-11.org.example:node-a".into(),
        isid: Some("23d000002".into()),
    };
    assert!(!same_initiator(&with_isid, &other_isid));
    assert!(!same_initiator(&sas(A1), &sas(A3)));
    assert!(same_initiator(&sas(A1), &sas(A1)));
}

#[test]
fn a_device_without_registrants_only_type_is_not_ready() {
    let mut facts = healthy();
    if let Some(pr) = &mut facts.device.pr {
        pr.capabilities = PrAnswer::Good(ReportCapabilities {
            type_mask: TypeMask {
                wr_ex_ro: false,
                ..TypeMask::ALL
            },
            ptpl_c: false,
            ..caps()
        });
    }
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    only(&d, "no-registrants-only-type");
    only(&d, "no-aptpl");
}

#[test]
fn no_pr_support_at_all() {
    let mut facts = healthy();
    fn refused<T>() -> PrAnswer<T> {
        PrAnswer::Refused {
            status: "CHECK CONDITION".into(),
            sense: Some("ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE".into()),
            unsupported: true,
        }
    }
    if let Some(pr) = &mut facts.device.pr {
        pr.capabilities = refused();
        pr.full_status = refused();
    }
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "no-pr-support");
    assert!(f.cause.unwrap().contains("INVALID COMMAND OPERATION CODE"));
    only(&d, "capabilities-unsupported");
    absent(&d, "registrations");
}

#[test]
fn full_status_that_fails_is_not_ready() {
    let mut facts = healthy();
    if let Some(pr) = &mut facts.device.pr {
        pr.full_status = PrAnswer::Failed("SG_IO failed: EIO".into());
    }
    let d = diagnose(&facts);
    assert!(
        only(&d, "pr-unanswered")
            .summary
            .contains("SG_IO on /dev/sda: SG_IO failed")
    );
    facts.device.pr = None;
    only(&diagnose(&facts), "pr-unread");
}

#[test]
fn device_kinds_that_are_not_pr_devices() {
    let cases = [
        (DeviceKind::Missing, "device-missing"),
        (DeviceKind::Partition { disk: "sda".into() }, "partition"),
        (
            DeviceKind::Loop {
                backing: Some("/tmp/x.img".into()),
            },
            "not-a-pr-device",
        ),
        (
            DeviceKind::DeviceMapper {
                map: "vg-lv".into(),
                targets: "linear".into(),
            },
            "not-a-pr-device",
        ),
        (
            DeviceKind::OtherBlock {
                what: "virtio_blk".into(),
            },
            "not-a-pr-device",
        ),
        (
            DeviceKind::Other {
                what: "a directory".into(),
            },
            "not-a-pr-device",
        ),
    ];
    for (kind, code) in cases {
        let mut facts = healthy();
        facts.device.kind = kind.clone();
        facts.device.paths.clear();
        facts.device.pr = None;
        let d = diagnose(&facts);
        assert_eq!(d.verdict, Verdict::NotReady, "{kind:?}");
        let f = only(&d, code);
        assert!(f.fix.is_some(), "{kind:?}");
        // No PR findings for what speaks no PR.
        absent(&d, "pr-unread");
    }
}

#[test]
fn an_nvme_namespace_whose_state_is_unread_is_not_called_ready() {
    let mut facts = healthy();
    facts.device.kind = DeviceKind::Nvme(NvmeFacts {
        nsid: Some("1".into()),
        subsystem_nqn: Some("nqn.2026-11.org.example:sub".into()),
        controllers: vec!["nvme0".into(), "nvme1".into()],
        transport: Some("tcp".into()),
        host_ids: vec![],
    });
    facts.device.route = DirectRoute::Nvme;
    facts.device.path = "/dev/nvme0n1".into();
    facts.device.paths.clear();
    facts.device.pr = None;
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "nvme-namespace");
    assert!(
        f.summary
            .contains("nsid 1 of nqn.2026-11.org.example:sub, transport tcp, 2 controller(s)")
    );
    only(&d, "pr-unread");
}

const HOST_A: &str = "5001405a-0000-4000-8000-000000000a01";
const HOST_B: &str = "5001405a-0000-4000-8000-000000000a02";

fn nvme_host(id: &str) -> TransportId {
    TransportId::iscsi(format!("nqn.2014-08.org.nvmexpress:uuid:{id}"))
}

fn nvme_reg(k: u64, host: &str, holds: Option<ReservationType>) -> FullStatusDescriptor {
    FullStatusDescriptor {
        reservation_key: k,
        all_tg_pt: true,
        r_holder: holds.is_some(),
        scope_type: ScopeType::new(Scope::LogicalUnit, holds),
        relative_target_port: 0,
        transport_id: nvme_host(host),
    }
}

/// Host A's namespace (`/dev/nvme0n1`, host ID `HOST_A`) with `state`, read
/// with NVMe reservation commands, our helper serving it, a guest holding it.
fn nvme_with(state: FullStatus) -> Facts {
    let mut facts = map_with(state.clone());
    facts.device.path = "/dev/nvme0n1".into();
    facts.device.kind = DeviceKind::Nvme(NvmeFacts {
        nsid: Some("1".into()),
        subsystem_nqn: Some("nqn.2026-12.io.pr-rs:nvme-pr".into()),
        controllers: vec!["nvme0".into()],
        transport: Some("loop".into()),
        host_ids: vec![HOST_A.into()],
    });
    facts.device.route = DirectRoute::Nvme;
    facts.device.queue_timeout = None;
    facts.device.paths = vec![PathFacts {
        node: "/dev/nvme0n1".into(),
        devnum: "259:0".into(),
        usable: None,
        fail_count: 0,
        initiator: crate::check::probe::nvme_host_transport_id(HOST_A),
        full_status: None,
    }];
    facts.device.pr = Some(PrState {
        source: Source::Direct("/dev/nvme0n1".into()),
        capabilities: PrAnswer::Good(caps()),
        full_status: PrAnswer::Good(state),
    });
    facts
}

#[test]
fn a_healthy_nvme_namespace_is_ready() {
    let facts = nvme_with(full(vec![
        nvme_reg(
            0xa1,
            HOST_A,
            Some(ReservationType::WriteExclusiveRegistrantsOnly),
        ),
        nvme_reg(0xb1, HOST_B, None),
    ]));
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Ready, "{:#?}", d.findings);
    let ns = only(&d, "nvme-namespace");
    assert!(
        ns.summary.contains(&format!("this host's ID {HOST_A}")),
        "{}",
        ns.summary
    );
    assert!(ns.summary.contains("transport loop"));
    assert!(
        only(&d, "host-registered")
            .summary
            .contains("key(s) 0xa1 on 1 nexus(es)")
    );
    assert!(
        only(&d, "registrations")
            .summary
            .contains("2 registration(s), reservation")
    );
    // Host B is another host, shown by its host ID.
    let foreign = only(&d, "foreign-registration");
    assert!(foreign.summary.contains("0xb1"), "{}", foreign.summary);
    assert!(foreign.summary.contains(HOST_B), "{}", foreign.summary);
    absent(&d, "foreign-reservation");
    absent(&d, "nvme-unverified");
    absent(&d, "direct-needs-rawio");
    // The write test must not touch it: this host is registered.
    assert!(
        crate::check::write_test::refusal(&facts)
            .unwrap()
            .contains("this host has a registration")
    );
}

#[test]
fn an_nvme_namespace_reserved_by_another_host() {
    let facts = nvme_with(full(vec![nvme_reg(
        0xb1,
        HOST_B,
        Some(ReservationType::WriteExclusive),
    )]));
    let d = diagnose(&facts);
    let f = only(&d, "foreign-reservation");
    assert!(f.summary.contains("key 0xb1"), "{}", f.summary);
    assert!(f.summary.contains(HOST_B), "{}", f.summary);
    assert!(f.cause.unwrap().contains("RESERVATION CONFLICT"));
    only(&d, "host-unregistered");
    assert!(
        crate::check::write_test::refusal(&facts)
            .unwrap()
            .contains("a reservation exists that this host does not hold (key 0xb1)")
    );
    // The same key from this host's ID is this host's.
    let mine = nvme_with(full(vec![nvme_reg(
        0xb1,
        &HOST_A.to_ascii_uppercase(),
        Some(ReservationType::WriteExclusive),
    )]));
    let d = diagnose(&mine);
    absent(&d, "foreign-reservation");
    only(&d, "host-registered");
}

#[test]
fn an_unregistered_nvme_namespace_takes_the_write_test() {
    let facts = nvme_with(full(vec![nvme_reg(0xb1, HOST_B, None)]));
    assert_eq!(crate::check::write_test::refusal(&facts), None);
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Ready, "{:#?}", d.findings);
    only(&d, "host-unregistered");
}

#[test]
fn an_nvme_namespace_without_a_host_id() {
    let mut facts = nvme_with(full(vec![nvme_reg(0xb1, HOST_B, None)]));
    facts.device.paths[0].initiator = None;
    if let DeviceKind::Nvme(nvme) = &mut facts.device.kind {
        nvme.host_ids.clear();
    }
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded);
    let f = only(&d, "initiators-unknown");
    assert!(
        f.fix
            .unwrap()
            .contains("--initiator iscsi:nqn.2014-08.org.nvmexpress:uuid:HOSTID /dev/nvme0n1")
    );
    assert!(crate::check::write_test::refusal(&facts).is_some());
}

#[test]
fn nvme_controllers_with_different_host_ids() {
    let mut facts = nvme_with(full(vec![]));
    if let DeviceKind::Nvme(nvme) = &mut facts.device.kind {
        nvme.host_ids.push(HOST_B.into());
        nvme.controllers.push("nvme1".into());
    }
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded);
    assert!(
        only(&d, "nvme-host-ids-differ")
            .fix
            .unwrap()
            .contains("hostid")
    );
}

#[test]
fn an_nvme_failure_names_the_route_and_nvme_cli() {
    let mut facts = nvme_with(full(vec![]));
    if let Some(pr) = &mut facts.device.pr {
        pr.full_status = PrAnswer::Failed("Reservation Report: Invalid Field".into());
    }
    facts.caller = CallerFacts {
        uid: 1000,
        cap_sys_rawio: false,
        cap_sys_admin: false,
    };
    let d = diagnose(&facts);
    let f = only(&d, "pr-unanswered");
    assert!(
        f.summary
            .contains("through NVMe reservation commands on /dev/nvme0n1"),
        "{}",
        f.summary
    );
    assert!(f.fix.unwrap().contains("nvme resv-report /dev/nvme0n1"));
    only(&d, "direct-needs-sys-admin");
    absent(&d, "direct-needs-rawio");
}

#[test]
fn a_path_of_a_map_given_alone() {
    let mut facts = healthy();
    facts.device.kind = DeviceKind::ScsiDisk;
    facts.device.path = "/dev/sda".into();
    facts.device.path_of_maps = vec!["mpatha".into()];
    facts.device.paths.truncate(1);
    facts.device.paths[0].usable = None;
    let d = diagnose(&facts);
    let f = only(&d, "path-of-a-map");
    assert_eq!(
        f.fix.unwrap(),
        "give guests /dev/mapper/mpatha and check it: prtool check /dev/mapper/mpatha"
    );
    absent(&d, "scsi-disk");
    assert_eq!(d.verdict, Verdict::Degraded);
}

#[test]
fn unreadable_device_and_map() {
    let mut facts = healthy();
    facts.device.open_error = Some("Permission denied (os error 13)".into());
    facts.device.map_error = Some("Operation not permitted".into());
    let d = diagnose(&facts);
    only(&d, "device-unreadable");
    only(&d, "map-unreadable");
}

#[test]
fn locks_and_holders_are_noted() {
    let mut facts = healthy();
    facts.device.locks = vec![NodeLock {
        kind: "OFDLCK".into(),
        mode: "READ".into(),
        pid: None,
    }];
    facts.device.held_by = vec!["mount on /mnt".into()];
    let d = diagnose(&facts);
    assert!(only(&d, "node-locked").summary.contains("OFDLCK READ lock"));
    only(&d, "held-by");
}

#[test]
fn the_socket_missing_is_not_ready() {
    let mut facts = healthy();
    facts.helper.socket_file = SocketFile::Missing;
    facts.helper.access.clear();
    facts.helper.handshake = None;
    facts.helper.read_keys = None;
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "socket-missing");
    assert!(
        f.fix
            .unwrap()
            .contains("systemctl enable --now pr-helper.socket")
    );
    facts.helper.socket_file = SocketFile::NotASocket {
        what: "a regular file".into(),
    };
    only(&diagnose(&facts), "not-a-socket");
}

#[test]
fn access_denied_for_the_named_user_is_not_ready_for_the_caller_degraded() {
    let mut facts = healthy();
    facts.helper.access.push(Access {
        who: "libvirt-qemu (uid 64055)".into(),
        named: true,
        verdict: Err("no write permission on /run/pr.sock (mode 0600, root:root)".into()),
        fix: Some("pr-helper --socket-mode 0660 --socket-group kvm".into()),
    });
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "socket-access-denied");
    assert!(
        f.summary
            .starts_with("libvirt-qemu (uid 64055) cannot connect")
    );
    assert_eq!(
        f.fix.unwrap(),
        "pr-helper --socket-mode 0660 --socket-group kvm"
    );

    let mut facts = healthy();
    facts.helper.access[0].verdict = Err("no write permission".into());
    let d = diagnose(&facts);
    assert_eq!(
        only(&d, "caller-cannot-connect").severity,
        Severity::Degraded
    );
    facts.helper.directory_problem = Some("/run/x: no such directory".into());
    only(&diagnose(&facts), "socket-directory");
}

#[test]
fn an_unreachable_helper_is_not_ready() {
    let mut facts = healthy();
    facts.helper.handshake = Some(Err(
        "connecting the socket failed: Connection refused".into()
    ));
    facts.helper.read_keys = None;
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "helper-unreachable");
    assert!(f.cause.unwrap().contains("left it behind"));
    assert!(
        f.fix
            .unwrap()
            .contains("prtool --socket /run/pr.sock check /dev/dm-0")
    );
}

#[test]
fn helper_keys_that_differ_from_the_device() {
    let mut facts = healthy();
    facts.helper.read_keys = Some(PrAnswer::Good(vec![0xa1]));
    let d = diagnose(&facts);
    let f = only(&d, "helper-keys-differ");
    assert!(
        f.summary
            .contains("[0xa1], the device directly [0xa1,0xa1]"),
        "{}",
        f.summary
    );
    facts.helper.read_keys = Some(PrAnswer::Refused {
        status: "CHECK CONDITION".into(),
        sense: Some("ABORTED COMMAND: I/O PROCESS TERMINATED".into()),
        unsupported: false,
    });
    let d = diagnose(&facts);
    assert!(
        only(&d, "helper-refuses")
            .summary
            .contains("I/O PROCESS TERMINATED")
    );
}

#[test]
fn helper_direct_mode_skips_the_helper() {
    let mut facts = healthy();
    facts.helper = HelperFacts {
        skipped: true,
        ..HelperFacts::default()
    };
    let d = diagnose(&facts);
    only(&d, "helper-not-checked");
    absent(&d, "helper-process-unknown");
    absent(&d, "socket");
}

#[test]
fn the_helper_process_in_one_line() {
    let mut facts = healthy();
    if let Ok(p) = &mut facts.helper.process {
        p.confinement = Confinement {
            seccomp: Some(2),
            no_new_privs: Some(true),
            cap_eff: Some(0x20000),
            cap_prm: Some(0x220004),
            uid: Some(0),
        };
        p.seccomp_mode = Some("none".into());
        p.landlock = false;
    }
    let d = diagnose(&facts);
    let line = only(&d, "helper-process").summary;
    assert!(
        line.contains("multipath on")
            && line.contains("Seccomp: 2")
            && line.contains("CapEff: 0000000000020000"),
        "{line}"
    );
    assert!(
        only(&d, "sandbox-reduced")
            .summary
            .contains("--seccomp none and --no-landlock")
    );
    // qemu-pr-helper on a map.
    facts.helper.process = Ok(HelperProcess {
        program: Program::QemuPrHelper,
        cmdline_known: true,
        ..HelperProcess::default()
    });
    let d = diagnose(&facts);
    only(&d, "qemu-pr-helper-map");
    absent(&d, "sandbox-reduced");
}

fn image(descriptors: Vec<FullStatusDescriptor>) -> Facts {
    let mut facts = healthy();
    let state = full(descriptors);
    facts.device.kind = DeviceKind::ImageFile;
    facts.device.path = "disk.img".into();
    facts.device.paths.clear();
    facts.device.openers = None;
    facts.device.pr = Some(PrState {
        source: Source::Helper,
        capabilities: PrAnswer::Good(caps()),
        full_status: PrAnswer::Good(state.clone()),
    });
    facts.helper.read_keys = Some(PrAnswer::Good(
        state
            .descriptors
            .iter()
            .map(|d| d.reservation_key)
            .collect(),
    ));
    if let Ok(p) = &mut facts.helper.process {
        p.emulated_state_dir = Some("/var/lib/pr".into());
    }
    facts
}

fn emulated(pid: u32) -> TransportId {
    TransportId::iscsi(format!("iqn.2026-11.invalid.pr-helper:pid-{pid}.start-99"))
}

#[test]
fn an_image_file_with_registrations_of_live_and_exited_processes() {
    let mut live = reg(0x11, A1);
    live.transport_id = emulated(100);
    let mut gone = reg(0x22, A1);
    gone.transport_id = emulated(200);
    let mut facts = image(vec![live, gone]);
    facts.device.emulated_initiators = vec![
        EmulatedInitiator {
            id: emulated(100),
            pid: 100,
            alive: Some("qemu-system-x86".into()),
        },
        EmulatedInitiator {
            id: emulated(200),
            pid: 200,
            alive: None,
        },
    ];
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded, "{:#?}", codes(&d));
    only(&d, "image-file");
    let stale = only(&d, "stale-registration");
    assert!(
        stale
            .summary
            .contains("key 0x22 is registered by pid 200, which has exited")
    );
    assert!(
        only(&d, "emulated-registration")
            .summary
            .contains("qemu-system-x86 (pid 100)")
    );
    absent(&d, "foreign-registration");
    only(&d, "helper-read-keys");
}

#[test]
fn an_image_file_the_helper_does_not_serve() {
    let mut facts = image(vec![]);
    if let Ok(p) = &mut facts.helper.process {
        p.emulated_state_dir = None;
    }
    facts.helper.read_keys = Some(PrAnswer::Refused {
        status: "CHECK CONDITION".into(),
        sense: Some("ABORTED COMMAND: I/O PROCESS TERMINATED".into()),
        unsupported: false,
    });
    facts.device.pr = None;
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    assert!(
        only(&d, "image-not-served")
            .fix
            .unwrap()
            .contains("--emulated-state-dir")
    );
    absent(&d, "helper-refuses");
    facts.helper.process = Ok(HelperProcess {
        program: Program::QemuPrHelper,
        ..HelperProcess::default()
    });
    only(&diagnose(&facts), "image-not-served");
}

#[test]
fn the_caller_without_rawio_is_told() {
    let mut facts = healthy();
    facts.caller = CallerFacts::default();
    facts.caller.uid = 1000;
    only(&diagnose(&facts), "direct-needs-rawio");
    // An image file is never sent SG_IO.
    let mut image = image(vec![]);
    image.caller = facts.caller.clone();
    absent(&diagnose(&image), "direct-needs-rawio");
}

#[test]
fn libvirt_configuration() {
    let mut facts = healthy();
    facts.libvirt = LibvirtFacts::PrHelper {
        path: "/etc/libvirt/qemu.conf".into(),
        value: None,
    };
    let f = only(&diagnose(&facts), "libvirt-pr-helper");
    assert_eq!(f.severity, Severity::Note);
    assert!(f.summary.contains("qemu-pr-helper") && f.summary.contains("not set"));
    assert!(
        f.fix
            .unwrap()
            .contains("pr_helper = \"/usr/bin/pr-helper\"")
    );
    facts.libvirt = LibvirtFacts::PrHelper {
        path: "/etc/libvirt/qemu.conf".into(),
        value: Some("/usr/bin/pr-helper".into()),
    };
    let f = only(&diagnose(&facts), "libvirt-pr-helper");
    assert_eq!(f.severity, Severity::Ok);
    facts.libvirt = LibvirtFacts::Unreadable {
        path: "/etc/libvirt/qemu.conf".into(),
        why: "Permission denied".into(),
    };
    only(&diagnose(&facts), "libvirt-config-unreadable");
}

#[test]
fn write_test_outcomes() {
    let mut facts = healthy();
    facts.write_test = Some(WriteTest::Refused(
        "another host holds the reservation".into(),
    ));
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded);
    only(&d, "write-test-refused");

    let steps = |fail: bool| {
        vec![
            ("register".to_owned(), Ok(())),
            (
                "reserve".to_owned(),
                if fail {
                    Err("RESERVATION CONFLICT".to_owned())
                } else {
                    Ok(())
                },
            ),
        ]
    };
    facts.write_test = Some(WriteTest::Ran {
        route: "the helper".into(),
        key: 0x7072,
        steps: steps(false),
        left_as_found: Ok(()),
    });
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Ready);
    assert!(
        only(&d, "write-test")
            .summary
            .contains("key 0x7072: register, reserve")
    );
    only(&d, "write-test-left-as-found");

    facts.write_test = Some(WriteTest::Ran {
        route: "the helper".into(),
        key: 0x7072,
        steps: steps(true),
        left_as_found: Err("a registration was added".into()),
    });
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::NotReady);
    assert!(
        only(&d, "write-test-failed")
            .summary
            .contains("reserve failed: RESERVATION CONFLICT")
    );
    only(&d, "write-test-left-changes");
}

#[test]
fn findings_are_worst_first_and_every_code_is_kebab_case() {
    let mut facts = healthy();
    facts.device.paths[1].usable = Some(false);
    facts.helper.socket_file = SocketFile::Missing;
    let d = diagnose(&facts);
    let severities: Vec<Severity> = d.findings.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(severities, sorted);
    for f in &d.findings {
        assert!(
            f.code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{}",
            f.code
        );
        assert!(!f.summary.is_empty());
    }
}

fn with_named(verdict: Result<(), String>, observed: Option<Observed>) -> Facts {
    let mut facts = healthy();
    facts.helper.access.push(Access {
        who: "libvirt-qemu (uid 64055)".into(),
        named: true,
        verdict,
        fix: Some("pr-helper --socket-mode 0660 --socket-group kvm".into()),
    });
    facts.helper.observed_access = observed.map(|result| ObservedAccess {
        who: "libvirt-qemu (uid 64055)".into(),
        result,
    });
    facts
}

#[test]
fn the_named_user_tried_for_real_agrees() {
    let d = diagnose(&with_named(Ok(()), Some(Observed::Connected)));
    assert_eq!(d.verdict, Verdict::Ready);
    assert_eq!(only(&d, "socket-access-observed").severity, Severity::Ok);

    let denied = Err("no write permission on /run/pr.sock (mode 0600, root:root)".to_owned());
    let refused = Observed::Refused("Permission denied (os error 13)".into());
    let d = diagnose(&with_named(denied, Some(refused)));
    assert_eq!(d.verdict, Verdict::NotReady);
    only(&d, "socket-access-denied");
    let f = only(&d, "socket-access-observed");
    assert_eq!(f.severity, Severity::Note);
    assert!(
        f.summary.contains("when tried either: Permission denied"),
        "{}",
        f.summary
    );
}

#[test]
fn the_named_user_tried_for_real_disagrees() {
    // The bits allow it, the kernel refuses: not ready, the observed answer wins.
    let refused = Observed::Refused("Permission denied (os error 13)".into());
    let d = diagnose(&with_named(Ok(()), Some(refused)));
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "socket-access-denied");
    assert!(
        f.summary.contains("though the permission bits allow it"),
        "{}",
        f.summary
    );
    assert!(f.fix.unwrap().contains("getfacl /run/pr.sock"));

    // The bits refuse, the kernel lets it in (an ACL): ready, with a note.
    let d = diagnose(&with_named(
        Err("no write permission".into()),
        Some(Observed::Connected),
    ));
    assert_eq!(d.verdict, Verdict::Ready, "{:#?}", d.findings);
    absent(&d, "socket-access-denied");
    assert!(
        only(&d, "socket-access-differs")
            .summary
            .contains("cannot connect (no write permission), but a process with its uid")
    );

    // A probe that did not finish changes nothing but a note.
    let failed = Observed::ProbeFailed("connect() did not return within 5 s".into());
    let d = diagnose(&with_named(Ok(()), Some(failed)));
    assert_eq!(d.verdict, Verdict::Ready);
    only(&d, "socket-access-unobserved");
}

fn unsupported<T>() -> PrAnswer<T> {
    PrAnswer::Refused {
        status: "CHECK CONDITION".into(),
        sense: Some("ILLEGAL REQUEST: INVALID FIELD IN CDB".into()),
        unsupported: true,
    }
}

/// An sd node without SG_IO, read through the kernel's PR ioctls (6.19+).
fn through_ioctls(keys: PrAnswer<ReadKeys>, reservation: PrAnswer<ReadReservation>) -> Facts {
    let mut facts = healthy();
    facts.device.kind = DeviceKind::ScsiDisk;
    facts.device.path = "/dev/sda".into();
    facts.device.paths.truncate(1);
    facts.device.paths[0].usable = None;
    facts.device.paths[0].full_status = None;
    facts.device.route = DirectRoute::PrIoctls;
    facts.device.pr = Some(PrState {
        source: Source::Direct("/dev/sda".into()),
        capabilities: unsupported(),
        full_status: unsupported(),
    });
    facts.device.keys_view = Some(KeysView { keys, reservation });
    facts
}

#[test]
fn through_the_pr_ioctls_keys_are_shown_but_not_attributed() {
    let facts = through_ioctls(
        PrAnswer::Good(ReadKeys {
            generation: 5,
            keys: vec![0xa1, 0xb1],
        }),
        PrAnswer::Good(ReadReservation {
            generation: 5,
            reservation: Some(scsi::pr::Reservation {
                key: 0xb1,
                scope_type: ScopeType::new(
                    Scope::LogicalUnit,
                    Some(ReservationType::WriteExclusive),
                ),
            }),
        }),
    );
    let d = diagnose(&facts);
    assert_eq!(d.verdict, Verdict::Degraded, "{:#?}", d.findings);
    let f = only(&d, "registrations-keys-only");
    assert_eq!(
        f.summary,
        "through the kernel's PR ioctls: generation 0x5, 2 key(s) 0xa1, 0xb1, reservation \
         Write Exclusive (we) held by key 0xb1"
    );
    assert!(f.cause.unwrap().contains("cannot be told apart"));
    // Not called a device without PR support, and no attribution claimed.
    absent(&d, "no-pr-support");
    absent(&d, "foreign-registration");
    absent(&d, "host-registered");
    // The write test needs READ FULL STATUS: refused.
    assert!(crate::check::write_test::refusal(&facts).is_some());
}

#[test]
fn through_the_pr_ioctls_before_6_19_nothing_is_read() {
    let d = diagnose(&through_ioctls(unsupported(), unsupported()));
    assert_eq!(d.verdict, Verdict::NotReady);
    let f = only(&d, "pr-ioctls-unread");
    assert!(f.summary.contains("takes no SG_IO"), "{}", f.summary);
    assert!(f.fix.unwrap().contains("6.19"));
}
