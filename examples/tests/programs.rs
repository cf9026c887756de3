//! The programs' command lines and messages, as a person meets them: `--help` on standard
//! output with status 0, `--flag=value`, values checked before anything connects, errors that
//! name what to fix, and no panic when standard output is a closed pipe.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

use std::process::{Command, Output, Stdio};

fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nothing listens on (bound, read and released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

const DEVICE: &str = env!("CARGO_BIN_EXE_device");
const AGENT: &str = env!("CARGO_BIN_EXE_agent");
const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart");

#[test]
fn help_and_version_go_to_standard_output_with_status_zero() {
    for exe in [DEVICE, AGENT, QUICKSTART] {
        let output = run(exe, &["--help"]);
        assert_eq!(output.status.code(), Some(0), "{exe}");
        let help = text(&output.stdout);
        assert!(help.contains("Usage:"), "{exe}: {help}");
        assert!(output.stderr.is_empty(), "{exe}");
        let output = run(exe, &["--version"]);
        assert_eq!(output.status.code(), Some(0), "{exe}");
        assert!(text(&output.stdout).contains("0.1.0"));
    }
    let help = text(&run(DEVICE, &["--help"]).stdout);
    for flag in [
        "--thing",
        "--broker",
        "--wait",
        "--connect-retry",
        "--work-scale",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[test]
fn the_quickstart_shows_its_help_instead_of_running() {
    let output = run(QUICKSTART, &["--help"]);
    let stdout = text(&output.stdout);
    assert!(!stdout.contains("== operator"), "{stdout}");
}

#[test]
fn flag_equals_value_is_accepted_and_a_refused_port_is_named_with_the_uri() {
    let port = closed_port();
    let uri = format!("tcp://127.0.0.1:{port}");
    let output = run(
        DEVICE,
        &["--thing=pump-07", &format!("--broker={uri}"), "--once"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "device: cannot connect to {uri}: connection refused by 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
}

#[test]
fn bad_values_are_refused_before_connecting_with_status_two() {
    // The broker named does not exist: a connection attempt would fail differently.
    let unreachable = "--broker=tcp://no-such-host.invalid:1883";
    for (args, expected) in [
        (vec!["--thing", ""], "invalid thing name"),
        (vec!["--thing", &"x".repeat(129)], "invalid thing name"),
        (
            vec!["--thing", "pump-07", "--wait", "0"],
            "at least 1 second",
        ),
        (vec!["--thing", "pump-07", "--wait", "soon"], "--wait"),
        (
            vec!["--thing", "pump-07", "--broker", "http://127.0.0.1:1883"],
            "tcp:// or mqtt://",
        ),
        (vec!["--thing", "pump-07", "--cert", "device.crt"], "--key"),
        (vec!["--thing", "pump-07", "--colour", "red"], "--colour"),
    ] {
        let mut all = args.clone();
        all.push(unreachable);
        let output = run(DEVICE, &all);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("client id"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_closed_standard_output_ends_the_program_quietly_instead_of_panicking() {
    // The pipe's reading end is closed before the program writes anything: every write
    // fails with a broken pipe (before the fix: a panic, status 101).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(QUICKSTART)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
