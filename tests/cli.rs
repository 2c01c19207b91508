//! The command line as a new user meets it: the examples of `--help` and the README run as
//! written, errors come as one line with the documented exit status, logs carry no colour
//! codes when nobody is looking at a terminal. (A module of tests/e2e.rs.)

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{fixture, root, vxtap};

/// A scratch directory holding a `pcaps` link to the repository's captures, so that command
/// lines written for a checkout run unchanged while their outputs land here.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vxtap-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(root().join("pcaps"), dir.join("pcaps")).unwrap();
        Scratch(dir)
    }

    fn run(&self, args: &[String]) -> Output {
        vxtap().current_dir(&self.0).args(args).output().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command lines of `vxtap --help`'s EXAMPLES section, without their comments.
fn help_examples() -> Vec<Vec<String>> {
    let out = vxtap().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let section = text
        .split_once("EXAMPLES:")
        .expect("--help has an EXAMPLES section")
        .1;
    let examples: Vec<Vec<String>> = section
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("vxtap "))
        // The comment is set off by two or more spaces.
        .map(|l| l.split("  ").next().unwrap_or(l))
        .map(|cmd| cmd.split_whitespace().skip(1).map(String::from).collect())
        .collect();
    assert!(examples.len() >= 5, "too few examples found: {section}");
    examples
}

/// The command lines in the README's shell blocks (`vxtap ...` or `cargo run ... -- ...`).
fn readme_commands() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut in_sh = false;
    let mut cmds = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = t == "```sh" || t == "```bash" || t == "```console";
            continue;
        }
        if !in_sh {
            continue;
        }
        let t = t.trim_start_matches("$ ");
        let args = if let Some(rest) = t.strip_prefix("vxtap ") {
            rest
        } else if let Some((_, rest)) = t
            .strip_prefix("cargo run")
            .and_then(|r| r.split_once(" -- "))
        {
            rest
        } else {
            continue;
        };
        cmds.push(args.split_whitespace().map(String::from).collect());
    }
    assert!(!cmds.is_empty(), "no command line found in the README");
    cmds
}

/// Runs each command line in `dir` as a user would, in order (later ones use earlier
/// outputs). `listen` would bind the documented public addresses and run until stopped, so it
/// is only parsed; `send` goes to a loopback socket of ours instead of its `--to`.
fn run_examples(scratch: &Scratch, cmds: &[Vec<String>], origin: &str) {
    use clap::Parser;
    for args in cmds {
        let argv = std::iter::once("vxtap".to_string()).chain(args.iter().cloned());
        if let Err(e) = vxtap::cli::Cli::try_parse_from(argv) {
            panic!(
                "{origin} example `vxtap {}` does not parse: {e}",
                args.join(" ")
            );
        }
        let mut args = args.clone();
        match args.first().map(String::as_str) {
            Some("listen") => continue,
            Some("shadow") => {
                // Sent to a candidate of ours on loopback instead of the documented target.
                let cand = super::shadow::Candidate::start();
                let to = args
                    .iter()
                    .position(|a| a == "--target")
                    .expect("shadow --target")
                    + 1;
                args[to] = format!("http://{}", cand.addr);
                let out = scratch.run(&args);
                assert!(
                    out.status.success(),
                    "{origin}: vxtap {args:?}: {}",
                    stderr(&out)
                );
                assert!(
                    !cand.seen.lock().unwrap().is_empty(),
                    "{origin}: shadow sent nothing"
                );
            }
            Some("send") => {
                let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
                let to = args.iter().position(|a| a == "--to").expect("send --to") + 1;
                args[to] = sink.local_addr().unwrap().to_string();
                let out = scratch.run(&args);
                assert!(
                    out.status.success(),
                    "{origin}: vxtap {args:?}: {}",
                    stderr(&out)
                );
                sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 9216];
                assert!(sink.recv(&mut buf).is_ok(), "{origin}: send sent nothing");
            }
            _ => {
                let out = scratch.run(&args);
                assert!(
                    out.status.success(),
                    "{origin} example `vxtap {}` failed: {}",
                    args.join(" "),
                    stderr(&out)
                );
            }
        }
    }
}

#[test]
fn help_examples_run_as_written() {
    let scratch = Scratch::new("help");
    run_examples(&scratch, &help_examples(), "--help");
    // The outputs the examples name were written.
    for f in ["out.jsonl", "mirrored.pcap", "inner.pcapng"] {
        let len = std::fs::metadata(scratch.0.join(f)).map_or(0, |m| m.len());
        assert!(len > 0, "--help example output {f} is missing or empty");
    }
}

#[test]
fn readme_command_lines_run_as_written() {
    let scratch = Scratch::new("readme");
    run_examples(&scratch, &readme_commands(), "README");
}

/// Every `--flag` the README names exists in some command's `--help`.
#[test]
fn readme_flags_exist() {
    let mut known = BTreeSet::new();
    for sub in [
        "replay", "listen", "shadow", "send", "encap", "decap", "stats", "compare", "report",
        "openapi", "har", "k6", "consume",
    ] {
        let out = vxtap().args([sub, "--help"]).output().unwrap();
        for word in String::from_utf8_lossy(&out.stdout)
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            if word.starts_with("--") {
                known.insert(word.to_string());
            }
        }
    }
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    // Other tools' flags, quoted in the benchmark table.
    let others = ["--runmode"];
    let mut unknown = BTreeSet::new();
    for (i, _) in text.match_indices("`--") {
        let flag: String = text[i + 1..]
            .chars()
            .take_while(|&c| c.is_ascii_alphanumeric() || c == '-')
            .collect();
        if !known.contains(&flag) && !others.contains(&flag.as_str()) {
            unknown.insert(flag);
        }
    }
    assert!(
        unknown.is_empty(),
        "README names unknown flags: {unknown:?}"
    );
}

fn damaged_copy(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(fixture("vxlan/mixed-vni101.pcap")).unwrap();
    let path = dir.join("damaged.pcap");
    // Cut inside a record: the file is whole up to there.
    std::fs::write(&path, &bytes[..3000]).unwrap();
    path
}

/// A damaged input is exit status 1 for every reader and tool, after the packets before the
/// damage.
#[test]
fn damaged_input_exits_1_everywhere() {
    let scratch = Scratch::new("damaged");
    let bad = damaged_copy(&scratch.0).display().to_string();
    let out_path = scratch.0.join("inner.pcapng").display().to_string();
    let wrapped = scratch.0.join("wrapped.pcap").display().to_string();
    for args in [
        vec!["replay", "-q", "--no-progress", &bad],
        vec!["stats", &bad],
        vec!["decap", &bad, &out_path],
        vec!["encap", &bad, &wrapped, "--vni", "7"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let out = scratch.run(&args);
        // stats reports damage inside its report (stdout), the others on stderr.
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(all.contains("cut off at byte"), "{args:?}: {all}");
    }
    // decap kept the frames before the damage.
    let written = vxtap()
        .args(["stats", "--json", &out_path])
        .output()
        .unwrap();
    assert!(written.status.success(), "{}", stderr(&written));
    let report: serde_json::Value = serde_json::from_slice(&written.stdout).unwrap();
    assert!(report["packets"].as_u64().unwrap() > 0, "{report}");
}

/// A missing input is one error line and exit 1, without a summary of nothing first.
#[test]
fn missing_input_is_one_line() {
    let scratch = Scratch::new("missing");
    for args in [
        vec!["replay", "--no-progress", "nope.pcap"],
        vec![
            "replay",
            "--no-progress",
            "pcaps/plain/http-keepalive.pcap",
            "nope.pcap",
        ],
        vec!["stats", "nope.pcap"],
        vec!["decap", "nope.pcap", "out.pcapng"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let out = scratch.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("nope.pcap: cannot open"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
    assert!(!scratch.0.join("out.pcapng").exists());
}

/// `decap IN -` writes the pcapng to stdout, not to a file named `-`.
#[test]
fn decap_dash_is_stdout() {
    let scratch = Scratch::new("dash");
    let args: Vec<String> = ["decap", "pcaps/vxlan/mixed-vni101.pcap", "-"]
        .into_iter()
        .map(String::from)
        .collect();
    let out = scratch.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!scratch.0.join("-").exists(), "decap wrote a file named -");
    // A pcapng section header block, then packets that read back.
    assert_eq!(out.stdout.get(..4), Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]));
    let path = scratch.0.join("from-stdout.pcapng");
    std::fs::write(&path, &out.stdout).unwrap();
    let file_args: Vec<String> = ["decap", "pcaps/vxlan/mixed-vni101.pcap", "file.pcapng"]
        .into_iter()
        .map(String::from)
        .collect();
    assert!(scratch.run(&file_args).status.success());
    assert_eq!(
        std::fs::read(scratch.0.join("file.pcapng")).unwrap(),
        out.stdout,
        "stdout and file outputs differ"
    );
    // --per-vni names files after OUT: `-` is refused.
    let per: Vec<String> = ["decap", "pcaps/vxlan/mixed-vni101.pcap", "-", "--per-vni"]
        .into_iter()
        .map(String::from)
        .collect();
    let out = scratch.run(&per);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Logs written to a pipe (journald, Docker, a file) carry no ANSI colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    drop(udp);
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_port = admin.local_addr().unwrap().port();
    drop(admin);
    let out = Command::new(env!("CARGO_BIN_EXE_vxtap"))
        .env("VXTAP_LOG", "info")
        .env_remove("NO_COLOR")
        .args([
            "listen",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--admin-bind",
            &format!("127.0.0.1:{admin_port}"),
            "--threads",
            "1",
            "--run-for",
            "300ms",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // The test can fail: there is a log line to look at.
    assert!(err.contains("vxtap listening"), "{err}");
    assert!(!err.contains('\x1b'), "escape codes in piped logs: {err:?}");
}
