//! The export bundle: one zip holding `manifest.json`, `data.json` (every section) and one CSV
//! per section, so the person can read it in a spreadsheet and a machine can re-import it
//! (GDPR art. 20 "structured, commonly used and machine-readable"; UU PDP art. 13).

use std::io::{Cursor, Write};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use platform::{Error, Result, id::TenantId, pii::Subject, privacy::Section};
use serde_json::{Map, Value};
use zip::{ZipWriter, write::SimpleFileOptions};

/// Builds the zip in memory (a person's data is small: profile, consents, orders, mails).
pub fn zip(
    tenant: TenantId,
    subject: Subject,
    generated_at: DateTime<Utc>,
    sections: &[Section],
) -> Result<Vec<u8>> {
    let manifest = serde_json::json!({
        "format": "warung.subject-export.v1",
        "tenant_id": tenant,
        "subject": { "kind": subject.kind.as_str(), "id": subject.id },
        "generated_at": generated_at,
        "sections": sections.iter().map(|s| serde_json::json!({
            "name": s.name, "records": s.records.len(), "csv": format!("{}.csv", s.name),
        })).collect::<Vec<_>>(),
    });
    let data: Map<String, Value> = sections
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                Value::Array(s.records.iter().cloned().map(Value::Object).collect()),
            )
        })
        .collect();
    let mut files = vec![
        ("manifest.json".to_owned(), json_bytes(&manifest)?),
        ("data.json".to_owned(), json_bytes(&Value::Object(data))?),
    ];
    for section in sections {
        files.push((format!("{}.csv", section.name), csv(section)?));
    }
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    for (name, bytes) in files {
        zip.start_file(name, options).map_err(internal)?;
        zip.write_all(&bytes).map_err(internal)?;
    }
    Ok(zip.finish().map_err(internal)?.into_inner())
}

fn json_bytes(value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(internal)
}

/// One row per record, one column per key seen in any record (sorted); nested values are
/// written as JSON text. A cell a spreadsheet would take for a formula is defused.
fn csv(section: &Section) -> Result<Vec<u8>> {
    let mut columns: Vec<&String> = section.records.iter().flat_map(Map::keys).collect();
    columns.sort();
    columns.dedup();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&columns).map_err(internal)?;
    for record in &section.records {
        let row = columns.iter().map(|c| match record.get(*c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => inert(s),
            Some(other) => other.to_string(),
        });
        out.write_record(row).map_err(internal)?;
    }
    out.into_inner().map_err(|e| internal(e.into_error()))
}

/// A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to a
/// spreadsheet (OWASP "CSV injection"): a customer's name such as `=HYPERLINK(...)` would run
/// when the person opens their own export. A leading `'` keeps it text; `data.json` keeps the
/// value as it is.
fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn internal(err: impl Into<anyhow::Error>) -> Error {
    Error::Internal(err.into())
}

/// Sealed values are text: the zip is stored as base64 under the subject's key.
pub fn encode(zip: &[u8]) -> String {
    STANDARD.encode(zip)
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use platform::pii::{SubjectId, SubjectKind};

    use super::*;

    #[test]
    fn formulas_are_defused_in_csv_only() {
        let mut section = Section::new("users.profile");
        section
            .push(serde_json::json!({
                "full_name": "=HYPERLINK(\"https://evil.example\", \"x\")",
                "phone": "+62 811", "note": "-1", "mail": "@x", "plain": "Ani", "count": -3,
            }))
            .unwrap();
        let text = String::from_utf8(csv(&section).unwrap()).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("'=HYPERLINK"), "{row}");
        for defused in ["'+62 811", "'-1", "'@x"] {
            assert!(row.contains(defused), "{row}");
        }
        assert!(row.contains(",Ani,") || row.ends_with(",Ani"), "{row}");
        assert!(row.starts_with("-3,"), "numbers are numbers: {row}");
    }

    fn read(zip: &[u8], name: &str) -> String {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap_or_else(|e| panic!("{e}"));
        let mut file = archive
            .by_name(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut text = String::new();
        file.read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{e}"));
        text
    }

    #[test]
    fn sections_become_json_and_csv_files() {
        let mut orders = Section::new("orders.orders");
        orders
            .push(serde_json::json!({"id": "o1", "total_minor": 18000, "note": "a, \"b\""}))
            .unwrap_or_else(|e| panic!("{e}"));
        orders
            .push(serde_json::json!({"id": "o2", "lines": [1, 2]}))
            .unwrap_or_else(|e| panic!("{e}"));
        let subject = Subject {
            id: SubjectId(uuid::Uuid::nil()),
            kind: SubjectKind::Customer,
        };
        let zip = zip(TenantId(uuid::Uuid::nil()), subject, Utc::now(), &[orders])
            .unwrap_or_else(|e| panic!("{e}"));

        let manifest: Value =
            serde_json::from_str(&read(&zip, "manifest.json")).unwrap_or_default();
        assert_eq!(manifest["subject"]["kind"], "customer");
        assert_eq!(manifest["sections"][0]["records"], 2);
        let data: Value = serde_json::from_str(&read(&zip, "data.json")).unwrap_or_default();
        assert_eq!(data["orders.orders"][1]["lines"], serde_json::json!([1, 2]));

        let csv = read(&zip, "orders.orders.csv");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "id,lines,note,total_minor");
        assert_eq!(lines[1], "o1,,\"a, \"\"b\"\"\",18000");
        assert_eq!(lines[2], "o2,\"[1,2]\",,");
        assert_eq!(decode(&encode(&zip)), Some(zip));
    }
}
