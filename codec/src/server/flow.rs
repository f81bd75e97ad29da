//! Flow-control windows (RFC 9113 §5.2, §6.9).
//!
//! A send window is signed because it can legally go negative: when the client
//! lowers SETTINGS_INITIAL_WINDOW_SIZE, every open stream's window shrinks by the
//! difference, even below what was already sent (§6.9.2). Example: window 65,535,
//! we send 60,000, the client sets the initial size to 16,384: the window is now
//! 16,384 - 65,535 + 5,535 = -43,616, and we may not send on that stream until
//! WINDOW_UPDATEs bring it above zero again.

use crate::frame::MAX_WINDOW_SIZE;

/// The window we may send into, as granted by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendWindow(i64);

impl SendWindow {
    pub(crate) fn new(size: u32) -> SendWindow {
        SendWindow(size as i64)
    }

    /// Bytes we may send now.
    pub(crate) fn available(self) -> usize {
        self.0.max(0) as usize
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.0 -= n as i64;
    }

    /// A WINDOW_UPDATE or a SETTINGS_INITIAL_WINDOW_SIZE change. Fails when the
    /// window would exceed 2^31 - 1, which the caller answers with FLOW_CONTROL_ERROR.
    pub(crate) fn adjust(&mut self, delta: i64) -> Result<(), ()> {
        let next = self.0 + delta;
        if next > MAX_WINDOW_SIZE as i64 {
            return Err(());
        }
        self.0 = next;
        Ok(())
    }
}

/// The window the peer may send into, and the credit the application has returned
/// but we have not yet announced with WINDOW_UPDATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecvWindow {
    /// What the peer may still send.
    available: u32,
    /// Released by the application, not yet announced.
    unannounced: u32,
    /// The window size we aim to keep open.
    target: u32,
}

impl RecvWindow {
    pub(crate) fn new(target: u32) -> RecvWindow {
        RecvWindow {
            available: target,
            unannounced: 0,
            target,
        }
    }

    /// A window that starts at the RFC default and is grown to `target` by an
    /// immediate WINDOW_UPDATE (the connection window, which SETTINGS cannot set).
    pub(crate) fn growing_from(initial: u32, target: u32) -> RecvWindow {
        RecvWindow {
            available: initial,
            unannounced: target.saturating_sub(initial),
            target,
        }
    }

    /// The peer sent `n` flow-controlled bytes; fails when that exceeds the window.
    pub(crate) fn consume(&mut self, n: u32) -> Result<(), ()> {
        self.available = self.available.checked_sub(n).ok_or(())?;
        Ok(())
    }

    /// The application is done with `n` bytes: they may be sent again.
    pub(crate) fn release(&mut self, n: u32) {
        self.unannounced = self.unannounced.saturating_add(n);
    }

    /// What the peer may send plus what was released but not yet announced: equal to
    /// the target whenever no received data is held.
    #[cfg(test)]
    pub(crate) fn credit(&self) -> u64 {
        self.available as u64 + self.unannounced as u64
    }

    /// Everything not yet announced, whatever the batching rule says: for the first
    /// WINDOW_UPDATE, which grows the window to its target at once.
    pub(crate) fn take_all(&mut self) -> Option<u32> {
        let increment = self.unannounced.min(MAX_WINDOW_SIZE - self.available);
        if increment == 0 {
            return None;
        }
        self.available += increment;
        self.unannounced -= increment;
        Some(increment)
    }

    /// The increment to announce now, if enough credit has accumulated. Announcing
    /// only once half the window is free keeps WINDOW_UPDATEs to about two per window
    /// of data instead of one per message.
    pub(crate) fn take_update(&mut self) -> Option<u32> {
        let pending = self.unannounced;
        if pending == 0 || (pending < self.target / 2 && self.available >= self.target / 2) {
            return None;
        }
        // Never open beyond 2^31 - 1 (§6.9.1), whatever the bookkeeping says.
        let increment = pending.min(MAX_WINDOW_SIZE - self.available);
        if increment == 0 {
            return None;
        }
        self.available += increment;
        self.unannounced -= increment;
        Some(increment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_window_goes_negative_and_recovers() {
        let mut w = SendWindow::new(65_535);
        w.consume(60_000);
        w.adjust(16_384 - 65_535).unwrap();
        assert_eq!(w, SendWindow(-43_616));
        assert_eq!(w.available(), 0);
        w.adjust(50_000).unwrap();
        assert_eq!(w.available(), 6_384);
        assert!(w.adjust(MAX_WINDOW_SIZE as i64).is_err());
    }

    #[test]
    fn recv_window_announces_in_batches() {
        let mut w = RecvWindow::new(1000);
        w.consume(400).unwrap();
        assert!(w.consume(601).is_err());
        w.release(100);
        assert_eq!(
            w.take_update(),
            None,
            "small release with half the window still open"
        );
        w.release(400);
        assert_eq!(w.take_update(), Some(500));
        assert_eq!(w.take_update(), None);
        let mut conn = RecvWindow::growing_from(65_535, 1 << 20);
        assert_eq!(conn.take_update(), Some((1 << 20) - 65_535));
        let mut small = RecvWindow::growing_from(65_535, 100_000);
        assert_eq!(small.take_update(), None, "under half the target: batched");
        assert_eq!(small.take_all(), Some(100_000 - 65_535));
        assert_eq!(small.take_all(), None);
    }
}
