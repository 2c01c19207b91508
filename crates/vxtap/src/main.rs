//! The `vxtap` binary: parses the command line and runs one command. All logic lives in the
//! library so that tests drive the same code.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use vxtap::cli::{Cli, Command, LogFormat};
use vxtap::config::{FileConfig, ListenSettings, Settings};
use vxtap::{listen, replay, send, tools};
use vxtap_sink::JsonLinesConfig;
use vxtap_wire::OuterParams;

// Every exchange allocates its header strings and body buffers; mimalloc's thread-local free
// lists make that several times cheaper than glibc's malloc under two or more workers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VXTAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vxtap: error: {}", vxtap::error::message(&e));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => {
            let file = match &args.config {
                Some(p) => FileConfig::load(p)?,
                None => FileConfig::default(),
            };
            let settings =
                Settings::resolve(&file, &args.decode, &args.pipeline, &args.privacy, 1)?;
            let sink = JsonLinesConfig {
                path: args.output.clone(),
                ..JsonLinesConfig::default()
            };
            let report = replay::replay(&args.files, &settings, sink, !args.no_progress)?;
            if report.output_closed {
                // `vxtap replay ... | head`: the reader had what it wanted. Quiet, with the
                // status of a command-line tool ended by SIGPIPE (128 + 13), so that a
                // pipeline under `set -o pipefail` sees what happened.
                return Ok(ExitCode::from(141));
            }
            if !args.quiet {
                eprint!("{}", report.totals.summary());
            }
            let mut failed = false;
            for e in &report.errors {
                eprintln!("vxtap: error: {e}");
                failed = true;
            }
            if let Some(e) = &report.output_error {
                eprintln!("vxtap: output error: {e}");
                failed = true;
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Encap(a) => {
            let outer = OuterParams {
                src_ip: a.outer_src,
                dst_ip: a.outer_dst,
                ..OuterParams::default()
            };
            let n = tools::encap(&a.input, &a.output, a.vni, a.truncate, &outer)
                .with_context(|| format!("encap {}", a.input.display()))?;
            eprintln!("vxtap: wrapped {n} packets into {}", a.output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Decap(a) => {
            let (n, stats) = tools::decap(
                &a.input,
                &a.output,
                a.per_vni,
                tools::decap_config(&a.decode),
            )
            .with_context(|| format!("decap {}", a.input.display()))?;
            eprintln!(
                "vxtap: wrote {n} inner frames ({} rejected)",
                stats.rejected_total()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats(a) => {
            let report = tools::stats(&a.files, tools::decap_config(&a.decode));
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Listen(args) => {
            let file = match &args.config {
                Some(p) => FileConfig::load(p)?,
                None => FileConfig::default(),
            };
            let settings = ListenSettings::resolve(&args, &file)?;
            let hooks = listen::Hooks {
                run_for: args.run_for,
                stall_worker_after: args.test_stall_worker_after,
            };
            let totals = listen::listen(settings, hooks)?;
            eprint!("{}", totals.summary());
            let w = &totals.writer;
            if let Some(lost) = totals.abandoned_at_shutdown {
                eprintln!("vxtap: error: output blocked at shutdown: {lost} records not written");
                return Ok(ExitCode::from(1));
            }
            if w.failed > 0 || w.errors > 0 {
                eprintln!(
                    "vxtap: error: output failed: {} records not written ({} errors)",
                    w.failed, w.errors
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(a) => {
            let pace = match (a.pps, a.speed) {
                (Some(p), _) => send::Pace::Pps(p),
                (None, Some(x)) => send::Pace::Speed(x),
                _ => send::Pace::Flood,
            };
            let mut sender = vxtap_capture::UdpSender::connect(a.to)?;
            let r = send::send(&a.file, &mut sender, a.vni, pace, a.loops, a.batch)?;
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            eprintln!(
                "vxtap: sent {} datagrams ({} bytes) to {} in {:.3}s: {:.0} datagrams/s; skipped {}",
                r.sent,
                r.bytes,
                a.to,
                secs,
                r.sent as f64 / secs,
                r.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
