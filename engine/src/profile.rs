//! Tuning profiles: named sets of engine knobs kept as TOML files
//! (`perf/profiles/*.toml`), applied on top of an [`EngineConfig`].
//!
//! A profile only names the knobs it changes; everything else keeps the value
//! of the configuration it is applied to. Unknown keys and values of the wrong
//! type are errors rather than warnings, because a misspelt knob in a tuning
//! file would otherwise be silently ignored in production.
//!
//! Three ways in:
//! - from code: [`EngineConfig::with_profile`] with a built-in [`Profile`], or
//!   [`EngineConfig::apply_profile_str`] with text of your own;
//! - from a path: [`EngineConfig::apply_profile_path`];
//! - from the environment: `RINGRPC_PROFILE` names a built-in profile or a path;
//!   [`ServerBuilder::serve`](crate::ServerBuilder::serve) applies it last, so an
//!   operator can retune a binary without rebuilding it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringrpc_codec::server::default_max_continuation_frames;

use crate::{Backend, Encoding, EngineConfig};

/// The environment variable read by [`EngineConfig::apply_profile_env`].
pub const PROFILE_ENV: &str = "RINGRPC_PROFILE";

/// The profiles that ship with the engine (the files in `perf/profiles/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The defaults, written out with the reason for each.
    Default,
    /// Short queues and the cheaper-per-round-trip backend, for few connections
    /// with one call in flight each.
    Latency,
    /// Big reads, windows and queues, for many calls in flight per connection
    /// and large messages.
    Throughput,
    /// Small per-connection buffers and windows, for tens of thousands of mostly
    /// idle connections.
    ManyConnections,
}

impl Profile {
    /// Every built-in profile.
    pub const ALL: [Profile; 4] = [
        Profile::Default,
        Profile::Latency,
        Profile::Throughput,
        Profile::ManyConnections,
    ];

    /// The profile's name, which is also its file name without `.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Latency => "latency",
            Profile::Throughput => "throughput",
            Profile::ManyConnections => "many-connections",
        }
    }

    /// The built-in profile called `name`.
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The profile's TOML text.
    pub fn text(self) -> &'static str {
        match self {
            Profile::Default => include_str!("../../perf/profiles/default.toml"),
            Profile::Latency => include_str!("../../perf/profiles/latency.toml"),
            Profile::Throughput => include_str!("../../perf/profiles/throughput.toml"),
            Profile::ManyConnections => include_str!("../../perf/profiles/many-connections.toml"),
        }
    }
}

/// Why a profile could not be applied. The configuration is left unchanged.
#[derive(Debug)]
pub enum ProfileError {
    /// The profile file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        error: std::io::Error,
    },
    /// The text is not TOML.
    Syntax(String),
    /// A key the engine does not have (often a typo).
    UnknownKey(String),
    /// A value of the wrong type or out of range.
    BadValue {
        /// `section.key`.
        key: String,
        /// What the key takes.
        expected: &'static str,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::Read { path, error } => {
                write!(f, "cannot read profile {}: {error}", path.display())
            }
            ProfileError::Syntax(message) => write!(f, "profile is not valid TOML: {message}"),
            ProfileError::UnknownKey(key) => write!(f, "unknown profile key `{key}`"),
            ProfileError::BadValue { key, expected } => {
                write!(f, "profile key `{key}` takes {expected}")
            }
        }
    }
}

impl std::error::Error for ProfileError {}

impl EngineConfig {
    /// This configuration with a built-in profile applied.
    pub fn with_profile(mut self, profile: Profile) -> EngineConfig {
        self.apply_profile_str(profile.text())
            .expect("built-in profiles are checked by the engine's tests");
        self
    }

    /// Applies profile text on top of this configuration. On error nothing is
    /// changed.
    pub fn apply_profile_str(&mut self, text: &str) -> Result<(), ProfileError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ProfileError::Syntax(e.message().to_owned()))?;
        let mut updated = self.clone();
        let mut named = Vec::new();
        for (section, entries) in &table {
            let toml::Value::Table(entries) = entries else {
                return Err(ProfileError::UnknownKey(section.clone()));
            };
            for (key, value) in entries {
                set(&mut updated, section, key, value)?;
                named.push((section.as_str(), key.as_str()));
            }
        }
        rederive(self, &mut updated, |section, key| {
            named.contains(&(section, key))
        });
        *self = updated;
        Ok(())
    }

    /// Reads a profile file and applies it on top of this configuration.
    pub fn apply_profile_path(&mut self, path: impl AsRef<Path>) -> Result<(), ProfileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| ProfileError::Read {
            path: path.to_owned(),
            error,
        })?;
        self.apply_profile_str(&text)
    }

    /// Applies the profile `RINGRPC_PROFILE` names: a built-in profile's name,
    /// or else a path. Returns what was applied, `None` when the variable is
    /// unset or empty.
    pub fn apply_profile_env(&mut self) -> Result<Option<String>, ProfileError> {
        let Some(value) = std::env::var_os(PROFILE_ENV) else {
            return Ok(None);
        };
        let value = value.to_string_lossy().into_owned();
        if value.is_empty() {
            return Ok(None);
        }
        match Profile::from_name(&value) {
            Some(profile) => self.apply_profile_str(profile.text())?,
            None => self.apply_profile_path(&value)?,
        }
        Ok(Some(value))
    }
}

/// Sets one knob. Keys are grouped by what they tune; the names follow the
/// `EngineConfig` / codec `Config` fields, with durations in milliseconds.
/// Where a numeric field is an `Option` (a knob that can be off, or a limit
/// derived when unset), 0 spells `None`.
fn set(
    config: &mut EngineConfig,
    section: &str,
    key: &str,
    value: &toml::Value,
) -> Result<(), ProfileError> {
    let v = Value {
        section,
        key,
        value,
    };
    let codec = &mut config.codec;
    match (section, key) {
        ("engine", "backend") => {
            config.backend = match v.str()? {
                "uring" | "io_uring" => Backend::Uring,
                "epoll" => Backend::Epoll,
                _ => return Err(v.bad("\"uring\" or \"epoll\"")),
            }
        }
        ("engine", "workers") => {
            config.workers = match v.usize()? {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            }
        }
        ("engine", "cores") => {
            let toml::Value::Array(items) = value else {
                return Err(v.bad("an array of CPU ids"));
            };
            config.cores = items
                .iter()
                .map(|item| match item {
                    toml::Value::Integer(id) if *id >= 0 => Ok(*id as usize),
                    _ => Err(v.bad("an array of CPU ids")),
                })
                .collect::<Result<_, _>>()?;
        }
        ("engine", "pin_workers") => config.pin_workers = v.bool()?,
        ("engine", "backlog") => config.backlog = v.int(1, i32::MAX as i64)? as i32,
        ("engine", "shutdown_grace_ms") => config.shutdown_grace = v.millis()?,
        ("engine", "max_send_message_size") => config.max_send_message_size = v.usize()?,
        ("engine", "response_compression") => {
            config.response_compression = match v.str()? {
                "none" => None,
                "gzip" => Some(Encoding::Gzip),
                "zstd" => Some(Encoding::Zstd),
                _ => return Err(v.bad("\"none\", \"gzip\" or \"zstd\"")),
            }
        }
        ("uring", "entries") => config.ring_entries = v.u32()?,
        ("uring", "coop_taskrun") => config.ring_coop_taskrun = v.bool()?,
        ("uring", "sqpoll_idle_ms") => config.ring_sqpoll_idle = v.millis_or_off()?,
        ("buffers", "read_buffer_size") => config.read_buffer_size = v.int(512, 1 << 30)? as usize,
        ("buffers", "write_high_water") => config.write_high_water = v.usize()?,
        ("buffers", "stream_send_high_water") => config.stream_send_high_water = v.usize()?,
        ("http2", "max_concurrent_streams") => codec.max_concurrent_streams = v.u32()?,
        ("http2", "initial_stream_window") => {
            codec.initial_stream_window = v.int(0, (1 << 31) - 1)? as u32
        }
        ("http2", "initial_connection_window") => {
            codec.initial_connection_window = v.int(65_535, (1 << 31) - 1)? as u32
        }
        ("http2", "max_frame_size") => codec.max_frame_size = v.int(16_384, (1 << 24) - 1)? as u32,
        ("http2", "max_header_list_size") => codec.max_header_list_size = v.u32()?,
        ("http2", "header_table_size") => codec.header_table_size = v.u32()?,
        ("http2", "max_continuation_frames") => codec.max_continuation_frames = v.u32()?,
        ("http2", "max_message_size") => codec.max_message_size = v.u32()?,
        ("http2", "handshake_timeout_ms") => codec.handshake_timeout = v.millis()?,
        ("abuse", "max_peer_resets") => codec.max_peer_resets = v.u32()?,
        ("abuse", "max_error_resets") => codec.max_error_resets = v.u32()?,
        ("abuse", "max_pending_control_frames") => codec.max_pending_control_frames = v.u32()?,
        ("abuse", "max_empty_frames") => codec.max_empty_frames = v.u32()?,
        ("abuse", "max_new_streams_per_recv") => codec.max_new_streams_per_recv = v.u32()?,
        ("abuse", "max_partial_message_bytes") => codec.max_partial_message_bytes = v.usize()?,
        ("lifecycle", "keepalive_time_ms") => codec.keepalive_time = v.millis_or_off()?,
        ("lifecycle", "keepalive_timeout_ms") => codec.keepalive_timeout = v.nonzero_millis()?,
        ("lifecycle", "min_ping_interval_ms") => codec.min_ping_interval = v.millis()?,
        ("lifecycle", "permit_ping_without_stream") => {
            codec.permit_ping_without_stream = v.bool()?
        }
        ("lifecycle", "max_ping_strikes") => codec.max_ping_strikes = v.u32()?,
        ("lifecycle", "max_connection_idle_ms") => codec.max_connection_idle = v.millis_or_off()?,
        ("lifecycle", "max_connection_age_ms") => codec.max_connection_age = v.millis_or_off()?,
        ("lifecycle", "max_connection_age_grace_ms") => {
            codec.max_connection_age_grace = v.millis_or_off()?
        }
        ("lifecycle", "send_stall_timeout_ms") => codec.send_stall_timeout = v.nonzero_millis()?,
        ("lifecycle", "max_connections_per_worker") => {
            config.max_connections_per_worker = match v.usize()? {
                0 => None,
                cap => Some(cap),
            }
        }
        _ => return Err(ProfileError::UnknownKey(format!("{section}.{key}"))),
    }
    Ok(())
}

/// Limits whose defaults follow other limits keep following them when a
/// profile changes those and does not name the derived limit itself, unless the
/// configuration had already set the derived limit to a value of its own.
fn rederive(before: &EngineConfig, after: &mut EngineConfig, named: impl Fn(&str, &str) -> bool) {
    let (old, new) = (&before.codec, &mut after.codec);
    if !named("abuse", "max_new_streams_per_recv")
        && old.max_new_streams_per_recv == old.max_concurrent_streams.saturating_mul(2)
    {
        new.max_new_streams_per_recv = new.max_concurrent_streams.saturating_mul(2);
    }
    if !named("http2", "max_continuation_frames")
        && old.max_continuation_frames
            == default_max_continuation_frames(old.max_header_list_size, old.max_frame_size)
    {
        new.max_continuation_frames =
            default_max_continuation_frames(new.max_header_list_size, new.max_frame_size);
    }
}

/// One profile value with the key it came from, for error messages.
struct Value<'a> {
    section: &'a str,
    key: &'a str,
    value: &'a toml::Value,
}

impl Value<'_> {
    fn bad(&self, expected: &'static str) -> ProfileError {
        ProfileError::BadValue {
            key: format!("{}.{}", self.section, self.key),
            expected,
        }
    }

    fn str(&self) -> Result<&str, ProfileError> {
        self.value.as_str().ok_or_else(|| self.bad("a string"))
    }

    fn bool(&self) -> Result<bool, ProfileError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.bad("true or false"))
    }

    fn int(&self, min: i64, max: i64) -> Result<i64, ProfileError> {
        match self.value.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.bad("an integer in the allowed range")),
        }
    }

    fn u32(&self) -> Result<u32, ProfileError> {
        Ok(self.int(0, u32::MAX as i64)? as u32)
    }

    fn usize(&self) -> Result<usize, ProfileError> {
        Ok(self.int(0, i64::MAX)? as usize)
    }

    fn millis(&self) -> Result<Duration, ProfileError> {
        Ok(Duration::from_millis(self.int(0, i64::MAX)? as u64))
    }

    /// A duration that can be switched off, spelt 0.
    fn millis_or_off(&self) -> Result<Option<Duration>, ProfileError> {
        Ok(Some(self.millis()?).filter(|d| !d.is_zero()))
    }

    /// A timeout that cannot be off. 0 is refused rather than taken literally:
    /// elsewhere 0 means "off", and a zero timeout would instead fire on every
    /// connection at once.
    fn nonzero_millis(&self) -> Result<Duration, ProfileError> {
        match self.value.as_integer() {
            Some(ms) if ms >= 1 => Ok(Duration::from_millis(ms as u64)),
            _ => Err(self.bad("a duration of at least 1 ms")),
        }
    }
}

#[cfg(test)]
mod tests {
    use ringrpc_codec::server::Config as CodecConfig;

    use super::*;

    #[test]
    fn the_default_profile_states_the_defaults() {
        // The file documents every default; if a default changes in code and
        // not in the file (or the reverse), this fails. Every field is spelt
        // out, each away from its default, so that a knob added to either
        // config without a key in default.toml fails to compile here first.
        let base = EngineConfig {
            backend: Backend::Uring,
            ..EngineConfig::default()
        };
        let default = CodecConfig::default();
        let (max_header_list_size, max_frame_size, max_concurrent_streams) =
            (262_144, 32_768, default.max_concurrent_streams + 1);
        let changed = EngineConfig {
            workers: base.workers + 3,
            cores: vec![0],
            pin_workers: !base.pin_workers,
            backend: Backend::Epoll,
            ring_entries: base.ring_entries * 2,
            ring_coop_taskrun: !base.ring_coop_taskrun,
            ring_sqpoll_idle: Some(Duration::from_millis(1)),
            read_buffer_size: base.read_buffer_size + 1,
            write_high_water: base.write_high_water + 1,
            stream_send_high_water: base.stream_send_high_water + 1,
            shutdown_grace: base.shutdown_grace + Duration::from_millis(1),
            backlog: base.backlog + 1,
            max_connections_per_worker: Some(1),
            response_compression: Some(Encoding::Zstd),
            max_send_message_size: base.max_send_message_size + 1,
            codec: CodecConfig {
                max_concurrent_streams,
                initial_stream_window: default.initial_stream_window + 1,
                initial_connection_window: default.initial_connection_window + 1,
                max_frame_size,
                max_header_list_size,
                header_table_size: default.header_table_size + 1,
                // The derived limits follow what they derive from, so the
                // profile brings them back by rederiving them.
                max_continuation_frames: default_max_continuation_frames(
                    max_header_list_size,
                    max_frame_size,
                ),
                max_message_size: default.max_message_size + 1,
                max_partial_message_bytes: default.max_partial_message_bytes + 1,
                max_peer_resets: default.max_peer_resets + 1,
                max_error_resets: default.max_error_resets + 1,
                max_pending_control_frames: default.max_pending_control_frames + 1,
                max_empty_frames: default.max_empty_frames + 1,
                max_new_streams_per_recv: max_concurrent_streams * 2,
                handshake_timeout: default.handshake_timeout + Duration::from_millis(1),
                keepalive_time: None,
                keepalive_timeout: default.keepalive_timeout + Duration::from_millis(1),
                min_ping_interval: default.min_ping_interval + Duration::from_millis(1),
                permit_ping_without_stream: !default.permit_ping_without_stream,
                max_ping_strikes: default.max_ping_strikes + 1,
                max_connection_idle: Some(Duration::from_millis(1)),
                max_connection_age: Some(Duration::from_millis(1)),
                max_connection_age_grace: Some(Duration::from_millis(1)),
                send_stall_timeout: default.send_stall_timeout + Duration::from_millis(1),
            },
        };
        assert_ne!(changed.codec.keepalive_time, base.codec.keepalive_time);
        assert_ne!(
            changed.codec.max_continuation_frames,
            base.codec.max_continuation_frames
        );
        assert_eq!(changed.with_profile(Profile::Default), base);
    }

    #[test]
    fn every_built_in_profile_applies() {
        for profile in Profile::ALL {
            let mut config = EngineConfig::default();
            config
                .apply_profile_str(profile.text())
                .unwrap_or_else(|e| panic!("{}: {e}", profile.name()));
            assert_eq!(Profile::from_name(profile.name()), Some(profile));
        }
        let many = EngineConfig::default().with_profile(Profile::ManyConnections);
        assert!(many.read_buffer_size < EngineConfig::default().read_buffer_size);
        assert!(many.codec.max_connection_idle.is_some());
        assert!(many.codec.keepalive_time < EngineConfig::default().codec.keepalive_time);
        let throughput = EngineConfig::default().with_profile(Profile::Throughput);
        assert!(throughput.codec.initial_stream_window > many.codec.initial_stream_window);
    }

    #[test]
    fn a_profile_changes_only_what_it_names() {
        let mut config = EngineConfig::default();
        let before = config.clone();
        config
            .apply_profile_str("[buffers]\nread_buffer_size = 4096\n[uring]\nsqpoll_idle_ms = 50\n")
            .unwrap();
        assert_eq!(config.read_buffer_size, 4096);
        assert_eq!(config.ring_sqpoll_idle, Some(Duration::from_millis(50)));
        assert_eq!(
            EngineConfig {
                read_buffer_size: before.read_buffer_size,
                ring_sqpoll_idle: None,
                ..config
            },
            before
        );
    }

    #[test]
    fn mistakes_are_errors_and_change_nothing() {
        let mut config = EngineConfig::default();
        let before = config.clone();
        let cases = [
            (
                "[buffers]\nread_buffer_sise = 4096\n",
                "unknown profile key `buffers.read_buffer_sise`",
            ),
            ("[engine]\nbackend = \"kqueue\"\n", "`engine.backend`"),
            ("[http2]\nmax_frame_size = 100\n", "`http2.max_frame_size`"),
            (
                "[http2]\nmax_concurrent_streams = -1\n",
                "`http2.max_concurrent_streams`",
            ),
            ("[engine]\npin_workers = 1\n", "`engine.pin_workers`"),
            ("[engine\n", "not valid TOML"),
            ("workers = 2\n", "unknown profile key `workers`"),
            // The first key is fine, the second is not: neither is applied.
            (
                "[buffers]\nwrite_high_water = 1\nstream_send_high_water = \"big\"\n",
                "a",
            ),
        ];
        for (text, expected) in cases {
            let error = config.apply_profile_str(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert_eq!(config, before, "{text:?} changed the configuration");
        }
    }

    /// A config change a test case starts from or expects.
    type Edit = fn(&mut EngineConfig);

    #[test]
    fn lifecycle_and_partial_message_keys_are_applied() {
        fn ms(millis: u64) -> Duration {
            Duration::from_millis(millis)
        }
        fn unchanged(_: &mut EngineConfig) {}
        // Whatever `from` leaves, the text must turn into what `expect` makes
        // of it, and change nothing else.
        let cases: [(&str, Edit, Edit); 17] = [
            ("[lifecycle]\nkeepalive_time_ms = 60000\n", unchanged, |c| {
                c.codec.keepalive_time = Some(ms(60_000))
            }),
            ("[lifecycle]\nkeepalive_time_ms = 0\n", unchanged, |c| {
                c.codec.keepalive_time = None
            }),
            (
                "[lifecycle]\nkeepalive_timeout_ms = 5000\n",
                unchanged,
                |c| c.codec.keepalive_timeout = ms(5000),
            ),
            (
                "[lifecycle]\nmin_ping_interval_ms = 10000\n",
                unchanged,
                |c| c.codec.min_ping_interval = ms(10_000),
            ),
            ("[lifecycle]\nmin_ping_interval_ms = 0\n", unchanged, |c| {
                c.codec.min_ping_interval = Duration::ZERO
            }),
            (
                "[lifecycle]\npermit_ping_without_stream = true\n",
                unchanged,
                |c| c.codec.permit_ping_without_stream = true,
            ),
            ("[lifecycle]\nmax_ping_strikes = 0\n", unchanged, |c| {
                c.codec.max_ping_strikes = 0
            }),
            (
                "[lifecycle]\nmax_connection_idle_ms = 300000\n",
                unchanged,
                |c| c.codec.max_connection_idle = Some(ms(300_000)),
            ),
            (
                "[lifecycle]\nmax_connection_idle_ms = 0\n",
                |c| c.codec.max_connection_idle = Some(ms(1)),
                |c| c.codec.max_connection_idle = None,
            ),
            (
                "[lifecycle]\nmax_connection_age_ms = 3600000\n",
                unchanged,
                |c| c.codec.max_connection_age = Some(ms(3_600_000)),
            ),
            (
                "[lifecycle]\nmax_connection_age_ms = 0\n",
                |c| c.codec.max_connection_age = Some(ms(1)),
                |c| c.codec.max_connection_age = None,
            ),
            (
                "[lifecycle]\nmax_connection_age_grace_ms = 30000\n",
                unchanged,
                |c| c.codec.max_connection_age_grace = Some(ms(30_000)),
            ),
            (
                "[lifecycle]\nmax_connection_age_grace_ms = 0\n",
                |c| c.codec.max_connection_age_grace = Some(ms(1)),
                |c| c.codec.max_connection_age_grace = None,
            ),
            ("[lifecycle]\nsend_stall_timeout_ms = 1\n", unchanged, |c| {
                c.codec.send_stall_timeout = ms(1)
            }),
            (
                "[lifecycle]\nmax_connections_per_worker = 5000\n",
                unchanged,
                |c| c.max_connections_per_worker = Some(5000),
            ),
            (
                "[lifecycle]\nmax_connections_per_worker = 0\n",
                |c| c.max_connections_per_worker = Some(7),
                |c| c.max_connections_per_worker = None,
            ),
            (
                "[abuse]\nmax_partial_message_bytes = 8388608\n",
                unchanged,
                |c| c.codec.max_partial_message_bytes = 8 << 20,
            ),
        ];
        for (text, from, expect) in cases {
            let mut config = EngineConfig::default();
            from(&mut config);
            let mut expected = config.clone();
            expect(&mut expected);
            assert_ne!(config, expected, "{text:?} would test nothing");
            config
                .apply_profile_str(text)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(config, expected, "{text:?}");
        }
    }

    #[test]
    fn bad_lifecycle_and_partial_message_values_are_refused() {
        let cases = [
            (
                "[lifecycle]\nkeepalive_time_ms = -1\n",
                "lifecycle.keepalive_time_ms",
            ),
            (
                "[lifecycle]\nkeepalive_time_ms = \"2h\"\n",
                "lifecycle.keepalive_time_ms",
            ),
            // 0 is "off" elsewhere; as a timeout it would close every connection.
            (
                "[lifecycle]\nkeepalive_timeout_ms = 0\n",
                "lifecycle.keepalive_timeout_ms",
            ),
            (
                "[lifecycle]\nsend_stall_timeout_ms = 0\n",
                "lifecycle.send_stall_timeout_ms",
            ),
            (
                "[lifecycle]\nsend_stall_timeout_ms = -60000\n",
                "lifecycle.send_stall_timeout_ms",
            ),
            (
                "[lifecycle]\nmin_ping_interval_ms = 1.5\n",
                "lifecycle.min_ping_interval_ms",
            ),
            (
                "[lifecycle]\npermit_ping_without_stream = \"yes\"\n",
                "lifecycle.permit_ping_without_stream",
            ),
            (
                "[lifecycle]\nmax_ping_strikes = 4294967296\n",
                "lifecycle.max_ping_strikes",
            ),
            (
                "[lifecycle]\nmax_connection_idle_ms = true\n",
                "lifecycle.max_connection_idle_ms",
            ),
            (
                "[lifecycle]\nmax_connection_age_ms = -5\n",
                "lifecycle.max_connection_age_ms",
            ),
            (
                "[lifecycle]\nmax_connection_age_grace_ms = \"forever\"\n",
                "lifecycle.max_connection_age_grace_ms",
            ),
            (
                "[lifecycle]\nmax_connections_per_worker = -1\n",
                "lifecycle.max_connections_per_worker",
            ),
            (
                "[abuse]\nmax_partial_message_bytes = -1\n",
                "abuse.max_partial_message_bytes",
            ),
        ];
        let mut config = EngineConfig::default();
        let before = config.clone();
        for (text, expected_key) in cases {
            match config.apply_profile_str(text) {
                Err(ProfileError::BadValue { key, .. }) => {
                    assert_eq!(key, expected_key, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
            assert_eq!(config, before, "{text:?} changed the configuration");
        }
        // A knob in the wrong section is unknown there.
        let error = config
            .apply_profile_str("[http2]\nkeepalive_time_ms = 1000\n")
            .unwrap_err();
        assert!(
            matches!(&error, ProfileError::UnknownKey(key) if key == "http2.keepalive_time_ms"),
            "{error:?}"
        );
    }

    #[test]
    fn derived_limits_follow_what_they_derive_from() {
        let mut config = EngineConfig::default();
        config
            .apply_profile_str(
                "[http2]\nmax_concurrent_streams = 1000\nmax_header_list_size = 65536\n",
            )
            .unwrap();
        assert_eq!(config.codec.max_new_streams_per_recv, 2000);
        assert_eq!(
            config.codec.max_continuation_frames,
            default_max_continuation_frames(65536, config.codec.max_frame_size)
        );
        // A limit the profile names, or one already set by hand, stays put.
        let mut config = EngineConfig::default();
        config.codec.max_continuation_frames = 7;
        config
            .apply_profile_str(
                "[http2]\nmax_concurrent_streams = 10\nmax_header_list_size = 65536\n\
                 [abuse]\nmax_new_streams_per_recv = 64\n",
            )
            .unwrap();
        assert_eq!(config.codec.max_new_streams_per_recv, 64);
        assert_eq!(config.codec.max_continuation_frames, 7);
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let mut config = EngineConfig::default();
        let error = config
            .apply_profile_path("/nonexistent/ringrpc-profile.toml")
            .unwrap_err();
        assert!(matches!(error, ProfileError::Read { .. }));
        assert!(error
            .to_string()
            .contains("/nonexistent/ringrpc-profile.toml"));
    }
}
