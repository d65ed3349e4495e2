//! Kafka settings for `distinctly run`: the old app's variable names (read
//! with `envy`, prefix `KAFKA_`), service timing, and pass-through librdkafka
//! properties.
//!
//! A missing or malformed variable stops start-up with one line naming it
//! and the expected form. The password is held in [`Secret`], whose `Debug`
//! and `Display` never show it.

use crate::config::{from_prefixed, ConfigError};
use rdkafka::ClientConfig;
use serde::Deserialize;
use std::fmt;

/// Defaults of the optional `KAFKA_*` settings, each written once here
/// (serde needs functions; the README's table is checked against them).
pub mod defaults {
    pub fn port() -> u16 {
        9092
    }
    pub fn group_id() -> String {
        "distinctly".to_string()
    }
    pub fn auto_offset_reset() -> String {
        "earliest".to_string()
    }
    pub fn sasl_mechanism() -> String {
        "PLAIN".to_string()
    }
}

/// A value that must never be printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The `KAFKA_*` variables (field `foo` is `KAFKA_FOO`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KafkaEnv {
    /// `KAFKA_SERVICE_INTERNAL_HOST`: a host, or a comma-separated list of
    /// `host:port` (a host without a port gets `KAFKA_SERVICE_INTERNAL_PORT`).
    pub service_internal_host: String,
    /// `KAFKA_SERVICE_INTERNAL_PORT`: broker port for hosts given without one.
    #[serde(default = "defaults::port")]
    pub service_internal_port: u16,
    /// `KAFKA_SERVICE_INPUT_TOPIC`: topic of `{"ts":…,"uid":…}` events.
    pub service_input_topic: String,
    /// `KAFKA_SERVICE_OUTPUT_TOPIC`: topic the window records go to, keyed by
    /// `start_ts` (make it compacted).
    pub service_output_topic: String,
    /// `KAFKA_SERVICE_GROUP_ID`: consumer group.
    #[serde(default = "defaults::group_id")]
    pub service_group_id: String,
    /// `KAFKA_SERVICE_USERNAME`: SASL user; with a password, the connection
    /// uses SASL over TLS with PLAIN (what Confluent Cloud expects).
    pub service_username: Option<String>,
    /// `KAFKA_SERVICE_PASSWORD`: SASL password (never printed).
    pub service_password: Option<Secret>,
    /// `KAFKA_SERVICE_SECURITY_PROTOCOL`: overrides the protocol
    /// (`plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`).
    pub service_security_protocol: Option<String>,
    /// `KAFKA_SERVICE_SASL_MECHANISM`: the SASL mechanism (e.g.
    /// `SCRAM-SHA-512`); used only with credentials.
    #[serde(default = "defaults::sasl_mechanism")]
    pub service_sasl_mechanism: String,
    /// `KAFKA_SERVICE_DLQ_TOPIC`: when set, rejected messages are copied there
    /// with the reason and their origin in headers.
    pub service_dlq_topic: Option<String>,
    /// `KAFKA_SERVICE_STATE_TOPIC`: the compacted topic of window checkpoints
    /// (unset: `<output topic>-state`; empty: no checkpoints, a restart
    /// replays everything the held windows need).
    pub service_state_topic: Option<String>,
    /// `KAFKA_AUTO_OFFSET_RESET`: where a group without committed offsets
    /// starts: `earliest` or `latest`.
    #[serde(default = "defaults::auto_offset_reset")]
    pub auto_offset_reset: String,
}

/// Service timing (`DISTINCTLY_*`); an unset variable takes the value of
/// `Default`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ServiceEnv {
    /// `DISTINCTLY_IDLE_PARTITION_SECONDS`: a partition without events for
    /// this long (wall clock) stops holding the watermark back; when all are
    /// idle, open windows are emitted.
    pub idle_partition_seconds: u64,
    /// `DISTINCTLY_COMMIT_INTERVAL_SECONDS`: how often safe offsets are
    /// committed.
    pub commit_interval_seconds: u64,
    /// `DISTINCTLY_SHARDS`: partitions of the shard topic when it is made
    /// (unset: the input topic's partition count).
    pub shards: Option<u32>,
    /// `DISTINCTLY_INSTANCE_ID`: this instance's stable name in the consumer
    /// groups (static membership; unset: `<host name>-<pid>`).
    pub instance_id: Option<String>,
}

/// Most shard partitions: far more than instances will ever count them, and
/// each costs a windower per counter, a marker per transaction per input
/// partition, and a status in the partials topic.
const MAX_SHARDS: u32 = 4096;

impl Default for ServiceEnv {
    fn default() -> Self {
        ServiceEnv {
            idle_partition_seconds: 30,
            commit_interval_seconds: 5,
            shards: None,
            instance_id: None,
        }
    }
}

/// Everything `run` needs besides the core settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub env: KafkaEnv,
    pub service: ServiceEnv,
    /// `DISTINCTLY_RDKAFKA_*` (both clients), `DISTINCTLY_RDKAFKA_CONSUMER_*`,
    /// `DISTINCTLY_RDKAFKA_PRODUCER_*`: extra librdkafka properties, the rest
    /// of the name lower-cased with `_` read as `.`
    /// (`DISTINCTLY_RDKAFKA_SSL_CA_LOCATION` is `ssl.ca.location`).
    pub consumer_props: Vec<(String, String)>,
    pub producer_props: Vec<(String, String)>,
    /// The `DISTINCTLY_RDKAFKA_*` properties for every client (the admin
    /// client that creates the state topic gets these).
    pub common_props: Vec<(String, String)>,
}

const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];

impl KafkaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    pub fn from_vars(vars: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let env: KafkaEnv = from_prefixed("KAFKA_", vars.iter().cloned())?;
        let service: ServiceEnv = from_prefixed("DISTINCTLY_", vars.iter().cloned())?;
        let mut consumer_props = Vec::new();
        let mut producer_props = Vec::new();
        let mut common_props = Vec::new();
        for (k, v) in &vars {
            let Some(rest) = k.strip_prefix("DISTINCTLY_RDKAFKA_") else {
                continue;
            };
            let prop = |name: &str| name.to_lowercase().replace('_', ".");
            if let Some(name) = rest.strip_prefix("CONSUMER_") {
                consumer_props.push((prop(name), v.clone()));
            } else if let Some(name) = rest.strip_prefix("PRODUCER_") {
                producer_props.push((prop(name), v.clone()));
            } else {
                consumer_props.push((prop(rest), v.clone()));
                producer_props.push((prop(rest), v.clone()));
                common_props.push((prop(rest), v.clone()));
            }
        }
        let cfg = KafkaConfig {
            env,
            service,
            consumer_props,
            producer_props,
            common_props,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.env;
        let invalid = |var: &'static str, reason: String| crate::config::invalid(var, reason);
        if self.bootstrap_servers().is_empty() {
            return Err(invalid(
                "KAFKA_SERVICE_INTERNAL_HOST",
                "expected a host or a comma-separated host:port list".into(),
            ));
        }
        for (var, topic) in [
            ("KAFKA_SERVICE_INPUT_TOPIC", &e.service_input_topic),
            ("KAFKA_SERVICE_OUTPUT_TOPIC", &e.service_output_topic),
        ] {
            if topic.trim().is_empty() {
                return Err(invalid(var, "expected a topic name".into()));
            }
        }
        if let Some(state) = self.state_topic() {
            if state == e.service_input_topic || state == e.service_output_topic {
                return Err(invalid(
                    "KAFKA_SERVICE_STATE_TOPIC",
                    format!("{state:?} must differ from the input and output topics"),
                ));
            }
        }
        if e.service_input_topic == e.service_output_topic {
            return Err(invalid(
                "KAFKA_SERVICE_OUTPUT_TOPIC",
                "must differ from KAFKA_SERVICE_INPUT_TOPIC".into(),
            ));
        }
        if !matches!(e.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(invalid(
                "KAFKA_AUTO_OFFSET_RESET",
                format!("{:?} is not earliest or latest", e.auto_offset_reset),
            ));
        }
        if e.service_username.is_some() != e.service_password.is_some() {
            let var = if e.service_username.is_some() {
                "KAFKA_SERVICE_PASSWORD"
            } else {
                "KAFKA_SERVICE_USERNAME"
            };
            return Err(invalid(
                var,
                "KAFKA_SERVICE_USERNAME and KAFKA_SERVICE_PASSWORD go together".into(),
            ));
        }
        if let Some(p) = &e.service_security_protocol {
            if !PROTOCOLS.contains(&p.to_lowercase().as_str()) {
                return Err(invalid(
                    "KAFKA_SERVICE_SECURITY_PROTOCOL",
                    format!("{p:?} is not one of {}", PROTOCOLS.join(", ")),
                ));
            }
        }
        if let Some(n) = self.service.shards {
            if !(1..=MAX_SHARDS).contains(&n) {
                return Err(invalid(
                    "DISTINCTLY_SHARDS",
                    format!("must be between 1 and {MAX_SHARDS}, got {n}"),
                ));
            }
        }
        if let Some(id) = &self.service.instance_id {
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if id.is_empty() || id.len() > 200 || !id.chars().all(ok) {
                return Err(invalid(
                    "DISTINCTLY_INSTANCE_ID",
                    "must be 1 to 200 of A-Z a-z 0-9 . _ - (it names Kafka group members)".into(),
                ));
            }
        }
        if self.service.commit_interval_seconds == 0 {
            return Err(invalid(
                "DISTINCTLY_COMMIT_INTERVAL_SECONDS",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `bootstrap.servers`: every host with a port.
    /// These settings as the start of `run` logs them.
    pub fn settings(&self) -> crate::internal_events::KafkaSettings<'_> {
        let e = &self.env;
        crate::internal_events::KafkaSettings {
            bootstrap: self.bootstrap_servers(),
            input_topic: &e.service_input_topic,
            output_topic: &e.service_output_topic,
            group: &e.service_group_id,
            security_protocol: self.security_protocol(),
            username: e.service_username.as_deref().unwrap_or(""),
            password_set: e.service_password.is_some(),
            dlq_topic: e.service_dlq_topic.as_deref().unwrap_or(""),
            auto_offset_reset: &e.auto_offset_reset,
            idle_partition_seconds: self.service.idle_partition_seconds,
            commit_interval_seconds: self.service.commit_interval_seconds,
            consumer_properties: &self.consumer_props,
            producer_properties: &self.producer_props,
        }
    }

    pub fn bootstrap_servers(&self) -> String {
        self.env
            .service_internal_host
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    h.to_string()
                } else {
                    format!("{h}:{}", self.env.service_internal_port)
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The state topic, unless checkpoints are off.
    pub fn state_topic(&self) -> Option<String> {
        match self.env.service_state_topic.as_deref().map(str::trim) {
            None => Some(format!("{}-state", self.env.service_output_topic)),
            Some("") => None,
            Some(t) => Some(t.to_string()),
        }
    }

    /// `security.protocol`: as set, else SASL over TLS with credentials
    /// (the old app's hosted Kafka), else plaintext.
    pub fn security_protocol(&self) -> String {
        let e = &self.env;
        match (&e.service_security_protocol, &e.service_username) {
            (Some(p), _) => p.to_lowercase(),
            (None, Some(_)) => "sasl_ssl".to_string(),
            (None, None) => "plaintext".to_string(),
        }
    }

    /// Settings of the admin client (creating the state topic).
    pub fn admin_config(&self) -> ClientConfig {
        let mut c = self.common();
        for (k, v) in &self.common_props {
            c.set(k, v);
        }
        c
    }

    /// Settings shared by the consumer and the producer.
    fn common(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap_servers());
        c.set("client.id", "distinctly");
        let e = &self.env;
        c.set("security.protocol", self.security_protocol());
        if let (Some(user), Some(password)) = (&e.service_username, &e.service_password) {
            c.set("sasl.mechanism", &e.service_sasl_mechanism);
            c.set("sasl.username", user);
            c.set("sasl.password", password.expose());
        }
        c
    }

    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = self.common();
        c.set("group.id", &self.env.service_group_id);
        c.set("auto.offset.reset", &self.env.auto_offset_reset);
        // Offsets are committed by hand, only when safe (see `kafka::offsets`).
        c.set("enable.auto.commit", "false");
        c.set("enable.auto.offset.store", "false");
        // End-of-partition events mark the end of catch-up and idleness.
        c.set("enable.partition.eof", "true");
        // Statistics feed the consumer-lag gauges (parsed in
        // `context::stats_raw`; a few kB of JSON every 5 s).
        c.set("statistics.interval.ms", "5000");
        // Fail-over: a member that stops heartbeating leaves its group after
        // 6 s (the broker's minimum session timeout) instead of librdkafka's
        // 45 s, and the others learn of the rebalance within a heartbeat;
        // cooperative rebalancing moves only the partitions that must move,
        // so the other stages and partitions keep working.
        c.set("session.timeout.ms", "6000");
        c.set("heartbeat.interval.ms", "1000");
        c.set("partition.assignment.strategy", "cooperative-sticky");
        // When its local queue is full librdkafka pauses a partition's
        // fetching for this long (default 1 s): a consumer that is briefly
        // slower than the fetcher would then sit idle. Keep the pause short.
        c.set("fetch.queue.backoff.ms", "10");
        for (k, v) in &self.consumer_props {
            c.set(k, v);
        }
        c
    }

    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.common();
        c.set("enable.idempotence", "true");
        c.set("acks", "all");
        // Never give up on a record: a broker outage only delays it.
        c.set("message.timeout.ms", "0");
        c.set("linger.ms", "5");
        for (k, v) in &self.producer_props {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = [
            ("KAFKA_SERVICE_INTERNAL_HOST", "broker"),
            ("KAFKA_SERVICE_INPUT_TOPIC", "events"),
            ("KAFKA_SERVICE_OUTPUT_TOPIC", "uniques"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, val) in pairs {
            v.retain(|(key, _)| key != k);
            if !val.is_empty() {
                v.push((k.to_string(), val.to_string()));
            }
        }
        v
    }

    fn get(c: &ClientConfig, k: &str) -> Option<String> {
        c.get(k).map(str::to_string)
    }

    #[test]
    fn old_variable_names_keep_their_meaning() {
        let c = KafkaConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(c.bootstrap_servers(), "broker:9092");
        let consumer = c.consumer_config();
        assert_eq!(get(&consumer, "group.id").unwrap(), "distinctly");
        assert_eq!(get(&consumer, "auto.offset.reset").unwrap(), "earliest");
        assert_eq!(get(&consumer, "security.protocol").unwrap(), "plaintext");
        assert_eq!(get(&consumer, "enable.auto.commit").unwrap(), "false");
        let producer = c.producer_config();
        assert_eq!(get(&producer, "acks").unwrap(), "all");
        assert_eq!(get(&producer, "enable.idempotence").unwrap(), "true");

        let c = KafkaConfig::from_vars(vars(&[
            ("KAFKA_SERVICE_INTERNAL_HOST", "a:1, b ,c:3"),
            ("KAFKA_SERVICE_INTERNAL_PORT", "9094"),
            ("KAFKA_AUTO_OFFSET_RESET", "latest"),
        ]))
        .unwrap();
        assert_eq!(c.bootstrap_servers(), "a:1,b:9094,c:3");
        assert_eq!(
            get(&c.consumer_config(), "auto.offset.reset").unwrap(),
            "latest"
        );
    }

    #[test]
    fn credentials_mean_sasl_ssl_plain_unless_overridden() {
        let c = KafkaConfig::from_vars(vars(&[
            ("KAFKA_SERVICE_USERNAME", "u"),
            ("KAFKA_SERVICE_PASSWORD", "hunter2"),
        ]))
        .unwrap();
        let p = c.producer_config();
        assert_eq!(get(&p, "security.protocol").unwrap(), "sasl_ssl");
        assert_eq!(get(&p, "sasl.mechanism").unwrap(), "PLAIN");
        assert_eq!(get(&p, "sasl.password").unwrap(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"), "password printed");
        let c = KafkaConfig::from_vars(vars(&[
            ("KAFKA_SERVICE_USERNAME", "u"),
            ("KAFKA_SERVICE_PASSWORD", "p"),
            ("KAFKA_SERVICE_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ]))
        .unwrap();
        assert_eq!(
            get(&c.consumer_config(), "security.protocol").unwrap(),
            "sasl_plaintext"
        );
    }

    #[test]
    fn pass_through_properties() {
        let c = KafkaConfig::from_vars(vars(&[
            ("DISTINCTLY_RDKAFKA_SSL_CA_LOCATION", "/ca.pem"),
            ("DISTINCTLY_RDKAFKA_CONSUMER_FETCH_MAX_BYTES", "1000"),
            ("DISTINCTLY_RDKAFKA_PRODUCER_LINGER_MS", "50"),
        ]))
        .unwrap();
        let (con, pro) = (c.consumer_config(), c.producer_config());
        assert_eq!(get(&con, "ssl.ca.location").unwrap(), "/ca.pem");
        assert_eq!(get(&pro, "ssl.ca.location").unwrap(), "/ca.pem");
        assert_eq!(get(&con, "fetch.max.bytes").unwrap(), "1000");
        assert_eq!(get(&pro, "fetch.max.bytes"), None);
        assert_eq!(get(&pro, "linger.ms").unwrap(), "50");
    }

    #[test]
    fn errors_name_the_variable_and_hide_the_password() {
        for (pairs, var) in [
            (
                vec![("KAFKA_SERVICE_INPUT_TOPIC", "")],
                "KAFKA_SERVICE_INPUT_TOPIC",
            ),
            (
                vec![("KAFKA_SERVICE_INTERNAL_PORT", "x")],
                "KAFKA_SERVICE_INTERNAL_PORT",
            ),
            (
                vec![("KAFKA_AUTO_OFFSET_RESET", "middle")],
                "KAFKA_AUTO_OFFSET_RESET",
            ),
            (
                vec![("KAFKA_SERVICE_PASSWORD", "s3cret")],
                "KAFKA_SERVICE_USERNAME",
            ),
            (
                vec![("KAFKA_SERVICE_INTERNAL_HOST", " , ")],
                "KAFKA_SERVICE_INTERNAL_HOST",
            ),
            (
                vec![("KAFKA_SERVICE_SECURITY_PROTOCOL", "tls")],
                "KAFKA_SERVICE_SECURITY_PROTOCOL",
            ),
            (
                vec![("DISTINCTLY_COMMIT_INTERVAL_SECONDS", "0")],
                "DISTINCTLY_COMMIT_INTERVAL_SECONDS",
            ),
            (vec![("DISTINCTLY_SHARDS", "0")], "DISTINCTLY_SHARDS"),
            (vec![("DISTINCTLY_SHARDS", "5000")], "DISTINCTLY_SHARDS"),
            (vec![("DISTINCTLY_SHARDS", "x")], "DISTINCTLY_SHARDS"),
            (
                vec![("DISTINCTLY_INSTANCE_ID", "a b")],
                "DISTINCTLY_INSTANCE_ID",
            ),
        ] {
            let e = KafkaConfig::from_vars(vars(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(var), "{var}: {e}");
            assert!(!e.contains("s3cret"));
        }
    }
}
