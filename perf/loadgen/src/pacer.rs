//! Waiting until an instant with microsecond precision, for open-loop sending.
//!
//! tokio's timer rounds deadlines up to whole milliseconds; an open loop that
//! measures latency from each request's intended send time would add that
//! rounding to every latency. A timerfd (an hrtimer, nanosecond resolution)
//! registered with the runtime's reactor wakes the task close to the instant,
//! and yielding covers the last few microseconds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The timerfd wakes the task this much early; the rest is spent yielding to
/// the runtime (each yield also polls I/O), which absorbs wake-up latency.
const EARLY: Duration = Duration::from_micros(50);

/// Sleeps until `t` when the timer cannot be used: tokio's rounding is
/// covered by yielding through the last two milliseconds.
const COARSE_EARLY: Duration = Duration::from_millis(2);

/// One task's precise timer: a timerfd on the current runtime's reactor.
///
/// Cost per wait: one `timerfd_settime` and one `read`, plus a few yields.
#[derive(Debug)]
pub struct Pacer {
    timer: Option<AsyncFd<OwnedFd>>,
}

impl Pacer {
    /// A pacer for the calling task. Must be created inside a runtime with I/O
    /// enabled. Without a timerfd (it cannot be created) the pacer still works,
    /// by sleeping on tokio's timer and yielding for the last milliseconds.
    pub fn new() -> Pacer {
        Pacer {
            timer: timerfd().ok(),
        }
    }

    /// Waits until `t`; returns at once if it has passed.
    pub async fn wait_until(&mut self, t: Instant) {
        let now = Instant::now();
        if t <= now {
            return;
        }
        match &self.timer {
            Some(timer) if t - now > EARLY && arm(timer, t - now - EARLY).is_ok() => {
                wait_expired(timer).await;
            }
            None if t - now > COARSE_EARLY => {
                tokio::time::sleep_until((t - COARSE_EARLY).into()).await;
            }
            _ => {}
        }
        while Instant::now() < t {
            tokio::task::yield_now().await;
        }
    }
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new()
    }
}

fn timerfd() -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: timerfd_create has no memory preconditions; a non-negative
    // result is a new descriptor that we own.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor owned by nobody else; the
    // `OwnedFd` keeps it open, and its `as_raw_fd` unchanged, for as long as
    // the `AsyncFd` holds it.
    unsafe {
        AsyncFd::register_with_interest(OwnedFd::from_raw_fd(fd), Interest::READABLE)
            .map_err(|e| e.into_parts().1)
    }
}

/// Arms `timer` to expire once, `after` from now.
fn arm(timer: &AsyncFd<OwnedFd>, after: Duration) -> io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: after.as_secs() as libc::time_t,
            // A zero it_value would disarm the timer.
            tv_nsec: after.subsec_nanos().max(1) as libc::c_long,
        },
    };
    // SAFETY: the descriptor is a timerfd we own; `spec` is a valid itimerspec
    // and the old value is not requested.
    let result =
        unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

async fn wait_expired(timer: &AsyncFd<OwnedFd>) {
    loop {
        let Ok(mut ready) = timer.readable().await else {
            return;
        };
        let mut expirations = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer from our timerfd.
        let read = ready.try_io(|fd| {
            let n = unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        match read {
            Ok(_) => return,
            // Readiness was stale: wait again.
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_instant_and_not_much_longer() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut pacer = Pacer::new();
            assert!(pacer.timer.is_some(), "timerfd available on Linux");
            let mut late = Vec::new();
            for _ in 0..20 {
                let t = Instant::now() + Duration::from_micros(700);
                pacer.wait_until(t).await;
                let now = Instant::now();
                assert!(now >= t);
                late.push(now - t);
            }
            late.sort();
            // The median wake-up must beat tokio's millisecond timer by far,
            // even on a busy machine.
            assert!(late[10] < Duration::from_micros(500), "{late:?}");
            // A past instant returns at once.
            pacer
                .wait_until(Instant::now() - Duration::from_millis(1))
                .await;
        });
    }
}
