//! `vxtap report`, `openapi`, `har` and `k6`: the offline exports of `vxtap-report`, fed with
//! typed exchanges from captures (the same front, worker and transforms as `replay`, via
//! [`crate::replay::replay_into`]) or from exchange files (JSON lines read back with
//! `vxtap_sink::ExchangeReader`, then the same transforms, so redaction applies to both).
//!
//! Kafka topics are not inputs yet: `vxtap consume` (issue of the Kafka sink) is not on this
//! branch, and a `kafka://` input is refused with a message saying so.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use vxtap_http::Exchange;
use vxtap_report::har::HarWriter;
use vxtap_report::inventory::Inventory;
use vxtap_report::k6::{K6Builder, K6Config};
use vxtap_report::openapi::{OpenApiBuilder, OpenApiConfig};
use vxtap_sink::{ExchangeReader, Sink, SinkError, Transform};

use crate::cli::{ExportArgs, K6Args, OpenapiArgs};
use crate::config::{FileConfig, Settings};
use crate::pipeline::transforms;
use crate::replay::replay_into;

/// What an input file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum InputKind {
    /// pcap, pcapng or gzip (a compressed capture).
    Capture,
    /// JSON lines of exchange records.
    Exchanges,
}

/// Tells a capture from an exchange file by its first bytes.
pub fn input_kind(path: &Path) -> Result<InputKind> {
    if path.to_string_lossy().starts_with("kafka://") {
        bail!(
            "{}: Kafka topics are not an input of this build yet (`vxtap consume` has not \
             landed); consume the topic to a file and pass that",
            path.display()
        );
    }
    let mut head = [0u8; 64];
    let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let n = f
        .read(&mut head)
        .with_context(|| path.display().to_string())?;
    let head = &head[..n];
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    if head.len() >= 4 && MAGICS.iter().any(|m| head[..4] == *m) || head.starts_with(&[0x1f, 0x8b])
    {
        return Ok(InputKind::Capture);
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => Ok(InputKind::Exchanges),
        _ => bail!(
            "{}: neither a capture (pcap, pcapng, gzip) nor exchange records (JSON lines)",
            path.display()
        ),
    }
}

/// Counts of a run over the inputs.
#[derive(Debug, Default)]
pub struct Fed {
    /// Exchanges handed to the export (after the filters).
    pub exchanges: u64,
    /// Lines of exchange files that were not records (skipped, counted).
    pub bad_lines: u64,
    /// Input errors (damaged captures, unreadable files): what came before was used.
    pub errors: Vec<String>,
}

/// A sink that hands each exchange to a closure.
struct FnSink<'a>(&'a mut dyn FnMut(&Exchange));

impl Sink for FnSink<'_> {
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        (self.0)(ex);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Runs every input through the pipeline and calls `f` with each exchange, in input order.
pub fn feed(inputs: &[PathBuf], settings: &Settings, f: &mut dyn FnMut(&Exchange)) -> Result<Fed> {
    let mut fed = Fed::default();
    let mut chain = transforms(settings)?;
    for path in inputs {
        match input_kind(path)? {
            InputKind::Capture => {
                let mut count = |ex: &Exchange| {
                    fed.exchanges += 1;
                    f(ex);
                };
                let (report, _) =
                    replay_into(std::slice::from_ref(path), settings, FnSink(&mut count))?;
                fed.errors
                    .extend(report.errors.iter().map(|e| e.to_string()));
            }
            InputKind::Exchanges => {
                let file = File::open(path).with_context(|| path.display().to_string())?;
                for item in ExchangeReader::new(BufReader::new(file)) {
                    match item {
                        Ok(mut ex) => {
                            if chain.apply(&mut ex) {
                                fed.exchanges += 1;
                                f(&ex);
                            }
                        }
                        Err(vxtap_sink::ReadError::Io(e)) => {
                            fed.errors.push(format!("{}: {e}", path.display()));
                            break;
                        }
                        Err(e) => {
                            // Hostile or foreign lines are counted and skipped, as the
                            // capture readers skip damaged packets.
                            if fed.bad_lines < 5 {
                                tracing::warn!(input = %path.display(), "{e}");
                            }
                            fed.bad_lines += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(fed)
}

fn settings(a: &ExportArgs) -> Result<Settings> {
    let file = match &a.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    Settings::resolve(&file, &a.decode, &a.pipeline, &a.privacy, 1)
}

fn output(path: &Option<PathBuf>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        _ => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

fn finish(fed: &Fed, what: &str) -> ExitCode {
    eprintln!(
        "vxtap: {what} from {} exchanges ({} lines skipped as not records)",
        fed.exchanges, fed.bad_lines
    );
    for e in &fed.errors {
        eprintln!("vxtap: error: {e}");
    }
    if fed.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn names(inputs: &[PathBuf]) -> Vec<String> {
    inputs.iter().map(|p| p.display().to_string()).collect()
}

/// `vxtap report`.
pub fn report(a: ExportArgs) -> Result<ExitCode> {
    let settings = settings(&a)?;
    let mut inv = Inventory::new(a.max_endpoints);
    let fed = feed(&a.inputs, &settings, &mut |ex| inv.add(ex))?;
    let html = vxtap_report::html::render(&inv, "vxtap report", &names(&a.inputs))?;
    let mut out = output(&a.output)?;
    out.write_all(html.as_bytes())?;
    out.flush()?;
    Ok(finish(&fed, "report"))
}

/// `vxtap har`.
pub fn har(a: ExportArgs) -> Result<ExitCode> {
    let settings = settings(&a)?;
    let mut w = HarWriter::new(output(&a.output)?, env!("CARGO_PKG_VERSION"))?;
    let mut failed = None;
    let fed = feed(&a.inputs, &settings, &mut |ex| {
        if failed.is_none() {
            if let Err(e) = w.write(ex) {
                failed = Some(e);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e).context("writing the HAR file");
    }
    let (written, skipped) = (w.written(), w.skipped());
    w.finish()?;
    eprintln!("vxtap: {written} HAR entries; {skipped} responses without their request left out");
    Ok(finish(&fed, "HAR"))
}

/// `vxtap k6`.
pub fn k6(a: K6Args) -> Result<ExitCode> {
    let settings = settings(&a.export)?;
    if !(a.multiplier.is_finite() && a.multiplier > 0.0) {
        bail!("--multiplier must be a positive number");
    }
    let mut cfg = K6Config {
        multiplier: a.multiplier,
        max_endpoints: a.export.max_endpoints,
        ..K6Config::default()
    };
    if !a.replay_methods.is_empty() {
        cfg.methods = a
            .replay_methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
    }
    let mut b = K6Builder::new(cfg);
    let fed = feed(&a.export.inputs, &settings, &mut |ex| b.add(ex))?;
    let mut out = output(&a.export.output)?;
    b.write(&mut out)?;
    out.flush()?;
    if b.unsafe_skipped > 0 {
        eprintln!(
            "vxtap: {} requests with other methods left out (widen with --replay-method)",
            b.unsafe_skipped
        );
    }
    Ok(finish(&fed, "k6 script"))
}

/// The OpenAPI document of `inputs`.
fn infer(
    inputs: &[PathBuf],
    a: &ExportArgs,
    settings: &Settings,
) -> Result<(serde_json::Value, Fed)> {
    let mut b = OpenApiBuilder::new(OpenApiConfig {
        max_endpoints: a.max_endpoints,
        // Examples only from records that went through redaction.
        examples: settings.redact.enabled,
        ..OpenApiConfig::default()
    });
    let fed = feed(inputs, settings, &mut |ex| b.add(ex))?;
    Ok((b.document("Observed API", "observed"), fed))
}

/// A document given as YAML or JSON, or inferred from a capture or exchange file.
fn document(path: &Path, a: &ExportArgs, settings: &Settings) -> Result<serde_json::Value> {
    let is_doc = path
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
    if is_doc {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        // Not a document (an exchange file named .json, say): inferred below like any input.
        if let Ok(v) = serde_yaml_ng::from_str::<serde_json::Value>(&text) {
            if v.get("openapi").is_some() {
                return Ok(v);
            }
        }
    }
    Ok(infer(&[path.to_path_buf()], a, settings)?.0)
}

/// `vxtap openapi`.
pub fn openapi(a: OpenapiArgs) -> Result<ExitCode> {
    let settings = settings(&a.export)?;
    if a.diff {
        let [old, new] = a.export.inputs.as_slice() else {
            bail!("openapi --diff takes two inputs: OLD NEW");
        };
        let old = document(old, &a.export, &settings)?;
        let new = document(new, &a.export, &settings)?;
        let changes = vxtap_report::diff::diff(&old, &new)?;
        let mut out = output(&a.export.output)?;
        let breaking = changes
            .iter()
            .filter(|c| c.severity == vxtap_report::diff::Severity::Breaking)
            .count();
        for c in &changes {
            writeln!(out, "{c}")?;
        }
        out.flush()?;
        eprintln!("vxtap: {} changes, {breaking} breaking", changes.len());
        return Ok(if breaking > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let (doc, fed) = infer(&a.export.inputs, &a.export, &settings)?;
    let mut out = output(&a.export.output)?;
    serde_yaml_ng::to_writer(&mut out, &doc)?;
    out.flush()?;
    Ok(finish(&fed, "OpenAPI document"))
}
