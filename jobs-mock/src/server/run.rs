//! [`Server`]: the emulator hosted on a broker, with the control topic, the change log and
//! the HTTP API; and [`main`], the `jobs-service` program around it.

use std::error::Error;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser as _;
use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome};

use super::change_log::ChangeLog;
use super::cli::{Args, init_logger};
use super::control::{CONTROL_TOPIC, RESULT_TOPIC, handle_control};
use super::files::Files;
use super::http::{HttpServer, Listener};
use super::jobs_file::parse_jobs_file;
use crate::service::{Clock, JobsService, Simulator, SimulatorMode};

/// How often the execution states are checked for the change log.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How long subscribing to and replying on the control topics may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's lines go (the program: standard output).
pub type Output = Arc<dyn Fn(&str) + Send + Sync>;

/// What the worker waits for.
enum Input {
    Command(Vec<u8>),
    Reconnected,
    Stop,
}

/// The control connection's sink: a pure hand-off to the worker.
struct ControlSink(Sender<Input>);

impl MessageSink for ControlSink {
    fn message(&self, topic: &str, payload: &[u8]) {
        if topic == CONTROL_TOPIC {
            let _ = self.0.send(Input::Command(payload.to_vec()));
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        if let ConnectionEvent::Connected { .. } = event {
            let _ = self.0.send(Input::Reconnected);
        }
    }
}

fn subscribe_control(transport: &dyn MqttTransport) -> Result<(), Box<dyn Error>> {
    let outcomes = transport.subscribe(
        &[CONTROL_TOPIC],
        QoS::AtLeastOnce,
        Instant::now() + CONTROL_TIMEOUT,
    )?;
    if outcomes.contains(&SubscribeOutcome::Refused) {
        return Err(format!("the broker refused the subscription to {CONTROL_TOPIC}").into());
    }
    Ok(())
}

/// The running service: the simulator on the broker, the control topic, the change log
/// (checked every 200 ms) and, if asked, the HTTP API. Dropping it stops all of it.
pub struct Server {
    simulator: Arc<Simulator>,
    files: Arc<Files>,
    http: Option<HttpServer>,
    stop: Sender<Input>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Connects to the broker as `args` say (two connections: the emulator's and the control
    /// topic's), creates the jobs of the jobs file, starts the HTTP API and the worker that
    /// answers the control topic and writes the change log to `out`.
    ///
    /// # Errors
    /// The jobs file cannot be read or is invalid, a connection failed, the control topic
    /// cannot be subscribed, or the HTTP address cannot be bound.
    pub fn start(args: &Args, out: Output) -> Result<Self, Box<dyn Error>> {
        let entries = match &args.jobs {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--jobs {}: {e}", path.display()))?;
                parse_jobs_file(&text).map_err(|e| format!("--jobs {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        let specs = entries
            .iter()
            .map(|entry| entry.to_spec().map(|spec| (entry, spec)))
            .collect::<Result<Vec<_>, _>>()?;

        if let Some(dir) = &args.files {
            std::fs::create_dir_all(dir).map_err(|e| format!("--files {}: {e}", dir.display()))?;
        }
        let listener = match &args.http {
            Some(address) => Some(
                Listener::bind(&address.to_string())
                    .map_err(|e| format!("--http {address}: {e}"))?,
            ),
            None => None,
        };
        let mut service = JobsService::new(Clock::scaled(args.time_scale));
        service.set_presigned_url_base(listener.as_ref().map(Listener::files_url));
        let files = Arc::new(Files::new(
            args.files.clone(),
            service.url_signer().clone(),
            service.clock().clone(),
        ));
        let transport = args.broker.connect(&args.client_id)?;
        let mode = match args.relay {
            true => SimulatorMode::Relay,
            false => SimulatorMode::Portable,
        };
        let simulator = Arc::new(Simulator::start_with(Arc::new(transport), service, mode)?);
        let control = args
            .broker
            .connect(&format!("{}-control", args.client_id))?;
        let (tx, rx) = mpsc::channel();
        control.set_sink(Arc::new(ControlSink(tx.clone())))?;
        subscribe_control(&control)?;
        out(&format!(
            "connected to {} as {} (control: {CONTROL_TOPIC}, replies: {RESULT_TOPIC})",
            args.broker.uri, args.client_id
        ));
        for (entry, spec) in specs {
            simulator.create_job(spec)?;
            out(&format!(
                "created {} for {}",
                entry.job_id,
                entry.things.join(", ")
            ));
        }
        let http = match listener {
            Some(listener) => {
                let server =
                    HttpServer::start(listener, Arc::clone(&simulator), Arc::clone(&files))?;
                out(&format!("http: listening on http://{}", server.address()));
                if let Some(dir) = files.root() {
                    out(&format!("files: serving {}", dir.display()));
                }
                Some(server)
            }
            None => None,
        };
        let worker = {
            let simulator = Arc::clone(&simulator);
            std::thread::Builder::new()
                .name("jobs-service".into())
                .spawn(move || {
                    let mut changes = ChangeLog::new();
                    loop {
                        for line in changes.changes(&simulator.executions()) {
                            out(&line);
                        }
                        match rx.recv_timeout(WATCH_INTERVAL) {
                            Ok(Input::Command(payload)) => {
                                let outcome = handle_control(&simulator, &payload);
                                out(&format!("control: {}", outcome.summary));
                                let reply = outcome.reply.to_string();
                                if let Err(error) = control.publish(
                                    RESULT_TOPIC,
                                    reply.as_bytes(),
                                    QoS::AtLeastOnce,
                                    Instant::now() + CONTROL_TIMEOUT,
                                ) {
                                    out(&format!("control: could not publish the reply: {error}"));
                                }
                            }
                            Ok(Input::Reconnected) => {
                                if let Err(error) = subscribe_control(&control) {
                                    out(&format!("control: could not re-subscribe: {error}"));
                                }
                            }
                            Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                            Err(RecvTimeoutError::Timeout) => {}
                        }
                    }
                    for line in changes.changes(&simulator.executions()) {
                        out(&line);
                    }
                })?
        };
        Ok(Self {
            simulator,
            files,
            http,
            stop: tx,
            worker: Some(worker),
        })
    }

    /// The simulator, for inspection and shortcuts.
    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.simulator
    }

    /// The object store of pre-signed downloads (empty without `--files`); tests put objects
    /// with [`Files::put`].
    pub fn files(&self) -> &Arc<Files> {
        &self.files
    }

    /// The address the HTTP API listens on, if it was asked for.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(Input::Stop);
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            log::error!("the jobs-service worker panicked");
        }
        self.http = None;
    }
}

/// Writes a line to standard output; exits quietly (status 0) when the reader has gone (a
/// closed pipe, as with `jobs-service | head`) instead of panicking.
pub fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        log::warn!("cannot write to standard output: {error}");
    }
}

/// The `jobs-service` program: parses the command line (`--help` for the flags), starts the
/// [`Server`], prints `ready`, then runs until killed — or, with `--console`, reads control
/// requests from standard input until `quit` or its end.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logger();
    let server = match Server::start(&args, Arc::new(say)) {
        Ok(server) => server,
        Err(error) => {
            let mut message = format!("jobs-service: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    say("ready");
    if !args.console {
        // A server: no standard input; it stops on a signal (Ctrl-C, kill), which ends the
        // process.
        loop {
            std::thread::park();
        }
    }
    say("console: one JSON request per line, such as {\"operation\": \"ListJobs\"}; quit to stop");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        match line {
            "" => {}
            "quit" | "exit" => break,
            request => say(&handle_control(server.simulator(), request.as_bytes())
                .reply
                .to_string()),
        }
    }
    drop(server);
    say("stopped");
    ExitCode::SUCCESS
}
