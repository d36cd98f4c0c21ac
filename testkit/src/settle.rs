//! A positive signal for "nothing more will happen": an absence (no mail, no record) is only
//! asserted after it, never after a sleep.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::TestApp;

impl TestApp {
    /// Waits until this isolated app's pipeline has nothing in flight: every outbox row is
    /// published, the consumer `group` has committed every record on `topic` that the broker
    /// holds, and no mail is due (pending or sending). Panics after `within`.
    pub async fn settled(&self, group: &str, topic: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match self.in_flight(group, topic).await {
                None => return,
                Some(what) => last = what,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never settled: {last}");
    }

    /// [`TestApp::settled`] for the mail pipeline: the notification intake on the events
    /// topic.
    pub async fn mail_settled(&self, within: Duration) {
        self.settled(
            notifications::intake::GROUP,
            platform::events::EVENTS_TOPIC,
            within,
        )
        .await;
    }

    /// What is still in flight, if anything.
    async fn in_flight(&self, group: &str, topic: &str) -> Option<String> {
        let (unsent, due): (i64, i64) = sqlx::query_as(
            "select (select count(*) from outbox where published_at is null),
                    (select count(*) from notification_deliveries
                      where status in ('pending', 'sending') and next_attempt_at <= now())",
        )
        .fetch_one(self.system.pool())
        .await
        .unwrap();
        if unsent > 0 {
            return Some(format!("{unsent} outbox rows unsent"));
        }
        if due > 0 {
            return Some(format!("{due} mails due"));
        }
        let (brokers, group, topic) = (
            self.kafka_brokers().to_owned(),
            group.to_owned(),
            topic.to_owned(),
        );
        tokio::task::spawn_blocking(move || behind(&brokers, &group, &topic))
            .await
            .unwrap()
    }
}

/// How far `group` is behind on `topic`, or `None` when it has committed everything.
fn behind(brokers: &str, group: &str, topic: &str) -> Option<String> {
    // A consumer of the group that never subscribes: it reads the group's committed offsets
    // without joining it (no rebalance for the real consumer).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).ok()?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let Ok(committed) = consumer.committed_offsets(wanted, timeout) else {
        return Some("committed offsets unreadable".into());
    };
    for partition in partitions {
        let Ok((_, high)) = consumer.fetch_watermarks(topic, partition, timeout) else {
            return Some("watermarks unreadable".into());
        };
        let done = match committed
            .find_partition(topic, partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(at)) => at,
            _ => 0,
        };
        if done < high {
            return Some(format!(
                "{group} at {done} of {high} on {topic}/{partition}"
            ));
        }
    }
    None
}
