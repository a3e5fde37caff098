//! The reports printed after a run: counts, throughput, latency percentiles (per step for a
//! flow), the client's own cost and CPU use, what the revocation check saw, and the failures by
//! kind with the first answer of each.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::cpu::Usage;
use crate::token::{Failure, Outcome, Tally};
use crate::{flow, introspect};

/// What `write` writes, as text.
fn text(write: impl FnOnce(&mut String) -> std::fmt::Result) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write(&mut out);
    out
}

/// The report of `outcome` as text.
#[must_use]
pub fn render(outcome: &Outcome) -> String {
    text(|out| write_report(out, outcome))
}

fn write_report(out: &mut String, outcome: &Outcome) -> std::fmt::Result {
    let Outcome {
        warmup,
        measured,
        window,
        cpu,
    } = outcome;
    let secs = window.as_secs_f64();
    write_counts(out, warmup, measured, secs)?;
    write_latency(
        out,
        measured,
        "latency of successful requests (send to last body byte, signing excluded):",
    )?;
    write_client_cost(out, measured, secs)?;
    write_cpu(out, cpu, secs)?;
    write_failures(out, &warmup.failures, &measured.failures)
}

/// The report of an `introspect` run as text.
#[must_use]
pub fn render_introspect(outcome: &introspect::Outcome) -> String {
    text(|out| write_introspect_report(out, outcome))
}

fn write_introspect_report(out: &mut String, outcome: &introspect::Outcome) -> std::fmt::Result {
    let introspect::Outcome {
        run,
        label,
        hot_set,
        revocation,
    } = outcome;
    let (warmup, measured) = (&run.warmup.answers, &run.measured.answers);
    let secs = run.window.as_secs_f64();
    write_counts(out, warmup, measured, secs)?;
    write_latency(
        out,
        measured,
        &format!("latency of right answers ({label}; send to last body byte):"),
    )?;
    if let Some(revoked) = revocation {
        let seen = run.warmup.revoked;
        let after = run.measured.revoked;
        writeln!(
            out,
            "revocation check: token #0 of the {hot_set} revoked at /revoke {:.2} s into the \
             measured window,",
            revoked.at.as_secs_f64()
        )?;
        match &revoked.failure {
            None => writeln!(
                out,
                "  answered 200 after {}; introspections of that token:",
                ms(Some(revoked.took))
            )?,
            Some(failure) => writeln!(
                out,
                "  FAILED after {} ({failure}); introspections of that token:",
                ms(Some(revoked.took))
            )?,
        }
        writeln!(
            out,
            "  active:true before the revocation was answered   {}",
            seen.active_before + after.active_before
        )?;
        writeln!(
            out,
            "  active:false while it was in flight              {}",
            after.inactive_across
        )?;
        writeln!(
            out,
            "  active:false, asked after it was answered         {}",
            after.inactive_after
        )?;
        writeln!(
            out,
            "  active:true, asked after it was answered (stale)  {}{}",
            after.active_after,
            if after.active_after == 0 && after.inactive_after > 0 {
                "  -> the revocation was seen at once"
            } else {
                ""
            }
        )?;
    }
    write_cpu(out, &run.cpu, secs)?;
    write_failures(out, &warmup.failures, &measured.failures)
}

/// Requests, successes, errors and throughput of the measured window, and how many were in the
/// warmup.
fn write_counts(out: &mut String, warmup: &Tally, measured: &Tally, secs: f64) -> std::fmt::Result {
    writeln!(
        out,
        "warmup:     {} requests, {} errors (not counted below)",
        warmup.requests,
        warmup.errors()
    )?;
    writeln!(out, "measured:   {secs:.2} s")?;
    writeln!(out, "  requests    {}", measured.requests)?;
    writeln!(out, "  successes   {}", measured.successes)?;
    writeln!(out, "  errors      {}", measured.errors())?;
    writeln!(
        out,
        "  throughput  {:.1} req/s (successes {:.1}/s)",
        per_sec(measured.requests, secs),
        per_sec(measured.successes, secs)
    )?;
    let protocols: Vec<String> = measured
        .versions
        .iter()
        .map(|(version, count)| format!("{version} ×{count}"))
        .collect();
    if !protocols.is_empty() {
        writeln!(out, "  protocol    {}", protocols.join(", "))?;
    }
    Ok(())
}

/// The latency percentiles of the measured window's successes, under `heading`.
fn write_latency(out: &mut String, measured: &Tally, heading: &str) -> std::fmt::Result {
    let mut latencies = measured.latencies.clone();
    latencies.sort_unstable();
    writeln!(out, "{heading}")?;
    match latencies.last() {
        Some(max) => writeln!(
            out,
            "  p50 {}  p90 {}  p99 {}  max {}",
            ms(percentile(&latencies, 50)),
            ms(percentile(&latencies, 90)),
            ms(percentile(&latencies, 99)),
            ms(Some(*max)),
        )?,
        None => writeln!(out, "  (no successful requests)")?,
    }
    write_histogram(out, &latencies)
}

/// The share of sorted `latencies` in each power-of-two bucket from 1/8 ms up, from the first
/// bucket that holds any to the last.
fn write_histogram(out: &mut String, latencies: &[Duration]) -> std::fmt::Result {
    if latencies.is_empty() {
        return Ok(());
    }
    let total = u64_to_f64(u64::try_from(latencies.len()).unwrap_or(u64::MAX));
    let mut buckets: Vec<(Duration, usize)> = Vec::new();
    let mut bound = Duration::from_micros(125);
    let mut below = 0;
    while below < latencies.len() {
        // The index of the first latency above the bound.
        let upto = latencies.partition_point(|l| *l <= bound);
        buckets.push((bound, upto - below));
        below = upto;
        bound *= 2;
    }
    let first = buckets.iter().position(|(_, n)| *n > 0).unwrap_or(0);
    let cells: Vec<String> = buckets
        .iter()
        .skip(first)
        .map(|(bound, n)| {
            let share = u64_to_f64(u64::try_from(*n).unwrap_or(u64::MAX)) * 100.0 / total;
            format!("\u{2264}{} {share:.1}%", ms_short(*bound))
        })
        .collect();
    for row in cells.chunks(6) {
        writeln!(out, "  {}", row.join("  "))?;
    }
    Ok(())
}

/// A bucket bound in milliseconds, without needless decimals.
fn ms_short(bound: Duration) -> String {
    let ms = bound.as_secs_f64() * 1e3;
    if ms >= 1.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms} ms")
    }
}

/// The CPU time of the load tool, the server, the rest and the whole machine over the measured
/// window, as cores.
fn write_cpu(out: &mut String, cpu: &Usage, secs: f64) -> std::fmt::Result {
    writeln!(
        out,
        "CPU during the measured window (from /proc; 1.00 = one core busy):"
    )?;
    writeln!(out, "  load tool   {}", cores(cpu.own, secs))?;
    match cpu.server {
        Some(_) => writeln!(out, "  server      {}", cores(cpu.server, secs))?,
        None => writeln!(out, "  server      (pass --server-pid to measure)")?,
    }
    if let (Some(machine), Some(own)) = (cpu.machine, cpu.own) {
        let rest = machine
            .saturating_sub(own)
            .saturating_sub(cpu.server.unwrap_or_default());
        writeln!(
            out,
            "  elsewhere   {} (the database's processes, the kernel, anything else running{})",
            cores(Some(rest), secs),
            if cpu.server.is_some() {
                ""
            } else {
                ", the server"
            }
        )?;
        let of = std::thread::available_parallelism()
            .map(|n| format!(" of {n}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  machine     {:.2} cores{of} busy",
            machine.as_secs_f64() / secs.max(f64::MIN_POSITIVE)
        )?;
    }
    Ok(())
}

/// The failures by kind over both phases, each with its first answer.
fn write_failures(
    out: &mut String,
    warmup: &BTreeMap<String, Failure>,
    measured: &BTreeMap<String, Failure>,
) -> std::fmt::Result {
    let mut failures: Vec<_> = warmup.keys().chain(measured.keys()).collect();
    failures.sort_unstable();
    failures.dedup();
    if !failures.is_empty() {
        writeln!(
            out,
            "errors by kind (warmup + measured), with the first answer of each:"
        )?;
        for kind in failures {
            let in_phase =
                |phase: &BTreeMap<String, Failure>| phase.get(kind).map_or(0, |f| f.count);
            let first = measured
                .get(kind)
                .or_else(|| warmup.get(kind))
                .map_or("", |f| f.first.as_str());
            writeln!(
                out,
                "  {kind}: {} (warmup {}, measured {})",
                in_phase(warmup) + in_phase(measured),
                in_phase(warmup),
                in_phase(measured)
            )?;
            writeln!(out, "    first: {first}")?;
        }
    }
    Ok(())
}

/// The report of a `flow` run as text.
#[must_use]
pub fn render_flow(outcome: &flow::Outcome) -> String {
    text(|out| write_flow_report(out, outcome))
}

fn write_flow_report(out: &mut String, outcome: &flow::Outcome) -> std::fmt::Result {
    let flow::Outcome {
        warmup,
        measured,
        window,
        cpu,
        reuse_session,
    } = outcome;
    let secs = window.as_secs_f64();
    writeln!(
        out,
        "warmup:     {} flows, {} failed (not counted below)",
        warmup.started,
        warmup.errors()
    )?;
    writeln!(out, "measured:   {secs:.2} s")?;
    writeln!(out, "  flows started    {}", measured.started)?;
    writeln!(out, "  flows completed  {}", measured.completed)?;
    writeln!(out, "  flows failed     {}", measured.errors())?;
    writeln!(
        out,
        "  throughput       {:.2} complete flows/s",
        per_sec(measured.completed, secs)
    )?;
    let requests: u64 = measured.versions.values().sum();
    let protocols: Vec<String> = measured
        .versions
        .iter()
        .map(|(version, count)| format!("{version} ×{count}"))
        .collect();
    if !protocols.is_empty() {
        writeln!(
            out,
            "  requests         {requests} ({:.1}/s; {})",
            per_sec(requests, secs),
            protocols.join(", ")
        )?;
    }

    writeln!(
        out,
        "latency per step, successful requests (send to last body byte; client work excluded):"
    )?;
    writeln!(
        out,
        "  {:<26} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}",
        "step", "ok", "errors", "mean", "p50", "p90", "p99", "max", "share"
    )?;
    let total: Duration = flow::Step::ALL
        .iter()
        .flat_map(|step| measured.steps.get(*step).latencies.iter())
        .sum();
    let mut slowest: Option<(flow::Step, Duration)> = None;
    for (number, step) in flow::Step::ALL.into_iter().enumerate() {
        let tally = measured.steps.get(step);
        let sum: Duration = tally.latencies.iter().sum();
        if slowest.is_none_or(|(_, s)| sum > s) {
            slowest = Some((step, sum));
        }
        write_row(
            out,
            &format!("{} {}", number + 1, step.label()),
            &tally.latencies,
            Some(tally.errors),
            share(sum, total),
        )?;
    }
    write_row(
        out,
        "complete flow (wall)",
        &measured.flows,
        None,
        String::new(),
    )?;
    writeln!(
        out,
        "  (share: of the summed latencies of all successful steps; wall: a complete flow's \
         five requests and the client's work between them)"
    )?;
    let login = measured.steps.get(flow::Step::Login);
    if *reuse_session {
        writeln!(
            out,
            "logins: {} (kept sessions skip the login after each worker's first flow)",
            login.latencies.len()
        )?;
    } else if slowest.is_some_and(|(step, _)| step == flow::Step::Login) {
        writeln!(
            out,
            "login dominates ({} of the step time): the password check is argon2id at OWASP \
             parameters\n  (19 MiB, t=2), slow on purpose; the server runs at most \
             passwords.max_concurrent_hashes\n  (default: one per core) at once, and further \
             logins queue",
            share(login.latencies.iter().sum(), total)
        )?;
    } else {
        writeln!(
            out,
            "login is not the slowest step in this run ({} of the step time), although its \
             argon2id\n  password check (OWASP parameters) is slow on purpose",
            share(login.latencies.iter().sum(), total)
        )?;
    }

    let work = measured.client_work.as_secs_f64();
    let mean_us = if measured.completed == 0 {
        0.0
    } else {
        work * 1e6 / u64_to_f64(measured.completed)
    };
    writeln!(
        out,
        "client work per complete flow (PKCE, 2 assertions + 1 DPoP proof, parsing; wall time \
         minus requests):\n  {mean_us:.0} µs, {work:.2} s in all = {:.2} cores over the window",
        if secs > 0.0 { work / secs } else { 0.0 }
    )?;
    write_cpu(out, cpu, secs)?;
    write_failures(out, &warmup.failures, &measured.failures)
}

/// One row of the step table: count, errors, mean and percentiles of `latencies`, and `share`.
fn write_row(
    out: &mut String,
    label: &str,
    latencies: &[Duration],
    errors: Option<u64>,
    share: String,
) -> std::fmt::Result {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let count = u64::try_from(sorted.len()).unwrap_or(u64::MAX);
    let mean = (count > 0).then(|| {
        Duration::from_secs_f64(sorted.iter().sum::<Duration>().as_secs_f64() / u64_to_f64(count))
    });
    let row = format!(
        "  {label:<26} {count:>6} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {share:>6}",
        errors.map_or_else(String::new, |e| e.to_string()),
        ms(mean),
        ms(percentile(&sorted, 50)),
        ms(percentile(&sorted, 90)),
        ms(percentile(&sorted, 99)),
        ms(sorted.last().copied()),
    );
    writeln!(out, "{}", row.trim_end())
}

/// `part` as a percentage of `total`.
fn share(part: Duration, total: Duration) -> String {
    if total.is_zero() {
        "-".into()
    } else {
        format!("{:.0} %", part.as_secs_f64() * 100.0 / total.as_secs_f64())
    }
}

/// The client's signing cost: per request, and as a share of a core over the window.
fn write_client_cost(out: &mut String, measured: &Tally, secs: f64) -> std::fmt::Result {
    let signing = measured.signing.as_secs_f64();
    let mean_us = if measured.requests == 0 {
        0.0
    } else {
        signing * 1e6 / u64_to_f64(measured.requests)
    };
    writeln!(
        out,
        "client signing (assertion + DPoP proof, ES256 each): {mean_us:.0} µs per request, \
         {signing:.2} s in all = {:.2} cores over the window",
        if secs > 0.0 { signing / secs } else { 0.0 }
    )
}

/// The nearest-rank `p`th percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn ms(value: Option<Duration>) -> String {
    value.map_or_else(
        || "-".into(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
}

fn cores(cpu: Option<Duration>, secs: f64) -> String {
    match cpu {
        Some(cpu) if secs > 0.0 => format!(
            "{:.2} cores ({:.2} CPU-s)",
            cpu.as_secs_f64() / secs,
            cpu.as_secs_f64()
        ),
        _ => "unknown (no /proc)".into(),
    }
}

fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        u64_to_f64(count) / secs
    } else {
        0.0
    }
}

/// Request counts are far below 2^52, where the conversion would round.
fn u64_to_f64(value: u64) -> f64 {
    value as f64
}
