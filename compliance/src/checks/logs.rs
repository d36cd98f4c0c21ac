//! Logs and topics (on request): personal data must not leak into log files or Kafka payloads.
//! `--scan-logs PATH` reads the files (or every file under a folder); `--scan-topics` reads the
//! newest messages of each topic.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::Duration,
};

use futures::FutureExt;
use platform::{
    clients::Kafka,
    compliance::{Check, Ctx, Finding, Group::LogsAndTopics, Severity},
    events::{AUDIT_TOPIC, EVENTS_TOPIC},
};
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Message,
};

use super::check;
use crate::shapes::{Detector, Hits};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "logs.no_pii",
            LogsAndTopics,
            "Log files hold no email, phone or NIK",
            Severity::High,
            0.8,
            false,
            |c| logs(c).boxed(),
        ),
        check(
            "topics.no_pii",
            LogsAndTopics,
            "Kafka payloads hold no email, phone or NIK",
            Severity::High,
            0.8,
            false,
            |c| topics(c).boxed(),
        ),
    ]
}

/// Messages read from the end of each partition.
const TOPIC_SAMPLE: i64 = 2_000;

fn describe(hits: &Hits) -> String {
    format!(
        "{} emails, {} phones, {} NIKs",
        hits.email, hits.phone, hits.nik
    )
}

fn files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            files(&entry.path(), out)?;
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

async fn logs(ctx: &Ctx) -> anyhow::Result<Finding> {
    let Some(root) = ctx.scan_logs.clone() else {
        return Ok(Finding::skip("not asked to scan logs (--scan-logs PATH)"));
    };
    tokio::task::spawn_blocking(move || {
        let detector = Detector::new();
        let mut paths = Vec::new();
        files(&root, &mut paths)?;
        let (mut lines, mut violations) = (0u64, Vec::new());
        for path in &paths {
            let mut hits = Hits::default();
            let mut first = None;
            let reader = BufReader::new(std::fs::File::open(path)?);
            for (n, line) in reader.split(b'\n').enumerate() {
                let line = line?;
                lines += 1;
                let found = detector.find_bytes(&line);
                if found.any() {
                    first.get_or_insert(n + 1);
                    hits.add(found);
                }
            }
            if let Some(line) = first {
                violations.push(format!(
                    "{}: {} (first at line {line})",
                    path.display(),
                    describe(&hits)
                ));
            }
        }
        Ok(Finding::from_violations(
            violations,
            format!("{lines} lines in {} file(s), no personal data", paths.len()),
            |n| format!("{n} log files hold personal data"),
        ))
    })
    .await?
}

async fn topics(ctx: &Ctx) -> anyhow::Result<Finding> {
    if !ctx.scan_topics {
        return Ok(Finding::skip("not asked to scan topics (--scan-topics)"));
    }
    let config = ctx.config.kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = Kafka::client_config(&config)
            .set("group.id", "warung-compliance-scan")
            .set("enable.auto.commit", "false")
            .create()?;
        let timeout = Duration::from_millis(config.timeout_ms.max(1_000));
        let detector = Detector::new();
        let (mut read, mut violations) = (0u64, Vec::new());
        for topic in [AUDIT_TOPIC, EVENTS_TOPIC] {
            let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
            let mut assignment = TopicPartitionList::new();
            let mut wanted = 0i64;
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
                let from = low.max(high - TOPIC_SAMPLE);
                wanted += high - from;
                assignment.add_partition_offset(topic, partition.id(), Offset::Offset(from))?;
            }
            consumer.assign(&assignment)?;
            let mut hits = Hits::default();
            let (mut got, mut idle) = (0i64, 0);
            while got < wanted && idle < 5 {
                match consumer.poll(timeout) {
                    Some(Ok(message)) => {
                        got += 1;
                        idle = 0;
                        hits.add(detector.find_bytes(message.payload().unwrap_or_default()));
                    }
                    Some(Err(err)) => return Err(err.into()),
                    None => idle += 1,
                }
            }
            read += got as u64;
            if hits.any() {
                violations.push(format!("{topic}: {}", describe(&hits)));
            }
        }
        Ok(Finding::from_violations(
            violations,
            format!("{read} newest messages of both topics, no personal data"),
            |n| format!("{n} topics carry personal data in plaintext"),
        ))
    })
    .await?
}
