//! The report and its renderings: a table for people (grouped, coloured on a terminal, totals
//! last), JSON (the filed form, and `--diff`'s input), and JUnit XML for CI.

use std::{collections::BTreeMap, fmt::Write as _};

use chrono::{DateTime, Utc};
use platform::compliance::{CheckSpec, Ctx, Finding, Group, Severity, Status};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::legal::{self, Legal};

/// A verification: what ran, when, over what, and every finding.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub tool: String,
    pub version: String,
    pub environment: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `--tenant`: only that tenant's data was checked.
    pub tenant: Option<uuid::Uuid>,
    pub fast: bool,
    pub totals: Totals,
    pub findings: Vec<ReportFinding>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    pub checks: usize,
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub skip: usize,
    pub error: usize,
}

/// One check's result, with its law and its fix. Evidence is counts, names and ids: never a
/// personal value.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportFinding {
    pub id: String,
    pub title: String,
    pub group: Group,
    pub status: Status,
    pub severity: Severity,
    pub impact: f32,
    pub legal: Legal,
    pub summary: String,
    /// What the check found (`null` when it has nothing to show).
    #[schema(value_type = Option<Object>)]
    pub evidence: serde_json::Value,
    pub remediation: String,
    /// Where docs/COMPLIANCE.md explains the check and its fix.
    pub docs: String,
    pub duration_ms: u64,
}

impl ReportFinding {
    pub fn new(spec: &CheckSpec, finding: Finding, duration_ms: u64) -> Self {
        let entry = legal::entry(spec.id);
        Self {
            id: spec.id.to_owned(),
            title: spec.title.to_owned(),
            group: spec.group,
            status: finding.status,
            severity: spec.severity,
            impact: spec.impact,
            legal: entry.map(|e| e.legal()).unwrap_or_default(),
            summary: finding.summary,
            evidence: finding.evidence,
            remediation: entry.map(|e| e.remediation.to_owned()).unwrap_or_default(),
            docs: legal::docs_link(spec.id),
            duration_ms,
        }
    }
}

impl Report {
    pub fn new(ctx: &Ctx, started_at: DateTime<Utc>, findings: Vec<ReportFinding>) -> Self {
        let mut totals = Totals {
            checks: findings.len(),
            ..Totals::default()
        };
        for f in &findings {
            match f.status {
                Status::Pass => totals.pass += 1,
                Status::Fail => totals.fail += 1,
                Status::Warn => totals.warn += 1,
                Status::Skip => totals.skip += 1,
                Status::Error => totals.error += 1,
            }
        }
        Self {
            tool: "warung compliance verify".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: format!("{:?}", ctx.config.environment).to_lowercase(),
            started_at,
            finished_at: Utc::now(),
            tenant: ctx.tenant.map(|t| t.0),
            fast: ctx.fast,
            totals,
            findings,
        }
    }

    /// Whether the deployment passed: no check failed and none could not run.
    pub fn passed(&self) -> bool {
        self.totals.fail == 0 && self.totals.error == 0
    }

    pub fn finding(&self, id: &str) -> Option<&ReportFinding> {
        self.findings.iter().find(|f| f.id == id)
    }

    /// Ids of the checks with this status.
    pub fn ids(&self, status: Status) -> Vec<&str> {
        self.findings
            .iter()
            .filter(|f| f.status == status)
            .map(|f| f.id.as_str())
            .collect()
    }

    pub fn to_json(&self) -> String {
        // A report is plain data: serialising it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// SHA-256 of the JSON form, as recorded in the audit trail.
    pub fn digest(json: &str) -> String {
        hex::encode(Sha256::digest(json.as_bytes()))
    }

    /// The terminal table. `color`: ANSI colours (when stdout is a terminal).
    pub fn to_table(&self, color: bool) -> String {
        let paint = |status: Status| -> String {
            let code = match status {
                Status::Pass => "32",
                Status::Fail => "31",
                Status::Error => "35",
                Status::Warn => "33",
                Status::Skip => "90",
            };
            if color {
                format!("\x1b[{code}m{:<5}\x1b[0m", status.as_str())
            } else {
                format!("{:<5}", status.as_str())
            }
        };
        let mut groups: BTreeMap<Group, Vec<&ReportFinding>> = BTreeMap::new();
        for f in &self.findings {
            groups.entry(f.group).or_default().push(f);
        }
        let mut out = String::new();
        let scope = self
            .tenant
            .map_or("every tenant".to_owned(), |t| format!("tenant {t}"));
        let _ = writeln!(
            out,
            "Warung compliance verification ({}, {scope}{})",
            self.environment,
            if self.fast { ", fast" } else { "" }
        );
        for (group, findings) in groups {
            let _ = writeln!(out, "\n{}", group.title());
            for f in findings {
                let _ = writeln!(
                    out,
                    "  {}  {:<36} {:<8} {}",
                    paint(f.status),
                    f.id,
                    f.severity.as_str(),
                    f.summary
                );
                if matches!(f.status, Status::Fail | Status::Error) {
                    let _ = writeln!(out, "         fix: {} ({})", f.remediation, f.docs);
                }
            }
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "\n{} checks: {} passed, {} failed, {} errors, {} skipped, {} warnings ({} ms)",
            t.checks,
            t.pass,
            t.fail,
            t.error,
            t.skip,
            t.warn,
            (self.finished_at - self.started_at).num_milliseconds()
        );
        out
    }

    /// JUnit XML: one testsuite per group, one testcase per check; FAIL is a failure, ERROR an
    /// error, SKIP skipped.
    pub fn to_junit(&self) -> String {
        let mut groups: BTreeMap<Group, Vec<&ReportFinding>> = BTreeMap::new();
        for f in &self.findings {
            groups.entry(f.group).or_default().push(f);
        }
        let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let total_ms: u64 = self.findings.iter().map(|f| f.duration_ms).sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"warung compliance\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
            self.totals.checks,
            self.totals.fail,
            self.totals.error,
            self.totals.skip,
            secs(total_ms)
        );
        for (group, findings) in groups {
            let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
                xml(group.title()),
                findings.len(),
                count(Status::Fail),
                count(Status::Error),
                count(Status::Skip),
                secs(findings.iter().map(|f| f.duration_ms).sum())
            );
            for f in findings {
                let _ = write!(
                    out,
                    "    <testcase classname=\"compliance.{}\" name=\"{}: {}\" time=\"{}\"",
                    xml(&format!("{:?}", f.group).to_lowercase()),
                    xml(&f.id),
                    xml(&f.title),
                    secs(f.duration_ms)
                );
                let body = format!(
                    "{}\nevidence: {}\nremediation: {} ({})",
                    f.summary, f.evidence, f.remediation, f.docs
                );
                match f.status {
                    Status::Pass => out.push_str("/>\n"),
                    Status::Skip => {
                        let _ = writeln!(
                            out,
                            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                            xml(&f.summary)
                        );
                    }
                    Status::Fail | Status::Warn => {
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                            xml(&f.summary),
                            f.severity.as_str(),
                            xml(&body)
                        );
                    }
                    Status::Error => {
                        let _ = writeln!(
                            out,
                            ">\n      <error message=\"{}\">{}</error>\n    </testcase>",
                            xml(&f.summary),
                            xml(&body)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Escapes text for XML attributes and content.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use platform::compliance::{Group, Severity, Status};

    use super::{Report, ReportFinding, Totals, xml};

    fn finding(id: &str, status: Status) -> ReportFinding {
        ReportFinding {
            id: id.into(),
            title: format!("title of {id}"),
            group: Group::Keys,
            status,
            severity: Severity::High,
            impact: 0.5,
            legal: Default::default(),
            summary: format!("summary <of> {id}"),
            evidence: serde_json::json!({"n": 1}),
            remediation: "fix it".into(),
            docs: "docs/COMPLIANCE.md#x".into(),
            duration_ms: 3,
        }
    }

    fn report(findings: Vec<ReportFinding>) -> Report {
        let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
        Report {
            tool: "t".into(),
            version: "0".into(),
            environment: "test".into(),
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            tenant: None,
            fast: false,
            totals: Totals {
                checks: findings.len(),
                pass: count(Status::Pass),
                fail: count(Status::Fail),
                warn: count(Status::Warn),
                skip: count(Status::Skip),
                error: count(Status::Error),
            },
            findings,
        }
    }

    #[test]
    fn a_diff_names_new_fixed_and_still_failing_checks() {
        let before = report(vec![
            finding("a", Status::Fail),
            finding("b", Status::Fail),
            finding("c", Status::Pass),
            finding("d", Status::Pass),
        ]);
        let now = report(vec![
            finding("a", Status::Pass),
            finding("b", Status::Error),
            finding("c", Status::Fail),
            finding("d", Status::Skip),
            finding("e", Status::Fail),
        ]);
        let diff = now.diff(&before);
        assert_eq!(diff.new, vec!["c", "e"]);
        assert_eq!(diff.fixed, vec!["a"]);
        assert_eq!(diff.still_failing, vec!["b"]);
        assert!(!now.passed());
        assert!(report(vec![finding("a", Status::Pass), finding("s", Status::Skip)]).passed());
    }

    #[test]
    fn junit_has_one_testcase_per_check_and_marks_failures_and_errors() {
        let junit = report(vec![
            finding("a", Status::Pass),
            finding("b", Status::Fail),
            finding("c", Status::Error),
            finding("d", Status::Skip),
        ])
        .to_junit();
        assert_eq!(junit.matches("<testcase ").count(), 4);
        assert_eq!(junit.matches("<failure ").count(), 1);
        assert_eq!(junit.matches("<error ").count(), 1);
        assert_eq!(junit.matches("<skipped ").count(), 1);
        assert!(junit.contains("summary &lt;of&gt; b"), "{junit}");
        assert!(junit.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""));
    }

    #[test]
    fn oscal_results_hold_a_finding_per_run_check_and_an_observation_per_check() {
        let text = report(vec![
            finding("a", Status::Pass),
            finding("b", Status::Fail),
            finding("d", Status::Skip),
        ])
        .to_oscal();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let result = &doc["assessment-results"]["results"][0];
        assert_eq!(result["observations"].as_array().unwrap().len(), 3);
        let findings = result["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0]["target"]["status"]["state"], "satisfied");
        assert_eq!(findings[1]["target"]["target-id"], "b");
        assert_eq!(findings[1]["target"]["status"]["state"], "not-satisfied");
        assert_eq!(
            doc["assessment-results"]["metadata"]["oscal-version"],
            "1.1.2"
        );
    }

    #[test]
    fn xml_escapes_markup_and_control_characters() {
        assert_eq!(
            xml("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(xml("x\u{1}y\nz"), "x\u{fffd}y\nz");
    }
}

/// What changed since a previous report (`--diff PREVIOUS.json`), by check id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Failing (FAIL or ERROR) now, not before.
    pub new: Vec<String>,
    /// Failing before, passing or skipped now.
    pub fixed: Vec<String>,
    /// Failing both times.
    pub still_failing: Vec<String>,
}

fn failing(status: Status) -> bool {
    matches!(status, Status::Fail | Status::Error)
}

impl Report {
    pub fn diff(&self, previous: &Report) -> Diff {
        let before: BTreeMap<&str, Status> = previous
            .findings
            .iter()
            .map(|f| (f.id.as_str(), f.status))
            .collect();
        let mut diff = Diff::default();
        for f in &self.findings {
            let was = before.get(f.id.as_str()).copied().is_some_and(failing);
            match (was, failing(f.status)) {
                (false, true) => diff.new.push(f.id.clone()),
                (true, false) => diff.fixed.push(f.id.clone()),
                (true, true) => diff.still_failing.push(f.id.clone()),
                (false, false) => {}
            }
        }
        diff
    }

    /// OSCAL Assessment Results (1.1.2, JSON): one result for the run, one observation and one
    /// finding per check, the finding's objective status `satisfied` or `not-satisfied`
    /// (skipped checks: no finding, only their observation).
    pub fn to_oscal(&self) -> String {
        let uuid = |seed: &str| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
        let run = self.started_at.to_rfc3339();
        let mut observations = Vec::new();
        let mut findings = Vec::new();
        for f in &self.findings {
            let observation = uuid(&format!("{run}/{}/observation", f.id));
            observations.push(serde_json::json!({
                "uuid": observation,
                "title": f.title,
                "description": f.summary,
                "methods": ["TEST"],
                "types": ["finding"],
                "props": [
                    {"name": "check-id", "ns": "https://warung.dev/ns/oscal", "value": f.id},
                    {"name": "status", "ns": "https://warung.dev/ns/oscal", "value": f.status.as_str()},
                    {"name": "severity", "ns": "https://warung.dev/ns/oscal", "value": f.severity.as_str()},
                ],
                "relevant-evidence": [{
                    "description": f.evidence.to_string(),
                    "href": f.docs,
                }],
                "collected": self.finished_at.to_rfc3339(),
            }));
            if f.status == Status::Skip {
                continue;
            }
            let state = if failing(f.status) {
                "not-satisfied"
            } else {
                "satisfied"
            };
            let references: Vec<String> = [
                f.legal
                    .uu_pdp
                    .iter()
                    .map(|r| format!("UU PDP {r}"))
                    .collect::<Vec<_>>(),
                f.legal.gdpr.iter().map(|r| format!("GDPR {r}")).collect(),
                f.legal
                    .kominfo
                    .iter()
                    .map(|r| format!("Kominfo {r}"))
                    .collect(),
                f.legal
                    .kami
                    .iter()
                    .map(|r| format!("Indeks KAMI {r}"))
                    .collect(),
            ]
            .concat();
            findings.push(serde_json::json!({
                "uuid": uuid(&format!("{run}/{}/finding", f.id)),
                "title": f.title,
                "description": format!("{} Legal sources: {}.", f.summary, references.join("; ")),
                "target": {
                    "type": "objective-id",
                    "target-id": f.id,
                    "status": {"state": state},
                },
                "related-observations": [{"observation-uuid": observation}],
                "remarks": f.remediation,
            }));
        }
        let document = serde_json::json!({
            "assessment-results": {
                "uuid": uuid(&format!("{run}/assessment-results")),
                "metadata": {
                    "title": "Warung compliance verification",
                    "last-modified": self.finished_at.to_rfc3339(),
                    "version": self.version,
                    "oscal-version": "1.1.2",
                },
                "import-ap": {"href": "docs/COMPLIANCE.md#verification-warung-compliance-verify"},
                "results": [{
                    "uuid": uuid(&format!("{run}/result")),
                    "title": "warung compliance verify",
                    "description": format!(
                        "{} checks: {} passed, {} failed, {} errors, {} skipped",
                        self.totals.checks, self.totals.pass, self.totals.fail,
                        self.totals.error, self.totals.skip
                    ),
                    "start": run,
                    "end": self.finished_at.to_rfc3339(),
                    "reviewed-controls": {"control-selections": [{"include-all": {}}]},
                    "observations": observations,
                    "findings": findings,
                }],
            }
        });
        serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
    }
}
