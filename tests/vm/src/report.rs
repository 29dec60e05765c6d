//! The guest's result lines and the verdict on a run.
//!
//! Line format (written by `guest/lib.sh`):
//! - `VMCHECK <scenario> <check> PASS|FAIL <detail...>`
//! - `VMINFO <scenario> <key> <value...>`
//! - `VMSTART <scenario>` and `VMEND <scenario> exit=<n>`
//! - `VMDONE` once every scenario ran.

use std::collections::BTreeSet;

/// One parsed result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmLine {
    Check {
        scenario: String,
        check: String,
        passed: bool,
        detail: String,
    },
    Info {
        scenario: String,
        key: String,
        value: String,
    },
    Start {
        scenario: String,
    },
    End {
        scenario: String,
        exit: String,
    },
    Done,
}

impl VmLine {
    /// Parses one line; `None` for anything that is not a result line.
    pub fn parse(line: &str) -> Option<VmLine> {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut words = line.splitn(5, ' ');
        let tag = words.next()?;
        match tag {
            "VMCHECK" => {
                let scenario = words.next()?.to_owned();
                let check = words.next()?.to_owned();
                let passed = match words.next()? {
                    "PASS" => true,
                    "FAIL" => false,
                    _ => return None,
                };
                let detail = words.next().unwrap_or("").to_owned();
                Some(VmLine::Check {
                    scenario,
                    check,
                    passed,
                    detail,
                })
            }
            "VMINFO" => {
                let scenario = words.next()?.to_owned();
                let key = words.next()?.to_owned();
                let value = words.collect::<Vec<_>>().join(" ");
                Some(VmLine::Info {
                    scenario,
                    key,
                    value,
                })
            }
            "VMSTART" => Some(VmLine::Start {
                scenario: words.next()?.to_owned(),
            }),
            "VMEND" => Some(VmLine::End {
                scenario: words.next()?.to_owned(),
                exit: words
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("exit=")
                    .to_owned(),
            }),
            "VMDONE" => Some(VmLine::Done),
            _ => None,
        }
    }
}

/// Everything a run printed, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<VmLine>,
}

impl Report {
    pub fn parse(output: &str) -> Report {
        Report {
            lines: output.lines().filter_map(VmLine::parse).collect(),
        }
    }

    /// Measurements reported with VMINFO, as (scenario, key, value).
    pub fn infos(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.lines.iter().filter_map(|line| match line {
            VmLine::Info {
                scenario,
                key,
                value,
            } => Some((scenario.as_str(), key.as_str(), value.as_str())),
            _ => None,
        })
    }

    pub fn check_count(&self) -> usize {
        self.lines
            .iter()
            .filter(|line| matches!(line, VmLine::Check { .. }))
            .count()
    }

    /// Why the run does not pass: failed checks, expected scenarios that
    /// did not finish or reported no check, scenarios killed by their
    /// deadline, and a guest that stopped before the end. Empty means pass.
    pub fn problems(&self, expected_scenarios: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut with_checks = BTreeSet::new();
        let mut ended = BTreeSet::new();
        for line in &self.lines {
            match line {
                VmLine::Check {
                    scenario,
                    check,
                    passed,
                    detail,
                } => {
                    with_checks.insert(scenario.as_str());
                    if !passed {
                        problems.push(format!("FAIL {scenario}/{check}: {detail}"));
                    }
                }
                VmLine::End { scenario, exit } => {
                    ended.insert(scenario.as_str());
                    // 137: killed by the guest's per-scenario deadline.
                    if exit == "137" {
                        problems.push(format!("scenario {scenario} hit its deadline (killed)"));
                    }
                }
                _ => {}
            }
        }
        for scenario in expected_scenarios {
            if !ended.contains(scenario.as_str()) {
                problems.push(format!("scenario {scenario} did not run to its end"));
            } else if !with_checks.contains(scenario.as_str()) {
                problems.push(format!("scenario {scenario} reported no check"));
            }
        }
        if !self.lines.contains(&VmLine::Done) {
            problems.push("the guest stopped before VMDONE".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "noise\r\n\
        VMCHECK setup lio PASS /dev/sda\r\n\
        VMSTART lifecycle\n\
        VMCHECK lifecycle register PASS exit=0\n\
        VMINFO lifecycle ratio 2.5 x\n\
        VMEND lifecycle exit=0\n\
        VMDONE\n";

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn parses_every_kind_of_line() {
        let report = Report::parse(RUN);
        assert_eq!(report.lines.len(), 6);
        assert_eq!(
            report.lines[2],
            VmLine::Check {
                scenario: "lifecycle".into(),
                check: "register".into(),
                passed: true,
                detail: "exit=0".into()
            }
        );
        assert_eq!(
            report.infos().collect::<Vec<_>>(),
            vec![("lifecycle", "ratio", "2.5 x")]
        );
        assert_eq!(report.check_count(), 2);
    }

    #[test]
    fn a_clean_run_has_no_problems() {
        let report = Report::parse(RUN);
        assert_eq!(
            report.problems(&names(&["setup", "lifecycle"])[1..]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn failures_missing_scenarios_and_truncation_are_problems() {
        let text = "VMSTART a\nVMCHECK a x FAIL expected 1 got 2\nVMEND a exit=0\n\
                    VMSTART b\nVMEND b exit=137\n";
        let problems = Report::parse(text).problems(&names(&["a", "b", "c"]));
        assert_eq!(
            problems,
            vec![
                "FAIL a/x: expected 1 got 2".to_owned(),
                "scenario b hit its deadline (killed)".to_owned(),
                "scenario b reported no check".to_owned(),
                "scenario c did not run to its end".to_owned(),
                "the guest stopped before VMDONE".to_owned(),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_ignored() {
        assert_eq!(VmLine::parse("VMCHECK a b MAYBE x"), None);
        assert_eq!(VmLine::parse("VMCHECK a"), None);
        assert_eq!(VmLine::parse("VMSTART"), None);
    }
}
