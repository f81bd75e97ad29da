//! The timers of a connection's life after the handshake, and the client PING
//! policy: keepalive PINGs, idle and age limits, and the deadline of a drain's PING.
//!
//! Everything here runs on the `now` the engine passes in; nothing reads a clock.
//! The deadlines are derived from a few instants rather than stored per timer,
//! so that input (which moves the keepalive deadline on every read) costs one
//! store and no timer bookkeeping: the engine may wake at a deadline that has
//! since moved, and [`Connection::handle_timeout`] then simply finds nothing due.

use std::time::{Duration, Instant};

use super::{Connection, Control, Phase, DRAIN_PING};
use crate::error::{Error, Reason};
use crate::frame::StreamId;

/// The payload of our keepalive PING.
pub(super) const KEEPALIVE_PING: [u8; 8] = *b"ringkal\0";

/// Without open streams (and without `permit_ping_without_stream`), the shortest
/// interval between client PINGs that earns no strike: a client with nothing in
/// flight needs no keepalive faster than the server's own default.
pub(super) const IDLE_PING_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);

/// GOAWAY debug data when the client pings too often; gRPC clients look for
/// exactly this text and double their keepalive interval.
pub(super) const TOO_MANY_PINGS: &str = "too_many_pings";

/// Our keepalive PING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeepalivePing {
    /// None outstanding: the next goes out `keepalive_time` after the last input.
    NotSent,
    /// Sent (or queued); without its ACK by `due` the connection is closed.
    /// `None`: a timeout too large to represent, so never.
    Sent { due: Option<Instant> },
}

/// The lifecycle state of one connection.
#[derive(Debug)]
pub(super) struct Lifecycle {
    /// When bytes last arrived (the connection's start before any did).
    last_recv: Instant,
    keepalive: KeepalivePing,
    /// When the client last sent a PING (not an ACK).
    last_client_ping: Option<Instant>,
    /// PINGs that broke the policy since the count was last cleared.
    ping_strikes: u32,
    /// We wrote HEADERS or DATA since the client's last PING: its next PING is
    /// free and clears the strikes.
    sent_since_ping: bool,
    /// Since when the connection has had no streams; `None` while it has some.
    idle_since: Option<Instant>,
    /// When `max_connection_age` is reached; `None` without one or once passed.
    age_due: Option<Instant>,
    /// When the grace after the age GOAWAY ends and the connection is closed.
    age_grace_due: Option<Instant>,
    /// The drain PING was written; without its ACK by then the final GOAWAY goes
    /// out anyway.
    drain_ack_due: Option<Instant>,
    /// Debug data of the drain's GOAWAY frames (`max_idle`, `max_age` or none).
    drain_debug: &'static str,
}

impl Lifecycle {
    /// The state of a connection accepted at `now` whose age limit is `max_age`.
    pub(super) fn new(now: Instant, max_age: Option<Duration>) -> Lifecycle {
        Lifecycle {
            last_recv: now,
            keepalive: KeepalivePing::NotSent,
            last_client_ping: None,
            ping_strikes: 0,
            sent_since_ping: false,
            idle_since: Some(now),
            age_due: max_age.and_then(|age| now.checked_add(age)),
            age_grace_due: None,
            drain_ack_due: None,
            drain_debug: "",
        }
    }
}

/// The earlier of two optional deadlines.
pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|deadline| now >= deadline)
}

impl Connection {
    /// The next lifecycle deadline. Cost: a few comparisons, no allocation.
    pub(super) fn lifecycle_deadline(&self) -> Option<Instant> {
        let life = &self.lifecycle;
        let mut next = match self.phase {
            Phase::Closed => return None,
            // The handshake deadline covers these.
            Phase::Preface { .. } | Phase::FirstSettings => None,
            Phase::Open | Phase::DrainAnnounced | Phase::Draining => match life.keepalive {
                KeepalivePing::Sent { due } => due,
                KeepalivePing::NotSent => self
                    .config
                    .keepalive_time
                    .and_then(|time| life.last_recv.checked_add(time)),
            },
        };
        if self.phase == Phase::Open && self.streams.len() == 0 {
            let idle = self.config.max_connection_idle;
            next = earliest(
                next,
                life.idle_since
                    .zip(idle)
                    .and_then(|(since, idle)| since.checked_add(idle)),
            );
        }
        if self.phase == Phase::DrainAnnounced {
            next = earliest(next, life.drain_ack_due);
        }
        earliest(earliest(next, life.age_due), life.age_grace_due)
    }

    /// Fires whatever lifecycle deadline has passed at `now`.
    pub(super) fn lifecycle_timeout(&mut self, now: Instant) {
        if matches!(
            self.phase,
            Phase::Open | Phase::DrainAnnounced | Phase::Draining
        ) {
            match self.lifecycle.keepalive {
                KeepalivePing::Sent { due: deadline } if due(deadline, now) => {
                    self.connection_error(Error::connection(
                        Reason::NO_ERROR,
                        "keepalive ping not acknowledged",
                    ));
                    return;
                }
                KeepalivePing::Sent { .. } => {}
                KeepalivePing::NotSent => {
                    let time = self.config.keepalive_time;
                    let quiet_until =
                        time.and_then(|time| self.lifecycle.last_recv.checked_add(time));
                    if due(quiet_until, now) {
                        self.control.push_back(Control::Ping(KEEPALIVE_PING));
                        self.lifecycle.keepalive = KeepalivePing::Sent {
                            due: now.checked_add(self.config.keepalive_timeout),
                        };
                    }
                }
            }
        }
        if due(self.lifecycle.age_due, now) {
            self.lifecycle.age_due = None;
            self.lifecycle.age_grace_due = self
                .config
                .max_connection_age_grace
                .and_then(|grace| now.checked_add(grace));
            self.start_drain("max_age");
        }
        if due(self.lifecycle.age_grace_due, now) {
            self.lifecycle.age_grace_due = None;
            self.connection_error(Error::connection(
                Reason::NO_ERROR,
                "max_age grace period over",
            ));
            return;
        }
        if self.phase == Phase::Open && self.streams.len() == 0 {
            let idle = self.config.max_connection_idle;
            let idle_until = self
                .lifecycle
                .idle_since
                .zip(idle)
                .and_then(|(since, idle)| since.checked_add(idle));
            if due(idle_until, now) {
                self.start_drain("max_idle");
            }
        }
        if self.phase == Phase::DrainAnnounced && due(self.lifecycle.drain_ack_due, now) {
            self.announce_last_stream();
        }
    }

    /// Bytes arrived at `now`: the peer is alive.
    pub(super) fn note_recv(&mut self, now: Instant) {
        self.lifecycle.last_recv = now;
    }

    /// Starts or stops the idle clock as the connection loses its last stream or
    /// gains one. Called from every input and output that carries a `now`.
    pub(super) fn track_idle(&mut self, now: Instant) {
        if self.streams.len() == 0 {
            self.lifecycle.idle_since.get_or_insert(now);
        } else {
            self.lifecycle.idle_since = None;
        }
    }

    /// `poll_transmit` wrote HEADERS or DATA: the client may answer with a PING.
    pub(super) fn note_stream_frames_sent(&mut self) {
        self.lifecycle.sent_since_ping = true;
    }

    /// `poll_transmit` wrote a PING of ours at `now`.
    pub(super) fn note_ping_sent(&mut self, payload: [u8; 8], now: Instant) {
        if payload == DRAIN_PING {
            self.lifecycle.drain_ack_due = now.checked_add(self.config.keepalive_timeout);
        }
    }

    /// The client acknowledged a PING of ours.
    pub(super) fn note_ping_ack(&mut self, payload: [u8; 8]) {
        if payload == KEEPALIVE_PING {
            self.lifecycle.keepalive = KeepalivePing::NotSent;
        }
    }

    /// gRPC's keepalive enforcement (gRFC A8, grpc-go's `handlePing`): a PING
    /// sooner than the policy allows earns a strike, one strike more than
    /// `max_ping_strikes` ends the connection with ENHANCE_YOUR_CALM
    /// `too_many_pings`. The PING arrived with the current input.
    pub(super) fn check_ping_policy(&mut self) -> Result<(), Error> {
        let now = self.lifecycle.last_recv;
        let previous = self.lifecycle.last_client_ping.replace(now);
        if std::mem::take(&mut self.lifecycle.sent_since_ping) {
            self.lifecycle.ping_strikes = 0;
            return Ok(());
        }
        let Some(previous) = previous else {
            return Ok(());
        };
        let interval = if self.streams.len() == 0 && !self.config.permit_ping_without_stream {
            self.config.min_ping_interval.max(IDLE_PING_INTERVAL)
        } else {
            self.config.min_ping_interval
        };
        let too_soon = previous
            .checked_add(interval)
            .is_none_or(|allowed| now < allowed);
        if too_soon {
            self.lifecycle.ping_strikes += 1;
            if self.lifecycle.ping_strikes > self.config.max_ping_strikes {
                return Err(Error::connection(Reason::ENHANCE_YOUR_CALM, TOO_MANY_PINGS));
            }
        }
        Ok(())
    }

    /// The first step of a graceful drain: GOAWAY(2^31 - 1) and a PING, or, before
    /// the client's preface, GOAWAY(0) and close.
    pub(super) fn start_drain(&mut self, debug: &'static str) {
        match self.phase {
            Phase::Preface { .. } => {
                self.control
                    .push_back(Control::GoAway(StreamId::ZERO, Reason::NO_ERROR, debug));
                self.phase = Phase::Closed;
            }
            Phase::FirstSettings | Phase::Open => {
                self.control
                    .push_back(Control::GoAway(StreamId::MAX, Reason::NO_ERROR, debug));
                self.control.push_back(Control::Ping(DRAIN_PING));
                self.lifecycle.drain_debug = debug;
                self.phase = Phase::DrainAnnounced;
            }
            Phase::DrainAnnounced | Phase::Draining | Phase::Closed => {}
        }
    }

    /// The second step: the client has seen GOAWAY(2^31 - 1) (its PING ACK came,
    /// or we stopped waiting for it), so every stream it opened before is in our
    /// hands and the final GOAWAY can name the last one.
    pub(super) fn announce_last_stream(&mut self) {
        self.phase = Phase::Draining;
        self.go_away_last_id = self.max_client_id;
        self.control.push_back(Control::GoAway(
            self.max_client_id,
            Reason::NO_ERROR,
            self.lifecycle.drain_debug,
        ));
    }
}
