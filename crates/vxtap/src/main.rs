//! The `vxtap` binary: parses the command line and runs one command. All logic lives in the
//! library so that tests drive the same code.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use vxtap::cli::{Cli, Command, LogFormat};
use vxtap::config::{FileConfig, ListenSettings, Settings};
use vxtap::{listen, replay, report_cmd, send, shadow, tools};
use vxtap_sink::JsonLinesConfig;
use vxtap_wire::OuterParams;

// Every exchange allocates its header strings and body buffers; mimalloc's thread-local free
// lists make that several times cheaper than glibc's malloc under two or more workers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VXTAP_LOG")
        // rdkafka warns once per librdkafka error event it does not handle itself; the Kafka
        // sink reports those errors (rate-limited) on its own.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,rdkafka::producer::base_producer=error")
        });
    // Colour only for a person at a terminal: journald, Docker logs and files would keep the
    // escape codes as garbage. NO_COLOR (no-color.org) turns it off there too.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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

/// Exit status when an input or the output failed (what came before was still processed);
/// usage and configuration errors exit 2, as clap's do.
const EXIT_IO: u8 = 1;

/// Checks that every input can be opened before any work starts, so that a mistyped name
/// fails at once with one line instead of after a summary of nothing (or after replaying the
/// files before it). `-` is stdin.
fn check_inputs<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), String> {
    for f in files {
        if f.as_os_str() == "-" {
            continue;
        }
        if let Err(e) = std::fs::File::open(f) {
            return Err(format!("{}: cannot open: {e}", f.display()));
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let inputs: Vec<&PathBuf> = match &cli.command {
        Command::Replay(a) => a.files.iter().collect(),
        Command::Shadow(a) => a.files.iter().collect(),
        Command::Stats(a) => a.files.iter().collect(),
        Command::Decap(a) => vec![&a.input],
        Command::Encap(a) => vec![&a.input],
        Command::Send(a) => vec![&a.file],
        Command::Listen(_) | Command::Consume(_) => Vec::new(),
        Command::Compare(a) => vec![&a.production, &a.candidate],
        // Exchange files, captures or `kafka://` topics: checked by report_cmd.
        Command::Report(_) | Command::Openapi(_) | Command::Har(_) | Command::K6(_) => Vec::new(),
    };
    if let Err(e) = check_inputs(inputs) {
        eprintln!("vxtap: error: {e}");
        return Ok(ExitCode::from(EXIT_IO));
    }
    match cli.command {
        Command::Replay(args) => {
            let file = match &args.config {
                Some(p) => FileConfig::load(p)?,
                None => FileConfig::default(),
            };
            let settings =
                Settings::resolve(&file, &args.decode, &args.pipeline, &args.privacy, 1)?;
            let sink = vxtap::output::OutputConfig::resolve(
                args.output.as_ref(),
                file.output.as_ref(),
                args.spool.clone().or(file.spool.clone()),
                JsonLinesConfig::default(),
            )?;
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
                ExitCode::from(EXIT_IO)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Shadow(args) => {
            let file = match &args.config {
                Some(p) => FileConfig::load(p)?,
                None => FileConfig::default(),
            };
            let mut settings =
                Settings::resolve(&file, &args.decode, &args.pipeline, &args.privacy, 1)?;
            let queue_bytes = shadow::prepare_settings(&mut settings, &args.shadow)?;
            let cfg = shadow::config(
                &args.target,
                &args.shadow,
                queue_bytes,
                vxtap_shadow::WhenFull::Wait,
                args.drain_timeout,
            )?;
            let out = shadow::open_output(args.output.as_deref())?;
            let redactor = vxtap::pipeline::redactor(&settings)?;
            let stats = std::sync::Arc::new(vxtap_shadow::ShadowStats::new());
            let stage = shadow::start(cfg, out, redactor, stats)?;
            let run = shadow::shadow_files(&args.files, &settings, stage)?;
            if let Some(p) = &args.summary {
                shadow::write_summary(p, &run.report)?;
            }
            if !args.quiet {
                eprint!("{}", shadow::report_text(&run.report));
            }
            let mut failed = false;
            for e in &run.errors {
                eprintln!("vxtap: error: {e}");
                failed = true;
            }
            if let Some(e) = &run.report.output_error {
                eprintln!("vxtap: output error: {e}");
                failed = true;
            }
            Ok(if failed {
                ExitCode::from(EXIT_IO)
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
            match tools::encap(&a.input, &a.output, a.vni, a.truncate, &outer) {
                Ok(n) => {
                    eprintln!("vxtap: wrapped {n} packets into {}", a.output.display());
                    Ok(ExitCode::SUCCESS)
                }
                // The error names the file (and the offset of any damage) itself.
                Err(e) => {
                    eprintln!("vxtap: error: {e}");
                    Ok(ExitCode::from(EXIT_IO))
                }
            }
        }
        Command::Decap(a) => {
            let to_stdout = a.output.as_os_str() == "-";
            if to_stdout && a.per_vni {
                anyhow::bail!(
                    "decap --per-vni writes files named after OUT: give a prefix, not `-`"
                );
            }
            if to_stdout && std::io::stdout().is_terminal() {
                anyhow::bail!("decap: not writing a capture to a terminal (redirect stdout)");
            }
            let out = tools::decap(
                &a.input,
                &a.output,
                a.per_vni,
                tools::decap_config(&a.decode),
            );
            match out {
                Ok(d) => {
                    eprintln!(
                        "vxtap: wrote {} inner frames ({} rejected)",
                        d.written,
                        d.stats.rejected_total()
                    );
                    // Like replay and stats: the frames before the damage are written, the
                    // damage is reported, and the exit status says the input was not whole.
                    match d.damage {
                        Some(e) => {
                            eprintln!("vxtap: error: {e}");
                            Ok(ExitCode::from(EXIT_IO))
                        }
                        None => Ok(ExitCode::SUCCESS),
                    }
                }
                Err(e) => {
                    eprintln!("vxtap: error: {e}");
                    Ok(ExitCode::from(EXIT_IO))
                }
            }
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
                ExitCode::from(EXIT_IO)
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
            if let Some(f) = &totals.kafka_finish {
                if f.undelivered > 0 {
                    eprintln!(
                        "vxtap: kafka: {} records not acknowledged by the drain deadline: {} \
                         spooled for the next run, {} lost",
                        f.undelivered,
                        f.spooled,
                        f.undelivered - f.spooled.min(f.undelivered)
                    );
                }
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
        Command::Compare(a) => {
            vxtap::compare::run(&a)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(a) => report_cmd::report(*a),
        Command::Openapi(a) => report_cmd::openapi(*a),
        Command::Har(a) => report_cmd::har(*a),
        Command::K6(a) => report_cmd::k6(*a),
        Command::Consume(a) => {
            let r = vxtap::consume::consume(&a)?;
            if !a.quiet {
                eprintln!(
                    "vxtap: consumed {} records ({} not exchange records, {} consumer errors)",
                    r.read, r.rejected, r.consumer_errors
                );
                eprint!("{}", r.totals.summary());
            }
            if let Some(e) = &r.output_error {
                eprintln!("vxtap: output error: {e}");
                return Ok(ExitCode::from(EXIT_IO));
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
                "vxtap: sent {} datagrams ({} bytes) to {} in {:.3}s: {:.0} datagrams/s; skipped {}; \
                 repeated unchanged {}",
                r.sent,
                r.bytes,
                a.to,
                secs,
                r.sent as f64 / secs,
                r.skipped,
                r.unshifted
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
