//! Golden output: the prtool binary against a scripted helper serving
//! payloads built with the `scsi` encoders. Human output (stdout, stderr,
//! exit code) and JSON are compared byte for byte with the files in
//! `tests/golden/`. Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo nextest run -p prtool`, and review the diff.

#[path = "../../pr-manager/tests/common/fake.rs"]
mod fake;

use std::path::{Path, PathBuf};
use std::process::Command;

use fake::{Answer, FakeHelper};
use pr_manager::{PrInAction, ReservationType, TransportId};
use scsi::pr::{
    FullStatus, FullStatusDescriptor, ReadKeys, ReadReservation, ReportCapabilities, Reservation,
    Scope, ScopeType, TypeMask,
};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn payload(action: PrInAction, empty: bool) -> Vec<u8> {
    let st = |t| ScopeType::new(Scope::LogicalUnit, Some(t));
    match (action, empty) {
        (PrInAction::ReadKeys, false) => ReadKeys {
            generation: 0x2a,
            keys: vec![0x1234_abcd, 0xdead_beef_0000_0001],
        }
        .encode()
        .expect("encode"),
        (PrInAction::ReadKeys, true) => ReadKeys::default().encode().expect("encode"),
        (PrInAction::ReadReservation, false) => ReadReservation {
            generation: 0x2b,
            reservation: Some(Reservation {
                key: 0x1234_abcd,
                scope_type: st(ReservationType::WriteExclusiveRegistrantsOnly),
            }),
        }
        .encode(),
        (PrInAction::ReadReservation, true) => ReadReservation {
            generation: 0x2b,
            reservation: None,
        }
        .encode(),
        (PrInAction::ReportCapabilities, _) => ReportCapabilities {
            crh: true,
            sip_c: true,
            atp_c: true,
            ptpl_c: true,
            tmv: true,
            allow_commands: 1,
            type_mask: TypeMask {
                ex_ac_ar: false,
                ..TypeMask::ALL
            },
            ..ReportCapabilities::default()
        }
        .encode()
        .to_vec(),
        (PrInAction::ReadFullStatus, _) => FullStatus {
            generation: 0x2c,
            descriptors: vec![
                FullStatusDescriptor {
                    reservation_key: 0x1234_abcd,
                    all_tg_pt: false,
                    r_holder: true,
                    scope_type: st(ReservationType::WriteExclusive),
                    relative_target_port: 1,
                    transport_id: TransportId::Iscsi {
                        name: "iqn.2026-11.org.example:node-a".into(),
                        isid: Some("23d000001".into()),
                    },
                },
                FullStatusDescriptor {
                    reservation_key: 0x5678,
                    all_tg_pt: true,
                    r_holder: false,
                    scope_type: ScopeType(0),
                    relative_target_port: 2,
                    transport_id: TransportId::FibreChannel {
                        n_port_name: 0x2100_0024_ff00_0001,
                    },
                },
                FullStatusDescriptor {
                    reservation_key: 0x9abc,
                    all_tg_pt: false,
                    r_holder: false,
                    scope_type: ScopeType(0),
                    relative_target_port: 3,
                    transport_id: TransportId::Sas {
                        address: 0x5000_c500_1234_5678,
                    },
                },
            ],
        }
        .encode()
        .expect("encode"),
    }
}

/// A helper answering PR IN with the payloads above and PR OUT by action:
/// RESERVE → RESERVATION CONFLICT, CLEAR → CHECK CONDITION (I/O process
/// terminated), anything else GOOD. `empty` serves the empty variants.
fn scripted(empty: bool) -> FakeHelper {
    FakeHelper::start(move |cdb, _| match cdb[0] {
        0x5E => match PrInAction::from_code(cdb[1] & 0x1f) {
            Some(action) => Answer::good(payload(action, empty)),
            None => Answer::check_condition(0x05, 0x24, 0x00),
        },
        _ => match cdb[1] & 0x1f {
            0x01 => Answer::status(0x18),
            0x03 => Answer::check_condition(0x0b, 0x00, 0x06),
            _ => Answer::status(0),
        },
    })
}

/// Runs prtool in a directory holding `helper.sock` (a link to the fake's
/// socket) and `disk.img`, so every path in the output is relative and stable.
fn prtool(fake: &FakeHelper, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::os::unix::fs::symlink(fake.socket(), dir.path().join("helper.sock")).expect("link");
    std::fs::write(dir.path().join("disk.img"), [0u8; 512]).expect("disk image");
    let output = Command::new(env!("CARGO_BIN_EXE_prtool"))
        .current_dir(dir.path())
        .args(["--connect-attempts", "1"])
        .args(args)
        .output()
        .expect("run prtool");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

fn compare(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert!(
        expected == actual,
        "{name} differs from its golden file\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// Adds `--socket helper.sock` unless the case names its own socket.
fn with_socket<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = Vec::new();
    if !args.contains(&"--socket") {
        all.extend(["--socket", "helper.sock"]);
    }
    all.extend_from_slice(args);
    all
}

/// One case: human and JSON output, each against its golden file.
fn case(name: &str, empty: bool, args: &[&str], exit: i32) {
    let fake = scripted(empty);
    let (code, stdout, stderr) = prtool(&fake, &with_socket(args));
    assert_eq!(code, exit, "{name}: exit code\n{stdout}{stderr}");
    compare(
        &format!("{name}.txt"),
        &format!("exit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}"),
    );
    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(args);
    let json_args = with_socket(&json_args);
    let (code, stdout, stderr) = prtool(&fake, &json_args);
    assert_eq!(code, exit, "{name}: JSON exit code");
    assert_eq!(stderr, "", "{name}: JSON mode writes only JSON");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(value["exit_code"], exit);
    compare(&format!("{name}.json"), &stdout);
}

#[test]
fn read_keys() {
    case("read-keys", false, &["read-keys", "disk.img"], 0);
}

#[test]
fn read_keys_none() {
    case("read-keys-none", true, &["read-keys", "disk.img"], 0);
}

#[test]
fn read_keys_truncated() {
    case(
        "read-keys-truncated",
        false,
        &["read-keys", "--alloc-length", "16", "disk.img"],
        0,
    );
}

#[test]
fn read_reservation() {
    case(
        "read-reservation",
        false,
        &["read-reservation", "disk.img"],
        0,
    );
}

#[test]
fn read_reservation_none() {
    case(
        "read-reservation-none",
        true,
        &["read-reservation", "disk.img"],
        0,
    );
}

#[test]
fn report_capabilities() {
    case(
        "report-capabilities",
        false,
        &["report-capabilities", "disk.img"],
        0,
    );
}

#[test]
fn read_full_status() {
    case(
        "read-full-status",
        false,
        &["read-full-status", "disk.img"],
        0,
    );
}

#[test]
fn register() {
    case(
        "register",
        false,
        &[
            "register",
            "--sa-key",
            "0x1234abcd",
            "--aptpl",
            "--transport-id",
            "sas:5000c50012345678",
            "disk.img",
        ],
        0,
    );
}

#[test]
fn reserve_conflict() {
    case(
        "reserve-conflict",
        false,
        &[
            "reserve",
            "--key",
            "0x1234abcd",
            "--type",
            "we-ro",
            "disk.img",
        ],
        3,
    );
}

#[test]
fn clear_check_condition() {
    case(
        "clear-check-condition",
        false,
        &["clear", "--key", "0x1234abcd", "disk.img"],
        4,
    );
}

#[test]
fn helper_unreachable() {
    case(
        "helper-unreachable",
        false,
        &["--socket", "missing.sock", "read-keys", "disk.img"],
        5,
    );
}

#[test]
fn device_missing() {
    case("device-missing", false, &["read-keys", "no-such-disk"], 1);
}
