//! The over-the-air update of the `agent` example, end to end over a real mosquitto (started
//! by the test on a free port, killed by its pid) and the `jobs-service` emulator (in-process,
//! as `jobs_mock::server::Server`, with its object store and HTTP API):
//!
//! - the README's OTA walkthrough, run as written: its shell commands (the AWS CLI from the
//!   Python environment `./test.sh` creates in `target/aws-venv`, or the one beside
//!   `JOBS_SERVICE_PYTHON`) in one `bash`, its `jobs-service` line as the in-process server with
//!   the same flags, its `agent` line as the agent program with the same flags; only the
//!   broker, the ports and the directories differ;
//! - a firmware whose SHA-256 does not match: `FAILED` with the reason, nothing installed;
//! - a step timer that runs out during the install: the agent names the job as timed out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;

use clap::Parser as _;
use common::{Program, WAIT};
use jobs_core::{JobId, JobStatus, ThingName};
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::server::Server;
use jobs_mock::server::cli::Args;
use jobs_mock::server::control::handle_control;
use jobs_mock::service::presign::ObjectName;
use serde_json::{Value, json};

const README: &str = include_str!("../../README.md");
const AGENT: &str = env!("CARGO_BIN_EXE_agent");

/// A fresh directory under the system's temp dir for this test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agent-ota-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python interpreter with the AWS CLI, found as `jobs-mock/tests/aws_clients.rs` finds it.
fn python() -> PathBuf {
    let path = std::env::var_os("JOBS_SERVICE_PYTHON").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/aws-venv/bin/python"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with the AWS CLI at {}: run ./test.sh (it creates target/aws-venv) or set \
         JOBS_SERVICE_PYTHON",
        path.display()
    );
    path
}

/// The commands of the README's first `sh` block after `heading`, one per entry (lines joined
/// where they end with `\`), without comments and blank lines.
fn readme_commands(heading: &str) -> Vec<String> {
    let section = README
        .split_once(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"))
        .1;
    let block = section.split_once("```sh\n").unwrap().1;
    let block = block.split_once("```").unwrap().0;
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

/// The arguments after `--` of a `cargo run … -- ARGS [&]` line (no quoting in them).
fn cargo_run_args(command: &str) -> Vec<String> {
    let args = command.split_once(" -- ").unwrap().1.trim_end_matches('&');
    assert!(!args.contains(['\'', '"', '$']), "{command}");
    args.split_whitespace().map(str::to_owned).collect()
}

/// One `bash`, fed command after command on its standard input, so that `export` and the
/// working directory carry over as in a terminal. Killed and reaped on drop.
struct Shell {
    child: std::process::Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path) -> Self {
        let bin = python().parent().unwrap().to_owned();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(&path));
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .env("PATH", std::env::join_paths(paths).unwrap())
            // Errors as they are: no retry hides a failed call.
            .env("AWS_MAX_ATTEMPTS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = common::lines_of(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Runs `command` (its standard error with its output) and returns its output; panics
    /// unless it exits with status 0 within [`WAIT`].
    fn run(&mut self, command: &str) -> String {
        const MARK: &str = "--readme-command-status--";
        writeln!(
            self.stdin,
            "{{\n{command}\n}} 2>&1\nprintf '\\n{MARK} %s\\n' $?"
        )
        .unwrap();
        self.stdin.flush().unwrap();
        let mut output = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("{command}: no end ({e:?}): {output:?}"));
            if let Some(status) = line.strip_prefix(MARK) {
                assert_eq!(status.trim(), "0", "{command}:\n{}", output.join("\n"));
                // The line `printf` began with.
                if output.last().is_some_and(String::is_empty) {
                    output.pop();
                }
                return output.join("\n");
            }
            output.push(line);
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_readme_ota_walkthrough_runs_as_written_and_ends_succeeded() {
    let commands = readme_commands("### A firmware update over the air, end to end");
    let dir = temp_dir("readme");
    let files = dir.join("files");
    let state = dir.join("pump-07");
    let broker = LocalBroker::start().unwrap();
    let uri = broker.uri();
    // What differs from the README: the broker, the service's port and the directories.
    let mut substitutions = vec![
        ("/tmp/jobs-files".to_owned(), files.display().to_string()),
        ("/tmp/pump-07".to_owned(), state.display().to_string()),
    ];
    for (from, _) in &substitutions {
        assert!(README.contains(from.as_str()), "{from}");
    }
    let mut shell = Shell::start(&dir);
    let mut server: Option<Server> = None;
    let mut agent_output = None;
    let mut outputs = Vec::new();
    for command in &commands {
        let mut command = command.clone();
        for (from, to) in &substitutions {
            command = command.replace(from.as_str(), to);
        }
        if command.contains("mosquitto") {
            // The broker: the test's own, on a free port.
            continue;
        }
        if command.starts_with("cargo run -p jobs-mock --features jobs-service --bin jobs-service")
        {
            let mut args = vec![
                "jobs-service".to_owned(),
                "--broker".to_owned(),
                uri.clone(),
            ];
            let mut readme_args = cargo_run_args(&command);
            let http = readme_args.iter().position(|a| a == "--http").unwrap() + 1;
            let readme_address = std::mem::replace(&mut readme_args[http], "127.0.0.1:0".into());
            args.extend(readme_args);
            let started = Server::start(
                &Args::try_parse_from(&args).unwrap(),
                std::sync::Arc::new(|_: &str| {}),
            )
            .unwrap();
            let endpoint = format!("http://{}", started.http_address().unwrap());
            substitutions.push((format!("http://{readme_address}"), endpoint));
            server = Some(started);
            continue;
        }
        if command.starts_with("cargo run -p examples --features paho --bin agent") {
            let mut args = vec![
                "--broker".to_owned(),
                uri.clone(),
                "--work-scale".to_owned(),
            ];
            args.push("0".to_owned());
            args.extend(cargo_run_args(&command));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut agent = Program::start(AGENT, &args);
            let status = agent.wait_exit();
            assert!(status.success(), "{}", agent.output.join("\n"));
            agent_output = Some(agent.output.join("\n"));
            continue;
        }
        outputs.push((command.clone(), shell.run(&command)));
    }
    let server = server.expect("the README starts jobs-service");
    let agent_output = agent_output.expect("the README runs the agent");

    // The digest `sha256sum` prints is the one in the document.
    let (_, digest) = outputs
        .iter()
        .find(|(c, _)| c.starts_with("sha256sum"))
        .unwrap();
    let digest = digest.split_whitespace().next().unwrap();
    let (_, _) = outputs
        .iter()
        .find(|(c, _)| c.contains("create-job") && c.contains(digest))
        .expect("the document carries the digest sha256sum printed");

    // The last command describes the execution: SUCCEEDED, running 3.0.0.
    let (last, described) = outputs.last().unwrap();
    assert!(last.contains("describe-job-execution"), "{last}");
    let described: Value = serde_json::from_str(described).unwrap();
    let execution = &described["execution"];
    assert_eq!(execution["status"], "SUCCEEDED", "{described}");
    assert_eq!(
        execution["statusDetails"]["detailsMap"],
        json!({"version": "3.0.0"})
    );
    assert_eq!(
        std::fs::read_to_string(state.join("firmware/running-version")).unwrap(),
        "3.0.0"
    );

    // The agent printed the steps the README shows, in order.
    let shown = README
        .split_once("The agent prints its steps:\n\n```text\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let printed: Vec<String> = agent_output
        .lines()
        .map(|line| line.replace(&uri, "tcp://127.0.0.1:1883"))
        .collect();
    assert_eq!(printed, shown.lines().collect::<Vec<_>>(), "{agent_output}");
    let execution = server
        .simulator()
        .execution(
            &ThingName::new("pump-07").unwrap(),
            &JobId::new("pump-fw-3-0-0").unwrap(),
        )
        .unwrap();
    assert_eq!(execution.status, JobStatus::Succeeded);
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The emulator with its object store in `dir/files`, and the firmware `bytes` stored as
/// `fw-bucket/KEY`.
struct Fleet {
    broker: LocalBroker,
    server: Server,
}

impl Fleet {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let broker = LocalBroker::start().unwrap();
        let files = dir.join("files");
        let mut args = vec!["--http", "127.0.0.1:0", "--files", files.to_str().unwrap()];
        args.extend(extra);
        let (server, _log) = common::start_service(&broker, &args);
        Self { broker, server }
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        let object = ObjectName::new("fw-bucket", key).unwrap();
        self.server.files().put(&object, bytes).unwrap();
    }

    /// A control-plane call, as on the control topic; panics on an error reply.
    fn call(&self, operation: &str, input: Value) -> Value {
        let request = json!({"operation": operation, "input": input});
        let outcome = handle_control(self.server.simulator(), request.to_string().as_bytes());
        assert!(
            outcome.reply.get("error").is_none(),
            "{operation}: {}",
            outcome.reply
        );
        outcome.reply["output"].clone()
    }

    /// `thing` registered, and a job installing `fw-bucket/KEY` as `version` on it.
    fn firmware_job(&self, thing: &str, job: &str, version: &str, key: &str, sha256: &str) {
        self.call("CreateThing", json!({"thingName": thing}));
        let document = json!({
            "operation": "install-firmware",
            "version": version,
            "sha256": sha256,
            "url": format!("${{aws:iot:s3-presigned-url:https://s3.amazonaws.com/fw-bucket/{key}}}"),
        });
        self.call(
            "CreateJob",
            json!({
                "jobId": job,
                "targets": [format!("arn:aws:iot:us-east-1:123456789012:thing/{thing}")],
                "document": document.to_string(),
                "presignedUrlConfig": {
                    "roleArn": "arn:aws:iam::123456789012:role/jobs-s3",
                    "expiresInSec": 3600,
                },
            }),
        );
    }

    /// Runs the agent for `thing` until one execution ended; returns what it printed.
    fn agent(&self, thing: &str, state: &Path, work_scale: &str) -> String {
        let uri = self.broker.uri();
        let mut agent = Program::start(
            AGENT,
            &[
                "--broker",
                &uri,
                "--thing",
                thing,
                "--state-dir",
                state.to_str().unwrap(),
                "--work-scale",
                work_scale,
                "--exit-after",
                "1",
            ],
        );
        assert!(agent.wait_exit().success(), "{}", agent.output.join("\n"));
        agent.output.join("\n")
    }

    fn execution(&self, thing: &str, job: &str) -> jobs_mock::service::ExecutionInfo {
        self.server
            .simulator()
            .execution(&ThingName::new(thing).unwrap(), &JobId::new(job).unwrap())
            .unwrap()
    }
}

#[test]
fn an_agent_restarted_mid_download_resumes_the_execution_and_continues_its_partial_file() {
    let dir = temp_dir("restart");
    let fleet = Fleet::start(&dir, &[]);
    let image: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    fleet.put("pump-3.2.0.bin", &image);
    let sha256 = sha256_hex(&image);
    fleet.firmware_job("pump-13", "fw-restart", "3.2.0", "pump-3.2.0.bin", &sha256);
    // The agent before the "crash": it took the job (IN_PROGRESS) and had downloaded 400,000
    // bytes into its partial file.
    {
        let transport = jobs_paho::PahoTransport::builder(&fleet.broker.uri(), "pump-13")
            .build()
            .unwrap();
        let client = jobs_core::Client::new(transport).unwrap();
        let jobs = jobs_core::Jobs::new(&client, "pump-13").unwrap();
        let job = jobs.start_next().unwrap().unwrap();
        assert_eq!(job.id().as_str(), "fw-restart");
    }
    let state = dir.join("pump-13");
    let downloads = state.join("firmware/downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(
        downloads.join(format!("{sha256}.bin.part")),
        &image[..400_000],
    )
    .unwrap();

    let output = fleet.agent("pump-13", &state, "0");
    let execution = fleet.execution("pump-13", "fw-restart");
    assert_eq!(execution.status, JobStatus::Succeeded, "{output}");
    assert_eq!(
        execution.status_details.unwrap().get("version"),
        Some("3.2.0")
    );
    assert!(
        output.contains("fw-restart resumed before its reboot; continuing"),
        "{output}"
    );
    assert!(
        output.contains("fw-restart downloaded 1000000 bytes, resumed from byte 400000"),
        "{output}"
    );
    assert_eq!(
        std::fs::read(state.join("firmware/image.bin")).unwrap(),
        image
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_firmware_with_another_sha256_fails_with_the_reason_and_nothing_is_installed() {
    let dir = temp_dir("hash");
    let fleet = Fleet::start(&dir, &[]);
    fleet.put("pump-3.1.0.bin", &[7; 50_000]);
    let wrong = "ab".repeat(32);
    fleet.firmware_job("pump-11", "fw-bad", "3.1.0", "pump-3.1.0.bin", &wrong);
    let state = dir.join("pump-11");
    let output = fleet.agent("pump-11", &state, "0");
    let execution = fleet.execution("pump-11", "fw-bad");
    assert_eq!(execution.status, JobStatus::Failed, "{output}");
    let reason = execution.status_details.unwrap();
    let reason = reason.get("reason").unwrap();
    assert!(
        reason.starts_with(&format!("SHA-256 mismatch: expected {wrong}, got ")),
        "{reason}"
    );
    assert!(
        output.contains("fw-bad FAILED: SHA-256 mismatch"),
        "{output}"
    );
    assert!(!output.contains("rebooting"), "{output}");
    // Nothing installed, nothing left in the downloads.
    assert!(!state.join("firmware/running-version").exists());
    assert!(!state.join("firmware/image.bin").exists());
    let downloads = std::fs::read_dir(state.join("firmware/downloads")).unwrap();
    assert_eq!(downloads.count(), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_document_without_a_url_is_rejected_with_the_reason() {
    let dir = temp_dir("reject");
    let fleet = Fleet::start(&dir, &[]);
    fleet.call("CreateThing", json!({"thingName": "pump-12"}));
    fleet.call(
        "CreateJob",
        json!({
            "jobId": "fw-old",
            "targets": ["arn:aws:iot:us-east-1:123456789012:thing/pump-12"],
            "document": json!({"operation": "install-firmware", "version": "2.4.0"}).to_string(),
        }),
    );
    let output = fleet.agent("pump-12", &dir.join("pump-12"), "0");
    let execution = fleet.execution("pump-12", "fw-old");
    assert_eq!(execution.status, JobStatus::Rejected, "{output}");
    let details = execution.status_details.unwrap();
    let reason = details.get("reason").unwrap();
    assert!(reason.contains("missing field `url`"), "{reason}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_agent_names_a_job_timed_out_during_the_install_as_timed_out_not_canceled() {
    let dir = temp_dir("timeout");
    // 600 times faster: the install's 10-minute step timer runs out after 1 s of real time,
    // while the install takes 30 s (--work-scale 1).
    let fleet = Fleet::start(&dir, &["--time-scale", "600"]);
    let firmware = [1u8; 1000];
    fleet.put("slow.bin", &firmware);
    let sha256 = sha256_hex(&firmware);
    fleet.firmware_job("agent-08", "slow-fw", "9", "slow.bin", &sha256);
    let output = fleet.agent("agent-08", &dir.join("agent-08"), "1");
    assert_eq!(
        fleet.execution("agent-08", "slow-fw").status,
        JobStatus::TimedOut
    );
    // Before: "slow-fw canceled in the cloud; stopping".
    assert!(output.contains("slow-fw installing 9"), "{output}");
    assert!(output.contains("slow-fw timed out (TIMED_OUT"), "{output}");
    assert!(!output.contains("canceled"), "{output}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The SHA-256 of `bytes` in hex, by `sha256sum` (the tool the README uses).
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
