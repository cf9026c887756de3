//! A private mosquitto broker on `127.0.0.1`, for integration tests and CI runs of device code
//! against a real MQTT broker, plus throwaway TLS certificates for it.
//!
//! [`LocalBroker::start`] writes a configuration into a fresh temporary directory, picks free
//! ports, spawns `mosquitto -c <config>` and returns once every listener accepts TCP
//! connections (a bounded poll of the ports, at most 10 s). The broker runs as a child process of
//! the caller: [`LocalBroker::kill`] and dropping the broker kill it **by its pid** (SIGKILL: an
//! outage as the clients see it, no DISCONNECT) and reap it; dropping also removes the
//! temporary directory. [`LocalBroker::restart`] starts it again on the same ports, for outage
//! tests; [`LocalBroker::pause`] and [`LocalBroker::resume`] stop and continue the process
//! (SIGSTOP / SIGCONT, by its pid), for tests of a broker that stops answering.
//!
//! The configuration is the one the measurements in this crate's docs were made with:
//! anonymous access, no persistence (unless [`LocalBroker::start_persistent`]), `set_tcp_nodelay true` (without it every request/response
//! round trip waits ~40 ms for a delayed ACK), log (to standard error, unbuffered) into a file in the temporary directory
//! ([`LocalBroker::log`]), and `user root` when the caller runs as root (otherwise mosquitto drops
//! to user `mosquitto` before reading the key files and fails). With
//! [`LocalBroker::start_with_tls`] a second listener requires TLS and a client certificate
//! signed by the given CA (`require_certificate true`, `use_identity_as_username true`).
//!
//! [`LocalBroker::start_aws`] starts one with AWS IoT Core's quotas and implicit Jobs replies,
//! through the `jobs-mosquitto-plugin` (see [`crate::aws`] and [`aws_plugin_path`]).
//!
//! [`LocalBroker::start_refusing`] starts one that also refuses one subscription,
//! [`REFUSED_FILTER`], with SUBACK 0x80, through mosquitto's dynamic-security plugin (Debian's
//! `mosquitto` package ships it): mosquitto's `acl_file` never refuses a SUBSCRIBE (2.0.11
//! grants a denied filter and then delivers nothing on it), but an ACL of the plugin does. Its
//! configuration, `dynsec.json` in the temporary directory, allows everything else to
//! anonymous clients; the plugin knows no user names, so a client that connects with one is
//! refused (CONNACK 5), which is why the other brokers do without it.
//!
//! Needs the `mosquitto` executable on `PATH` (Debian/Ubuntu: `apt-get install mosquitto`; the
//! package does not start a service in containers) and, for [`TestCertificates::generate`], the
//! `openssl` command-line tool. Nothing here panics: every failure is an [`io::Error`] whose
//! message says what failed (a missing executable keeps the kind
//! [`io::ErrorKind::NotFound`]).
//!
//! # Example
//! ```no_run
//! use std::net::TcpStream;
//! use jobs_mock::local_broker::LocalBroker;
//!
//! let mut broker = LocalBroker::start()?;
//! TcpStream::connect(("127.0.0.1", broker.port()))?; // an MQTT client would connect to broker.uri()
//! broker.pause()?; // SIGSTOP: connections stay open, nothing is answered
//! broker.resume()?;
//! drop(broker); // kills mosquitto by its pid and removes its directory
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod aws;

pub use aws::{PLUGIN_ENV, aws_plugin_path};

/// How long [`LocalBroker::start`] and [`LocalBroker::restart`] wait for the listeners.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the ports are polled while waiting for the broker.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The filter [`LocalBroker::start_refusing`] refuses ([`LocalBroker::refused_filter`]).
pub const REFUSED_FILTER: &str = "local-broker/refused";

/// Where distributions install mosquitto's dynamic-security plugin.
const DYNSEC_PLUGIN_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/lib64/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/opt/homebrew/lib/mosquitto_dynamic_security.so",
];

/// The dynamic-security configuration: anonymous clients may do everything but subscribe to
/// [`REFUSED_FILTER`].
const DYNSEC_CONFIG: &str = r#"{
  "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true, "subscribe": true, "unsubscribe": true},
  "clients": [],
  "groups": [{"groupname": "anonymous", "roles": [{"rolename": "refuser"}]}],
  "roles": [{"rolename": "refuser", "acls": [{"acltype": "subscribeLiteral", "topic": "local-broker/refused", "priority": 0, "allow": false}]}],
  "anonymousGroup": "anonymous"
}
"#;

/// How many sets of fresh ports [`LocalBroker::start`] tries when mosquitto exits at once
/// (another process took a port between choosing it and binding it).
const PORT_ATTEMPTS: usize = 5;

/// A mosquitto process on `127.0.0.1`, owned by this value: killed by its pid and reaped on
/// [`kill`](Self::kill) and on drop. See the [module docs](self).
#[derive(Debug)]
pub struct LocalBroker {
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    tls: Option<TlsFiles>,
    /// Sessions are saved to `mosquitto.db` in `dir` on a graceful [`LocalBroker::stop`].
    persistent: bool,
    /// The dynamic-security plugin, for [`LocalBroker::start_refusing`] when it is installed.
    dynsec: Option<PathBuf>,
    /// The configuration lines of the AWS plugin, for [`LocalBroker::start_aws`].
    aws: Option<String>,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
}

/// The certificate files a TLS listener reads (again on every restart).
#[derive(Debug, Clone)]
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl LocalBroker {
    /// Starts a broker with one plain listener on a free port of `127.0.0.1`, and waits until
    /// it accepts connections.
    ///
    /// # Errors
    /// When the temporary directory cannot be written, `mosquitto` cannot be run (kind
    /// [`io::ErrorKind::NotFound`] if it is not installed), it keeps exiting at once, or it
    /// does not listen within [`STARTUP_TIMEOUT`] (kind [`io::ErrorKind::TimedOut`]). The
    /// message includes the broker's log.
    pub fn start() -> io::Result<Self> {
        Self::start_inner(None, false, false, None)
    }

    /// Starts a broker as [`start`](Self::start) does, which also refuses [`REFUSED_FILTER`]
    /// (SUBACK 0x80) when mosquitto's dynamic-security plugin is installed (see
    /// [`refused_filter`](Self::refused_filter)). Clients must connect without a user name.
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub fn start_refusing() -> io::Result<Self> {
        Self::start_inner(None, false, true, None)
    }

    /// Starts a broker with one plain listener that keeps sessions across restarts: it saves
    /// them when [`stop`](Self::stop)ped (gracefully) and [`restart`](Self::restart) resumes
    /// them, so a client reconnecting with a persistent session gets `session_present`.
    /// [`forget_sessions`](Self::forget_sessions) discards them while it is stopped.
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub fn start_persistent() -> io::Result<Self> {
        Self::start_inner(None, true, false, None)
    }

    /// Starts a broker with a plain listener and a mutual-TLS listener (TLS, client
    /// certificate required, signed by `certificates`' CA; the broker presents
    /// `certificates`' broker certificate, issued for `localhost`). The files are read again on
    /// [`restart`](Self::restart), so keep them until the broker is dropped.
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub fn start_with_tls(certificates: &TestCertificates) -> io::Result<Self> {
        Self::start_inner(
            Some(TlsFiles {
                ca: absolute(&certificates.ca)?,
                cert: absolute(&certificates.broker_cert)?,
                key: absolute(&certificates.broker_key)?,
            }),
            false,
            false,
            None,
        )
    }

    fn start_inner(
        tls: Option<TlsFiles>,
        persistent: bool,
        refuse: bool,
        aws: Option<String>,
    ) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(crate::unique_name("jobs-mock-broker"));
        fs::create_dir_all(&dir)
            .map_err(|e| context(e, &format!("cannot create {}", dir.display())))?;
        let dynsec = match refuse {
            false => None,
            true => DYNSEC_PLUGIN_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|path| path.is_file()),
        };
        if dynsec.is_some() {
            let path = dir.join("dynsec.json");
            fs::write(&path, DYNSEC_CONFIG)
                .map_err(|e| context(e, &format!("cannot write {}", path.display())))?;
        }
        let mut broker = Self {
            config: dir.join("mosquitto.conf"),
            log: dir.join("mosquitto.log"),
            dir,
            tls,
            persistent,
            dynsec,
            aws,
            port: 0,
            tls_port: None,
            child: None,
        };
        let root = running_as_root(&broker.dir);
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            broker.port = free_port()?;
            broker.tls_port = match broker.tls {
                Some(_) => Some(free_port()?),
                None => None,
            };
            fs::write(&broker.config, broker.config_text(root))
                .map_err(|e| context(e, &format!("cannot write {}", broker.config.display())))?;
            match broker.spawn(false) {
                Ok(()) => return Ok(broker),
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("mosquitto did not start")))
    }

    fn config_text(&self, root: bool) -> String {
        let mut config = String::new();
        if root {
            config.push_str("user root\n");
        }
        config.push_str(
            "per_listener_settings false\nallow_anonymous true\n\
             set_tcp_nodelay true\nlog_dest stderr\nlog_type all\n",
        );
        if let Some(plugin) = &self.dynsec {
            let _ = writeln!(
                config,
                "plugin {}\nplugin_opt_config_file {}",
                plugin.display(),
                self.dir.join("dynsec.json").display()
            );
        }
        if let Some(aws) = &self.aws {
            config.push_str(aws);
        }
        if self.persistent {
            let _ = writeln!(
                config,
                "persistence true\npersistence_location {}/",
                self.dir.display()
            );
        } else {
            config.push_str("persistence false\n");
        }
        let _ = writeln!(config, "listener {} 127.0.0.1", self.port);
        if let (Some(tls), Some(tls_port)) = (&self.tls, self.tls_port) {
            let _ = write!(
                config,
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate true\nuse_identity_as_username true\n",
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display()
            );
        }
        config
    }

    /// `tcp://127.0.0.1:<port>`: the plain listener.
    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `ssl://<host>:<TLS port>` (use `localhost`, the name in [`TestCertificates`]' broker
    /// certificate); `None` without a TLS listener.
    pub fn tls_uri(&self, host: &str) -> Option<String> {
        self.tls_port.map(|port| format!("ssl://{host}:{port}"))
    }

    /// The filter this broker refuses (SUBACK 0x80): [`REFUSED_FILTER`] for a broker started
    /// by [`start_refusing`](Self::start_refusing) when mosquitto's dynamic-security plugin is
    /// installed (see the [module docs](self)); `None` otherwise.
    pub fn refused_filter(&self) -> Option<&str> {
        self.dynsec.as_ref().map(|_| REFUSED_FILTER)
    }

    /// The port of the plain listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the TLS listener, if there is one.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The process id of the running mosquitto; `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails if the broker was started and has exited since (crashed, or was killed by
    /// someone else), with its exit status and the end of its log; `Ok` while it runs and
    /// after [`kill`](Self::kill).
    ///
    /// # Errors
    /// When the process has exited, or its state cannot be read.
    pub fn check_running(&mut self) -> io::Result<()> {
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        match child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "mosquitto exited unexpectedly ({status}); log:\n{}",
                self.log_tail()
            ))),
        }
    }

    /// The path of the broker's log file (everything it logged, across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The broker's log so far, for diagnostics.
    ///
    /// # Errors
    /// When the log file cannot be read.
    pub fn log(&self) -> io::Result<String> {
        fs::read_to_string(&self.log)
    }

    /// Kills the broker by its pid (SIGKILL: no DISCONNECT, the clients see an outage) and
    /// reaps it. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(error) = child.kill() {
                log::debug!("killing mosquitto {}: {error}", child.id());
            }
            if let Err(error) = child.wait() {
                log::debug!("reaping mosquitto {}: {error}", child.id());
            }
        }
    }

    /// Stops the broker gracefully (SIGTERM, by its pid; resumed first if paused): it closes
    /// every connection and, if [persistent](Self::start_persistent), saves the sessions.
    /// Waits for it to exit, at most [`STARTUP_TIMEOUT`], then kills it. Does nothing if it
    /// is not running.
    ///
    /// # Errors
    /// When the `kill` command cannot be run or fails.
    pub fn stop(&mut self) -> io::Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        self.resume()?;
        self.signal("TERM")?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while let Some(child) = &mut self.child {
            if child.try_wait()?.is_some() || Instant::now() > deadline {
                break;
            }
            // A bounded poll for the process to exit.
            thread::sleep(POLL_INTERVAL);
        }
        self.kill();
        Ok(())
    }

    /// Discards the sessions a [persistent](Self::start_persistent) broker saved, so that the
    /// next [`restart`](Self::restart) starts afresh. Only while it is not running (after
    /// [`stop`](Self::stop) or [`kill`](Self::kill)).
    ///
    /// # Errors
    /// When the broker is running, or the saved sessions cannot be removed.
    pub fn forget_sessions(&self) -> io::Result<()> {
        if self.child.is_some() {
            return Err(io::Error::other(
                "stop the broker before forgetting its sessions",
            ));
        }
        match fs::remove_file(self.dir.join("mosquitto.db")) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Stops the broker process (SIGSTOP, by its pid, through the `kill` command): its
    /// connections stay open but nothing is read or answered until [`resume`](Self::resume),
    /// as with a broker that hangs. Does nothing if it is not running.
    ///
    /// # Errors
    /// When the `kill` command cannot be run or fails.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("STOP")
    }

    /// Lets a [`pause`](Self::pause)d broker run again (SIGCONT, by its pid). Does nothing if it
    /// is not running.
    ///
    /// # Errors
    /// When the `kill` command cannot be run or fails.
    pub fn resume(&self) -> io::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .status()
            .map_err(|e| context(e, "cannot run kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{signal} {pid} failed ({status})"
            )))
        }
    }

    /// Starts the broker again on the same ports (killing it first if it runs), and waits until
    /// it accepts connections. A port still held by the previous process is retried until
    /// [`STARTUP_TIMEOUT`].
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn(true)
    }

    /// Spawns mosquitto and waits until every listener accepts. If it exits at once, retries
    /// until the deadline when `retry_exits` (same ports, after a kill), else reports
    /// [`io::ErrorKind::AddrInUse`] so that the caller can pick other ports.
    fn spawn(&mut self, retry_exits: bool) -> io::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let ports: Vec<u16> = [Some(self.port), self.tls_port]
            .into_iter()
            .flatten()
            .collect();
        'attempt: loop {
            // Where this attempt's log starts: readiness is judged on its own lines only.
            let log_start = fs::metadata(&self.log).map_or(0, |m| m.len());
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(|e| context(e, &format!("cannot open {}", self.log.display())))?;
            let mut child = Command::new("mosquitto")
                .arg("-c")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| context(e, "cannot run mosquitto (is it installed?)"))?;
            loop {
                if let Some(status) = child.try_wait()? {
                    if retry_exits && Instant::now() < deadline {
                        thread::sleep(POLL_INTERVAL);
                        continue 'attempt;
                    }
                    let kind = if retry_exits {
                        io::ErrorKind::Other
                    } else {
                        io::ErrorKind::AddrInUse
                    };
                    return Err(io::Error::new(
                        kind,
                        format!("mosquitto exited with {status}; log:\n{}", self.log_tail()),
                    ));
                }
                // Ready when *this* process says it listens on every port (another process
                // may have taken a port between choosing and binding it: then something else
                // accepts there while this one exits) and the ports accept connections.
                if self.listening_since(log_start, &ports)
                    && ports
                        .iter()
                        .all(|port| TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_ok())
                {
                    self.child = Some(child);
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "mosquitto not listening within {STARTUP_TIMEOUT:?}; log:\n{}",
                            self.log_tail()
                        ),
                    ));
                }
                // A bounded readiness poll of the ports.
                thread::sleep(POLL_INTERVAL);
            }
        }
    }

    /// Whether the log written since byte `start` says mosquitto opened a listener on every
    /// port (`Opening ipv4 listen socket on port N.`).
    fn listening_since(&self, start: u64, ports: &[u16]) -> bool {
        let Ok(log) = fs::read(&self.log) else {
            return false;
        };
        let recent = String::from_utf8_lossy(
            log.get(usize::try_from(start).unwrap_or(0)..)
                .unwrap_or_default(),
        );
        ports
            .iter()
            .all(|port| recent.contains(&format!("listen socket on port {port}.")))
    }

    /// The last lines of the log, for error messages.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.kill();
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            log::debug!("removing {}: {error}", self.dir.display());
        }
    }
}

/// Throwaway PKI for a [`LocalBroker`] with TLS, made with the `openssl` command-line tool:
/// a test CA; a broker certificate for `localhost` only (no IP address in its names, so
/// connecting to `127.0.0.1` fails host-name verification); a device (client) certificate
/// signed by the CA; and an unrelated CA, to test that an untrusted broker is refused. Valid
/// for one day. PEM files, named after the fields, in the directory given to
/// [`generate`](Self::generate).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestCertificates {
    /// The test CA's certificate (`ca.crt`): the trust anchor for both sides.
    pub ca: PathBuf,
    /// The broker's certificate (`broker.crt`), for `localhost`.
    pub broker_cert: PathBuf,
    /// The broker's private key (`broker.key`).
    pub broker_key: PathBuf,
    /// A device certificate (`device.crt`, CN `test-device`), for client authentication.
    pub device_cert: PathBuf,
    /// The device's private key (`device.key`).
    pub device_key: PathBuf,
    /// A CA that signed nothing here (`other-ca.crt`).
    pub other_ca: PathBuf,
}

impl TestCertificates {
    /// Generates the certificates into `dir` (which must exist; files are overwritten). CAs
    /// use ECDSA P-256, leaves RSA 2048. Takes well under a second.
    ///
    /// # Errors
    /// When `openssl` cannot be run (kind [`io::ErrorKind::NotFound`] if it is not installed)
    /// or one of its commands fails (the message includes its standard error).
    pub fn generate(dir: &Path) -> io::Result<Self> {
        let dir = absolute(dir)?;
        let ca = |name: &str, cn: &str| {
            let subj = format!("/CN={cn}");
            let key = format!("{name}.key");
            let crt = format!("{name}.crt");
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-sha256",
                    "-days",
                    "1",
                    "-subj",
                    &subj,
                    "-keyout",
                    &key,
                    "-out",
                    &crt,
                ],
            )
        };
        ca("ca", "jobs-test-ca")?;
        ca("other-ca", "jobs-other-ca")?;
        let leaf = |name: &str, cn: &str, exts: &[&str]| {
            let subj = format!("/CN={cn}");
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let mut args = vec![
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", &subj,
            ];
            for ext in exts {
                args.extend(["-addext", ext]);
            }
            args.extend(["-keyout", &key, "-out", &csr]);
            openssl(&dir, &args)?;
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-sha256",
                    "-days",
                    "1",
                    "-in",
                    &csr,
                    "-copy_extensions",
                    "copy",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                ],
            )
        };
        leaf(
            "broker",
            "localhost",
            &[
                "subjectAltName=DNS:localhost",
                "extendedKeyUsage=serverAuth",
            ],
        )?;
        leaf("device", "test-device", &["extendedKeyUsage=clientAuth"])?;
        Ok(Self {
            ca: dir.join("ca.crt"),
            broker_cert: dir.join("broker.crt"),
            broker_key: dir.join("broker.key"),
            device_cert: dir.join("device.crt"),
            device_key: dir.join("device.key"),
            other_ca: dir.join("other-ca.crt"),
        })
    }
}

fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| context(e, "cannot run openssl (is it installed?)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Whether files this process creates belong to root (then mosquitto needs `user root`).
#[cfg(unix)]
fn running_as_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

#[cfg(not(unix))]
fn running_as_root(_dir: &Path) -> bool {
    false
}

/// `path` made absolute against the current directory (mosquitto and openssl run elsewhere).
fn absolute(path: &Path) -> io::Result<PathBuf> {
    std::path::absolute(path)
}

/// The same error kind, with what was being done in front of the message.
fn context(error: io::Error, doing: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{doing}: {error}"))
}
