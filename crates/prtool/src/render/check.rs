//! `prtool check` output: the verdict first, then one line per finding with
//! its cause and fix; or one JSON object (schema 1, the common fields of
//! prtool's JSON, then the verdict, the findings and the facts).

use std::fmt::Write as _;

use pr_manager::{Decoded, FullStatus, ReportCapabilities};
use serde::Serialize;

use super::json::{
    DataJson, SCHEMA_VERSION, TransportIdJson, capabilities_json, full_status_json, key_hex,
    transport_id_json,
};
use crate::check::Report;
use crate::check::facts::{
    DeviceKind, DirectRoute, Observed, PrAnswer, Program, SocketFile, Source, WriteTest,
};
use crate::check::findings::{Severity, Verdict};
use crate::exit::Exit;

/// The exit code class of a verdict.
pub fn exit_of(verdict: Verdict) -> Exit {
    match verdict {
        Verdict::Ready => Exit::Ready,
        Verdict::NotReady => Exit::NotReady,
        Verdict::Degraded => Exit::Degraded,
    }
}

fn count(report: &Report, severity: Severity) -> usize {
    report
        .diagnosis
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .count()
}

/// The text: verdict line, then one line per finding, worst first.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    let verdict = match report.diagnosis.verdict {
        Verdict::Ready => "READY",
        Verdict::Degraded => "DEGRADED",
        Verdict::NotReady => "NOT READY",
    };
    let _ = writeln!(
        out,
        "{}: {verdict} for cluster reservations ({} not ready, {} degraded, {} notes, {} ok)",
        report.facts.device.path,
        count(report, Severity::NotReady),
        count(report, Severity::Degraded),
        count(report, Severity::Note),
        count(report, Severity::Ok),
    );
    for f in &report.diagnosis.findings {
        let _ = write!(out, "{:<9} {}: {}", f.severity.name(), f.code, f.summary);
        if let Some(cause) = &f.cause {
            let _ = write!(out, "; cause: {cause}");
        }
        if let Some(fix) = &f.fix {
            let _ = write!(out, "; fix: {fix}");
        }
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct CheckJson<'a> {
    schema: u32,
    command: &'static str,
    device: &'a str,
    via: &'static str,
    socket: Option<&'a str>,
    outcome: &'static str,
    exit_code: u8,
    verdict: &'static str,
    findings: Vec<FindingJson<'a>>,
    facts: FactsJson,
}

#[derive(Serialize)]
struct FindingJson<'a> {
    code: &'static str,
    severity: &'static str,
    summary: &'a str,
    cause: Option<&'a str>,
    fix: Option<&'a str>,
}

#[derive(Serialize)]
struct FactsJson {
    device: DeviceJson,
    helper: HelperJson,
    write_test: Option<WriteTestJson>,
}

#[derive(Serialize)]
struct DeviceJson {
    kind: &'static str,
    map: Option<String>,
    paths: Vec<PathJson>,
    host_initiators: Vec<TransportIdJson>,
    source: Option<String>,
    /// How the direct reads reached the device: `sg-io`, `nvme`, `pr-ioctls`.
    route: &'static str,
    capabilities: Option<DataJson>,
    full_status: Option<DataJson>,
    openers: Option<Vec<OpenerJson>>,
}

#[derive(Serialize)]
struct PathJson {
    node: String,
    devnum: String,
    usable: Option<bool>,
    fail_count: u32,
    initiator: Option<TransportIdJson>,
    /// This host's key on the path, when READ FULL STATUS on it answered.
    key: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct OpenerJson {
    pid: u32,
    command: String,
}

#[derive(Serialize)]
struct HelperJson {
    checked: bool,
    socket_file: &'static str,
    mode: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    handshake: Option<bool>,
    read_keys: Option<Vec<String>>,
    process: Option<ProcessJson>,
    /// `--as USER` tried for real (root only).
    as_user: Option<AsUserJson>,
}

#[derive(Serialize)]
struct AsUserJson {
    who: String,
    /// From the permission bits and the helper's peer filter.
    computed: bool,
    /// `connected`, `refused` or `not-tried`.
    observed: &'static str,
    error: Option<String>,
}

#[derive(Serialize)]
struct ProcessJson {
    pid: u32,
    found_by: String,
    program: String,
    version: Option<String>,
    multipath: Option<bool>,
    emulated_state_dir: Option<String>,
    seccomp_mode: Option<String>,
    landlock: Option<bool>,
    seccomp: Option<u8>,
    no_new_privs: Option<bool>,
    cap_eff: Option<String>,
    cap_prm: Option<String>,
    uid: Option<u32>,
}

#[derive(Serialize)]
struct WriteTestJson {
    ran: bool,
    refused: Option<String>,
    route: Option<String>,
    key: Option<String>,
    steps: Vec<StepJson>,
    left_as_found: Option<bool>,
}

#[derive(Serialize)]
struct StepJson {
    step: String,
    ok: bool,
    error: Option<String>,
}

fn kind_name(kind: &DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Missing => "missing",
        DeviceKind::ScsiDisk => "scsi-disk",
        DeviceKind::ScsiGeneric { .. } => "scsi-generic",
        DeviceKind::Multipath { .. } => "multipath",
        DeviceKind::DeviceMapper { .. } => "device-mapper",
        DeviceKind::Nvme(_) => "nvme",
        DeviceKind::Loop { .. } => "loop",
        DeviceKind::Partition { .. } => "partition",
        DeviceKind::OtherBlock { .. } => "other-block",
        DeviceKind::ImageFile => "image-file",
        DeviceKind::Other { .. } => "other",
    }
}

fn decoded<T>(value: T) -> Decoded<T> {
    Decoded {
        value,
        advertised_len: 0,
        truncated: false,
    }
}

fn device_json(report: &Report) -> DeviceJson {
    let d = &report.facts.device;
    let host = d.host_initiators();
    let pr = d.pr.as_ref();
    DeviceJson {
        kind: kind_name(&d.kind),
        map: match &d.kind {
            DeviceKind::Multipath { map } | DeviceKind::DeviceMapper { map, .. } => {
                Some(map.clone())
            }
            _ => None,
        },
        paths: d
            .paths
            .iter()
            .map(|p| {
                let key =
                    p.full_status
                        .as_ref()
                        .and_then(|a| a.good())
                        .and_then(|full: &FullStatus| {
                            let id = p.initiator.as_ref()?;
                            full.descriptors
                                .iter()
                                .find(|r| {
                                    crate::check::findings::same_initiator(id, &r.transport_id)
                                })
                                .map(|r| key_hex(r.reservation_key))
                        });
                PathJson {
                    node: p.node.clone(),
                    devnum: p.devnum.clone(),
                    usable: p.usable,
                    fail_count: p.fail_count,
                    initiator: p.initiator.as_ref().map(transport_id_json),
                    key,
                    error: p.full_status.as_ref().and_then(PrAnswer::problem),
                }
            })
            .collect(),
        host_initiators: host.iter().map(transport_id_json).collect(),
        source: pr.map(|pr| match &pr.source {
            Source::Direct(node) => format!("direct:{node}"),
            Source::Helper => "helper".to_owned(),
        }),
        route: match d.route {
            DirectRoute::SgIo => "sg-io",
            DirectRoute::Nvme => "nvme",
            DirectRoute::PrIoctls => "pr-ioctls",
        },
        capabilities: pr
            .and_then(|pr| pr.capabilities.good())
            .map(|c: &ReportCapabilities| capabilities_json(&decoded(*c))),
        full_status: pr
            .and_then(|pr| pr.full_status.good())
            .map(|f| full_status_json(&decoded(f.clone()))),
        openers: d.openers.as_ref().map(|list| {
            list.iter()
                .map(|o| OpenerJson {
                    pid: o.pid,
                    command: o.command.clone(),
                })
                .collect()
        }),
    }
}

fn helper_json(report: &Report) -> HelperJson {
    let h = &report.facts.helper;
    let (socket_file, mode) = match &h.socket_file {
        SocketFile::NotChecked => ("not-checked", None),
        SocketFile::Missing => ("missing", None),
        SocketFile::NotASocket { .. } => ("not-a-socket", None),
        SocketFile::Socket(mode) => ("socket", Some(mode.clone())),
    };
    HelperJson {
        checked: !h.skipped,
        socket_file,
        mode: mode.as_ref().map(|m| format!("{:04o}", m.mode)),
        owner: mode
            .as_ref()
            .map(|m| m.owner.clone().unwrap_or_else(|| m.uid.to_string())),
        group: mode
            .as_ref()
            .map(|m| m.group.clone().unwrap_or_else(|| m.gid.to_string())),
        handshake: h.handshake.as_ref().map(Result::is_ok),
        as_user: h.observed_access.as_ref().map(|o| {
            let (observed, error) = match &o.result {
                Observed::Connected => ("connected", None),
                Observed::Refused(why) => ("refused", Some(why.clone())),
                Observed::ProbeFailed(why) => ("not-tried", Some(why.clone())),
            };
            AsUserJson {
                who: o.who.clone(),
                computed: h
                    .access
                    .iter()
                    .find(|a| a.named)
                    .is_some_and(|a| a.verdict.is_ok()),
                observed,
                error,
            }
        }),
        read_keys: h
            .read_keys
            .as_ref()
            .and_then(|k| k.good())
            .map(|keys| keys.iter().copied().map(key_hex).collect()),
        process: h.process.as_ref().ok().map(|p| {
            let ours = p.program == Program::PrHelper && p.cmdline_known;
            ProcessJson {
                pid: p.pid,
                found_by: p.found_by.clone(),
                program: match &p.program {
                    Program::PrHelper => "pr-helper".to_owned(),
                    Program::QemuPrHelper => "qemu-pr-helper".to_owned(),
                    Program::Other(name) => name.clone(),
                    Program::Unknown => "unknown".to_owned(),
                },
                version: p.version.clone(),
                multipath: ours.then_some(p.multipath),
                emulated_state_dir: p.emulated_state_dir.clone(),
                seccomp_mode: ours
                    .then(|| p.seccomp_mode.clone().unwrap_or_else(|| "kill".to_owned())),
                landlock: ours.then_some(p.landlock),
                seccomp: p.confinement.seccomp,
                no_new_privs: p.confinement.no_new_privs,
                cap_eff: p.confinement.cap_eff.map(|c| format!("{c:016x}")),
                cap_prm: p.confinement.cap_prm.map(|c| format!("{c:016x}")),
                uid: p.confinement.uid,
            }
        }),
    }
}

fn write_test_json(test: &WriteTest) -> WriteTestJson {
    match test {
        WriteTest::Refused(why) => WriteTestJson {
            ran: false,
            refused: Some(why.clone()),
            route: None,
            key: None,
            steps: Vec::new(),
            left_as_found: None,
        },
        WriteTest::Ran {
            route,
            key,
            steps,
            left_as_found,
        } => WriteTestJson {
            ran: true,
            refused: None,
            route: Some(route.clone()),
            key: Some(key_hex(*key)),
            steps: steps
                .iter()
                .map(|(step, result)| StepJson {
                    step: step.clone(),
                    ok: result.is_ok(),
                    error: result.as_ref().err().cloned(),
                })
                .collect(),
            left_as_found: Some(left_as_found.is_ok()),
        },
    }
}

/// The JSON text (one object, newline-terminated).
pub fn json(report: &Report) -> String {
    let exit = exit_of(report.diagnosis.verdict);
    let h = &report.facts.helper;
    let object = CheckJson {
        schema: SCHEMA_VERSION,
        command: "check",
        device: &report.facts.device.path,
        via: if h.skipped { "direct" } else { "socket" },
        socket: (!h.skipped).then_some(h.socket.as_str()),
        outcome: exit.name(),
        exit_code: exit.code(),
        verdict: report.diagnosis.verdict.name(),
        findings: report
            .diagnosis
            .findings
            .iter()
            .map(|f| FindingJson {
                code: f.code,
                severity: f.severity.name(),
                summary: &f.summary,
                cause: f.cause.as_deref(),
                fix: f.fix.as_deref(),
            })
            .collect(),
        facts: FactsJson {
            device: device_json(report),
            helper: helper_json(report),
            write_test: report.facts.write_test.as_ref().map(write_test_json),
        },
    };
    // Plain structs of strings, numbers and options: serialising cannot fail.
    let mut text = serde_json::to_string_pretty(&object).unwrap_or_default();
    text.push('\n');
    text
}
