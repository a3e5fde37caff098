//! The report printed after a run: counts, throughput, latency percentiles, the client's own
//! signing cost and CPU use, and the failures by kind with the first answer of each.

use std::fmt::Write as _;
use std::time::Duration;

use crate::token::{Outcome, Tally};

/// The report of `outcome` as text.
#[must_use]
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, outcome);
    out
}

fn write_report(out: &mut String, outcome: &Outcome) -> std::fmt::Result {
    let Outcome {
        warmup,
        measured,
        window,
        own_cpu,
        server_cpu,
    } = outcome;
    let secs = window.as_secs_f64();
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

    let mut latencies = measured.latencies.clone();
    latencies.sort_unstable();
    writeln!(
        out,
        "latency of successful requests (send to last body byte, signing excluded):"
    )?;
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

    write_client_cost(out, measured, secs)?;
    writeln!(
        out,
        "CPU during the measured window (from /proc; 1.00 = one core busy):"
    )?;
    writeln!(out, "  load tool   {}", cores(*own_cpu, secs))?;
    match server_cpu {
        Some(_) => writeln!(out, "  server      {}", cores(*server_cpu, secs))?,
        None => writeln!(out, "  server      (pass --server-pid to measure)")?,
    }

    let mut failures: Vec<_> = warmup
        .failures
        .keys()
        .chain(measured.failures.keys())
        .collect();
    failures.sort_unstable();
    failures.dedup();
    if !failures.is_empty() {
        writeln!(
            out,
            "errors by kind (warmup + measured), with the first answer of each:"
        )?;
        for kind in failures {
            let in_phase = |t: &Tally| t.failures.get(kind).map_or(0, |f| f.count);
            let first = measured
                .failures
                .get(kind)
                .or_else(|| warmup.failures.get(kind))
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
