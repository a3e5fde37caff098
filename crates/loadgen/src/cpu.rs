//! CPU time of a process from Linux `/proc/<pid>/stat`, so that the report can say how much of
//! the machine the load tool and the server each took. Elsewhere the figures are simply absent.

use std::time::Duration;

/// The unit of the times in `/proc/<pid>/stat`: `USER_HZ`, which the kernel fixes at 100 for
/// everything it shows to user space.
const TICKS_PER_SEC: u64 = 100;

/// User plus system CPU time of process `pid` (or `"self"`) and all its threads so far.
#[must_use]
pub fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // proc(5): the command name is in parentheses and may hold spaces; fields count on from the
    // last `)`, where field 3 (state) comes first. utime and stime are fields 14 and 15.
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}

/// CPU time of this process and, optionally, of the server over a window.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    server_pid: Option<u32>,
    own_before: Option<Duration>,
    server_before: Option<Duration>,
}

impl Meter {
    /// Starts the window now.
    #[must_use]
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            own_before: process_cpu("self"),
            server_before: server_pid.and_then(|pid| process_cpu(&pid.to_string())),
        }
    }

    /// The CPU time this process and the server took since [`Meter::start`], where `/proc` can
    /// say.
    #[must_use]
    pub fn stop(self) -> (Option<Duration>, Option<Duration>) {
        let own = process_cpu("self")
            .zip(self.own_before)
            .map(|(after, before)| after.saturating_sub(before));
        let server = self
            .server_pid
            .and_then(|pid| process_cpu(&pid.to_string()))
            .zip(self.server_before)
            .map(|(after, before)| after.saturating_sub(before));
        (own, server)
    }
}
