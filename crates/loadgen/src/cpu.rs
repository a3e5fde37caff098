//! CPU time of a process from Linux `/proc/<pid>/stat`, and of the whole machine from
//! `/proc/stat`, so that the report can say how much of the machine the load tool and the server
//! each took, and how much went elsewhere (the database's processes, the kernel, anything else
//! running). Elsewhere the figures are simply absent.

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

/// Busy CPU time of the whole machine so far, summed over its cores: everything but idle and
/// waiting for I/O (proc(5), the `cpu` line of `/proc/stat`).
#[must_use]
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some(Duration::from_millis(
        total.saturating_sub(idle) * 1000 / TICKS_PER_SEC,
    ))
}

/// The CPU time taken over a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// By this process.
    pub own: Option<Duration>,
    /// By the server, when its process id was given.
    pub server: Option<Duration>,
    /// By the whole machine.
    pub machine: Option<Duration>,
}

/// CPU time of this process, of the whole machine and, optionally, of the server over a window.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    server_pid: Option<u32>,
    before: Usage,
}

impl Meter {
    /// Starts the window now.
    #[must_use]
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            before: Self::now(server_pid),
        }
    }

    fn now(server_pid: Option<u32>) -> Usage {
        Usage {
            own: process_cpu("self"),
            server: server_pid.and_then(|pid| process_cpu(&pid.to_string())),
            machine: machine_busy(),
        }
    }

    /// The CPU time this process, the server and the machine took since [`Meter::start`],
    /// where `/proc` can say.
    #[must_use]
    pub fn stop(self) -> Usage {
        let after = Self::now(self.server_pid);
        let since = |after: Option<Duration>, before: Option<Duration>| {
            after
                .zip(before)
                .map(|(after, before)| after.saturating_sub(before))
        };
        Usage {
            own: since(after.own, self.before.own),
            server: since(after.server, self.before.server),
            machine: since(after.machine, self.before.machine),
        }
    }
}
