//! The offline exports end to end, through the binary: `report` renders in headless Chromium
//! without a script error (skipped with a message when chromium is absent), `openapi` output
//! validates against the vendored OpenAPI 3.1 schema and `--diff` finds a breaking change, `har`
//! parses, `k6` passes `node --check` (skipped without node). tests/report_checks.sh runs the
//! same outputs through openapi-spec-validator and is run by .ci/run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vxtap")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vxtap-reports-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "vxtap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

const PCAP: &str = "pcaps/vxlan/mixed-vni101.pcap";

fn pcap() -> String {
    root().join(PCAP).display().to_string()
}

#[test]
fn report_renders_in_headless_chromium_without_errors() {
    let d = tmp("html");
    let html = d.join("report.html");
    run(&["report", &pcap(), "-o", html.to_str().unwrap()]);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("GET /small.txt"));
    // Self-contained: nothing is fetched (the only URL is the SVG namespace).
    assert!(!text.contains("src=\"http") && !text.contains("href=\"http"));
    let Some(chromium) = which("chromium").or_else(|| which("chromium-browser")) else {
        eprintln!("skipped: chromium not installed (tests/report_checks.sh installs it in CI)");
        return;
    };
    let profile = d.join("profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&d).ok();
    // The inline script sets the marker as its last step: it ran to the end.
    assert!(
        dom.contains("data-ready=\"1\""),
        "script did not finish: {log}"
    );
    assert!(
        !log.contains("Uncaught") && !log.contains("CONSOLE"),
        "console output: {log}"
    );
    // Paging ran: the first page shows, the table is there.
    assert!(dom.contains("page 1 of 1"));
}

#[test]
fn openapi_validates_and_diff_finds_breaking_changes() {
    let d = tmp("openapi");
    let api = d.join("api.yaml");
    run(&["openapi", &pcap(), "-o", api.to_str().unwrap()]);
    let doc: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&api).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/openapi/openapi-3.1.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::options().build(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(doc["paths"]["/small.txt"]["get"].is_object());
    // Same document: no change, exit 0.
    let out = run(&[
        "openapi",
        "--diff",
        api.to_str().unwrap(),
        api.to_str().unwrap(),
    ]);
    assert!(out.stdout.is_empty());
    // An operation gone: breaking, exit 1; the capture on the other side is inferred first.
    let mut old = doc.clone();
    old["paths"]["/gone"] =
        serde_json::json!({"get": {"responses": {"200": {"description": "x"}}}});
    let old_path = d.join("old.json");
    std::fs::write(&old_path, serde_json::to_vec(&old).unwrap()).unwrap();
    let out = Command::new(bin())
        .args(["openapi", "--diff", old_path.to_str().unwrap(), &pcap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "breaking: GET /gone: operation removed",
        "{text}"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn har_and_k6_from_a_capture_and_from_an_exchange_file() {
    let d = tmp("har");
    let jsonl = d.join("x.jsonl");
    run(&[
        "replay",
        "-q",
        "--no-progress",
        &pcap(),
        "-o",
        jsonl.to_str().unwrap(),
    ]);
    for input in [pcap(), jsonl.display().to_string()] {
        let har = d.join("out.har");
        run(&["har", &input, "-o", har.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
        assert_eq!(v["log"]["entries"].as_array().unwrap().len(), 48, "{input}");
        let js = d.join("load.mjs");
        run(&["k6", &input, "-o", js.to_str().unwrap()]);
        let script = std::fs::read_to_string(&js).unwrap();
        assert!(script.contains("constant-arrival-rate"));
        if let Some(node) = which("node") {
            let out = Command::new(node).arg("--check").arg(&js).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            eprintln!("skipped: node not installed, k6 script not syntax-checked");
        }
    }
    // Neither a capture nor records: refused with a message, not a panic.
    let junk = d.join("junk.bin");
    std::fs::write(&junk, b"\x00\x01garbage").unwrap();
    let out = Command::new(bin())
        .args(["har", junk.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a capture"));
    let _ = Path::new(&d);
    std::fs::remove_dir_all(&d).ok();
}
