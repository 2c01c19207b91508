//! The `vxtap` binary: parses the command line and runs one command. All logic lives in the
//! library so that tests drive the same code.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use vxtap::cli::{Cli, Command, LogFormat};
use vxtap::config::{FileConfig, Settings};
use vxtap::{replay, tools};
use vxtap_sink::JsonLinesConfig;
use vxtap_wire::OuterParams;

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
            eprintln!("vxtap: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => {
            let file = match &args.config {
                Some(p) => FileConfig::load(p).map_err(anyhow::Error::msg)?,
                None => FileConfig::default(),
            };
            let settings = Settings::resolve(&file, &args.decode, &args.pipeline, &args.privacy, 1)
                .map_err(anyhow::Error::msg)?;
            let sink = JsonLinesConfig {
                path: args.output.clone(),
                ..JsonLinesConfig::default()
            };
            let report = replay::replay(&args.files, &settings, sink, !args.no_progress)
                .map_err(anyhow::Error::msg)?;
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
        Command::Listen(_) | Command::Send(_) => {
            anyhow::bail!("this command is not built yet")
        }
    }
}
