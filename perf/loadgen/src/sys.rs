//! The few OS facilities the benchmarks need: the open-file limit, thread ids
//! and per-thread CPU time.

use std::io;
use std::time::Duration;

/// Raises the soft limit on open files to the hard limit and returns the new
/// soft limit, so a connection-count test is limited by the system and not by
/// a conservative default of 1024.
pub fn raise_fd_limit() -> io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// The kernel's id of the calling thread.
pub fn current_thread_id() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// CPU time (user + system) the thread `tid` of this process has used, from
/// `/proc/self/task/TID/stat`. Resolution is one clock tick (usually 10 ms),
/// so measure over seconds.
pub fn thread_cpu_time(tid: i32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: fields are
    // counted from the last ')'.
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc stat"))?;
    let mut fields = after_name.split_whitespace();
    // After the name come state (field 3) .. ; utime and stime are fields 14 and 15.
    let mut field = |n: usize| -> io::Result<u64> {
        fields
            .nth(n)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc stat"))
    };
    let utime = field(11)?;
    let stime = field(0)?;
    Ok(ticks_to_duration(utime + stime))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_cpu_time_grows_with_work() {
        let tid = current_thread_id();
        let before = thread_cpu_time(tid).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        // Spin until the kernel has charged at least one tick to this thread.
        while after == before && start.elapsed() < Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = thread_cpu_time(tid).unwrap();
        }
        assert!(after > before, "no CPU time charged in 5 s of spinning");
        // The charge cannot exceed the wall time spent, give or take a tick.
        assert!(after - before <= start.elapsed() + Duration::from_millis(20));
        assert!(thread_cpu_time(i32::MAX).is_err());
    }

    #[test]
    fn fd_limit_is_at_least_the_default() {
        assert!(raise_fd_limit().unwrap() >= 256);
    }
}
