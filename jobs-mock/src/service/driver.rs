//! [`Simulator`]: runs a [`JobsService`] over any MQTT transport.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use jobs_core::{JobId, RejectCode, ThingName};
use parking_lot::Mutex;
use serde_json::Value;

use super::api::{ApiError, ControlOperation, Operation};
use super::control::{ControlError, ExecutionInfo, JobSpec};
use super::jobs_service::{JobsService, Outgoing, Quirks};
use super::mode::SimulatorMode;

/// The request topics of every thing, subscribed in one SUBSCRIBE with QoS 1.
pub const REQUEST_FILTERS: [&str; 4] = [
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
];

/// The longest the worker waits without checking timers when the service runs on a real
/// clock (it otherwise wakes when the earliest timer is due).
const TIMER_TICK: Duration = Duration::from_millis(500);

/// The bound on each SUBSCRIBE and PUBLISH of the simulator.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long dropping a [`Simulator`] waits for its worker thread to finish.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Why [`Simulator::start`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SimulatorError {
    /// Subscribing to the request topics failed, or the broker refused a filter
    /// ([`TransportError::SubscriptionRefused`]).
    Subscribe(TransportError),
    /// The worker thread could not be spawned.
    Spawn(std::io::Error),
    /// The transport refused the simulator's sink (it already serves another client).
    Sink(TransportError),
}

impl fmt::Display for SimulatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subscribe(_) => f.write_str("could not subscribe to the Jobs request topics"),
            Self::Spawn(_) => f.write_str("could not spawn the simulator thread"),
            Self::Sink(_) => f.write_str("could not install the simulator on the transport"),
        }
    }
}

impl StdError for SimulatorError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Subscribe(source) => Some(source),
            Self::Spawn(source) => Some(source),
            Self::Sink(source) => Some(source),
        }
    }
}

enum Message {
    Request { topic: String, payload: Vec<u8> },
    Reconnected,
    Stop,
}

/// The sink installed on the simulator's transport: a pure hand-off to the worker. It never
/// blocks (the channel is unbounded) and never calls the transport.
struct Inbox {
    tx: Sender<Message>,
}

impl MessageSink for Inbox {
    fn message(&self, topic: &str, payload: &[u8]) {
        let message = Message::Request {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
        };
        if self.tx.send(message).is_err() {
            log::debug!("simulator stopped; dropping a request on {topic}");
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Connected {
                session_present: Some(true),
            } => log::info!("simulator transport reconnected; session resumed"),
            ConnectionEvent::Connected { .. } => {
                log::info!("simulator transport reconnected; re-subscribing");
                if self.tx.send(Message::Reconnected).is_err() {
                    log::debug!("simulator stopped; not re-subscribing");
                }
            }
            ConnectionEvent::ConnectionLost => {
                log::info!("simulator transport lost the connection")
            }
            _ => log::debug!("simulator transport event {event:?}"),
        }
    }
}

/// The sink of [`Simulator::start_inline`]: runs the service on the delivering thread and
/// publishes the answers from there (only on the mock, whose deliveries hold no lock).
struct Inline {
    service: Arc<Mutex<JobsService>>,
    transport: Arc<dyn MqttTransport>,
    mode: SimulatorMode,
}

impl MessageSink for Inline {
    fn message(&self, topic: &str, payload: &[u8]) {
        let out = self.mode.serve(&self.service, topic, payload);
        publish_all(self.transport.as_ref(), &out);
    }

    fn connection(&self, event: ConnectionEvent) {
        if let ConnectionEvent::Connected { session_present } = event
            && session_present != Some(true)
            && let Err(error) = subscribe(self.transport.as_ref(), self.mode)
        {
            log::warn!("simulator could not re-subscribe: {error}");
        }
    }
}

/// The Jobs service simulator on an MQTT transport: the [`JobsService`] answers every Jobs
/// request published on the broker, for any thing.
///
/// [`start`](Self::start) installs a message sink on the transport, subscribes once (QoS 1)
/// to [`REQUEST_FILTERS`] (in [`SimulatorMode::Relay`], given to
/// [`start_with`](Self::start_with), to the relay instead), checks every outcome, and spawns one worker thread. The sink only
/// hands messages to the worker over a channel; the worker runs the service and publishes its
/// answers with QoS 1, the reply before the events it caused, in the order the requests
/// arrived. On a real clock the worker also fires each timer when it is due (it sleeps until
/// the earliest deadline, at most half a second at a time). After a reconnect that did not
/// resume the session the worker re-subscribes.
///
/// The control methods lock the service, compute the events, release the lock and publish the
/// events from the caller's thread before returning: on the [`MockBroker`](crate::MockBroker),
/// which delivers synchronously, a device has received the `notify` of a new job by the time
/// [`create_job`](Self::create_job) returns.
///
/// Publish failures are logged (target `jobs_mock`) and otherwise ignored, as a lost message
/// would be on a real broker. Dropping the simulator stops the worker (waiting at most 5 s);
/// its sink stays installed on the transport and drops what arrives. Dropping an inline
/// simulator disconnects its connection.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use jobs_core::{Client, Document, JobId, JobStatus, Jobs, ThingName};
/// use jobs_mock::MockBroker;
/// use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker = MockBroker::new();
/// let service = JobsService::new(Clock::virtual_at(1_750_000_000));
/// let simulator = Simulator::start(Arc::new(broker.connect("jobs-service")), service)?;
///
/// let client = Client::new(broker.connect("pump-07"))?;
/// let jobs = Jobs::new(&client, "pump-07")?;
/// simulator.create_job(
///     JobSpec::new(JobId::new("rotate-logs")?, Document::from_json(r#"{"keep":5}"#)?)
///         .thing(ThingName::new("pump-07")?),
/// )?;
///
/// let mut job = jobs.start_next()?.expect("a job is pending");
/// job.update(JobStatus::Succeeded, None)?;
/// let state = simulator
///     .execution(&ThingName::new("pump-07")?, job.id())
///     .expect("the execution exists");
/// assert_eq!(state.status, JobStatus::Succeeded);
/// # Ok(())
/// # }
/// ```
pub struct Simulator {
    service: Arc<Mutex<JobsService>>,
    transport: Arc<dyn MqttTransport>,
    /// `None` for [`Simulator::start_inline`], which answers on the publishing thread.
    worker: Option<Worker>,
    /// The connection of [`Simulator::start_inline`], disconnected on drop (its sink holds the
    /// transport, so only an explicit disconnect ends that cycle).
    inline: Option<crate::MockTransport>,
}

/// The worker thread of [`Simulator::start`] and how to stop it.
struct Worker {
    tx: Sender<Message>,
    done: Receiver<()>,
    handle: JoinHandle<()>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("running", &self.worker.is_some())
            .finish()
    }
}

impl Simulator {
    /// Installs the simulator on `transport` (give it a connection of its own), subscribes to
    /// the request topics and starts the worker thread.
    ///
    /// # Errors
    /// [`SimulatorError::Subscribe`] when the SUBSCRIBE failed or a filter was refused;
    /// [`SimulatorError::Spawn`] when the thread could not be started.
    pub fn start(
        transport: Arc<dyn MqttTransport>,
        service: JobsService,
    ) -> Result<Self, SimulatorError> {
        Self::start_with(transport, service, SimulatorMode::Portable)
    }

    /// [`start`](Self::start) in `mode`: [`SimulatorMode::Relay`] behind an AWS-mode broker
    /// (see [`crate::aws`]).
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub fn start_with(
        transport: Arc<dyn MqttTransport>,
        service: JobsService,
        mode: SimulatorMode,
    ) -> Result<Self, SimulatorError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        transport
            .set_sink(Arc::new(Inbox { tx: tx.clone() }))
            .map_err(SimulatorError::Sink)?;
        subscribe(transport.as_ref(), mode).map_err(SimulatorError::Subscribe)?;
        let real_clock = !service.clock().is_virtual();
        let service = Arc::new(Mutex::new(service));
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let handle = {
            let service = Arc::clone(&service);
            let transport = Arc::clone(&transport);
            std::thread::Builder::new()
                .name("jobs-simulator".into())
                .spawn(move || {
                    run(&service, transport.as_ref(), &rx, real_clock, mode);
                    // The receiver may be gone if the simulator gave up waiting.
                    let _ = done_tx.send(());
                })
                .map_err(SimulatorError::Spawn)?
        };
        Ok(Self {
            service,
            transport,
            worker: Some(Worker { tx, done, handle }),
            inline: None,
        })
    }

    /// Installs the simulator on a [`MockBroker`](crate::MockBroker) connection so that it
    /// answers **on the publishing thread**, before the device's `publish` returns, with no
    /// worker thread: one request costs no thread hand-off, which makes in-process
    /// benchmarks measure the client rather than the scheduler.
    ///
    /// Only the mock allows this (its deliveries hold no lock, so the simulator may publish
    /// from inside one); a real transport must use [`start`](Self::start). Requests from
    /// several threads are answered on each thread, the service lock held only while
    /// computing the answer. On the system clock, expired timers fire at the next request or
    /// control call rather than every half second.
    ///
    /// # Errors
    /// [`SimulatorError::Subscribe`] when the SUBSCRIBE failed or a filter was refused.
    pub fn start_inline(
        transport: crate::MockTransport,
        service: JobsService,
    ) -> Result<Self, SimulatorError> {
        Self::start_inline_with(transport, service, SimulatorMode::Portable)
    }

    /// [`start_inline`](Self::start_inline) in `mode`: [`SimulatorMode::Relay`] on an
    /// AWS-mode [`MockBroker`](crate::MockBroker).
    ///
    /// # Errors
    /// As for [`start_inline`](Self::start_inline).
    pub fn start_inline_with(
        transport: crate::MockTransport,
        service: JobsService,
        mode: SimulatorMode,
    ) -> Result<Self, SimulatorError> {
        let service = Arc::new(Mutex::new(service));
        let connection = transport.clone();
        let transport: Arc<dyn MqttTransport> = Arc::new(transport);
        transport
            .set_sink(Arc::new(Inline {
                service: Arc::clone(&service),
                transport: Arc::clone(&transport),
                mode,
            }))
            .map_err(SimulatorError::Sink)?;
        if let Err(error) = subscribe(transport.as_ref(), mode) {
            connection.disconnect();
            return Err(SimulatorError::Subscribe(error));
        }
        Ok(Self {
            service,
            transport,
            worker: None,
            inline: Some(connection),
        })
    }

    /// Runs `change` on the service with its lock held, then publishes the messages it returned
    /// from this thread, with no lock held.
    fn control<R>(
        &self,
        change: impl FnOnce(&mut JobsService) -> Result<Vec<Outgoing>, R>,
    ) -> Result<(), R> {
        let out = change(&mut self.service.lock())?;
        publish_all(self.transport.as_ref(), &out);
        Ok(())
    }

    /// Creates a job; see [`JobsService::create_job`]. The events are published before this
    /// returns.
    ///
    /// # Errors
    /// As for [`JobsService::create_job`].
    pub fn create_job(&self, spec: JobSpec) -> Result<(), ControlError> {
        self.control(|service| service.create_job(spec))
    }

    /// Cancels a job; see [`JobsService::cancel_job`]. The events are published before this
    /// returns.
    ///
    /// # Errors
    /// As for [`JobsService::cancel_job`].
    pub fn cancel_job(&self, job: &JobId) -> Result<(), ControlError> {
        self.control(|service| service.cancel_job(job))
    }

    /// Removes a thing from a job; see [`JobsService::remove_thing`]. The events are published
    /// before this returns.
    ///
    /// # Errors
    /// As for [`JobsService::remove_thing`].
    pub fn remove_thing(&self, job: &JobId, thing: &ThingName) -> Result<(), ControlError> {
        self.control(|service| service.remove_thing(job, thing))
    }

    /// Advances the clock and fires expired timers; see [`JobsService::advance_clock`]. The
    /// events are published before this returns.
    pub fn advance_clock(&self, by: Duration) {
        let out = self.service.lock().advance_clock(by);
        publish_all(self.transport.as_ref(), &out);
    }

    /// Runs a control-plane operation; see [`JobsService::call`]. The events are published
    /// (with no lock held) before this returns, whether the operation succeeded or not.
    ///
    /// # Errors
    /// The operation's [`ApiError`].
    pub fn call<O: ControlOperation>(&self, request: O) -> Result<O::Output, ApiError> {
        let called = self.service.lock().call(request);
        publish_all(self.transport.as_ref(), &called.events);
        called.result
    }

    /// Runs a control-plane operation given by name with JSON input; see
    /// [`JobsService::call_json`]. The events are published before this returns.
    ///
    /// # Errors
    /// The operation's [`ApiError`].
    pub fn call_json(&self, operation: Operation, input: Value) -> Result<Value, ApiError> {
        let called = self.service.lock().call_json(operation, input);
        publish_all(self.transport.as_ref(), &called.events);
        called.result
    }

    /// Forgets everything, without events; see [`JobsService::forget_everything`].
    pub fn forget_everything(&self) {
        self.service.lock().forget_everything();
    }

    /// Forgets one thing, without events; see [`JobsService::forget_thing`].
    pub fn forget_thing(&self, thing: &ThingName) {
        self.service.lock().forget_thing(thing);
    }

    /// Answers the next `n` requests with `RequestThrottled`; see
    /// [`JobsService::throttle_next_requests`].
    pub fn throttle_next_requests(&self, n: usize) {
        self.service.lock().throttle_next_requests(n);
    }

    /// Answers the next `n` requests with `InternalError`; see
    /// [`JobsService::fail_next_requests`].
    pub fn fail_next_requests(&self, n: usize) {
        self.service.lock().fail_next_requests(n);
    }

    /// [`JobsService::refuse_updates`].
    pub fn refuse_updates(&self, job: &JobId, code: RejectCode, times: Option<usize>) {
        self.service.lock().refuse_updates(job, code, times);
    }

    /// Replaces the quirks; see [`JobsService::set_quirks`].
    pub fn set_quirks(&self, quirks: Quirks) {
        self.service.lock().set_quirks(quirks);
    }

    /// The current time of the service's clock, in whole seconds since the epoch.
    pub fn now(&self) -> i64 {
        self.service.lock().clock().now()
    }

    /// The state of one execution; see [`JobsService::execution`].
    pub fn execution(&self, thing: &ThingName, job: &JobId) -> Option<ExecutionInfo> {
        self.service.lock().execution(thing, job)
    }

    /// Every execution; see [`JobsService::executions`].
    pub fn executions(&self) -> Vec<ExecutionInfo> {
        self.service.lock().executions()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(connection) = self.inline.take() {
            connection.disconnect();
        }
        let Some(worker) = self.worker.take() else {
            return;
        };
        if worker.tx.send(Message::Stop).is_err() {
            log::debug!("simulator worker already gone");
        }
        match worker.done.recv_timeout(STOP_WAIT) {
            // Finished, or gone without saying so (it panicked): joining returns at once.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if worker.handle.join().is_err() {
                    log::error!("simulator worker panicked");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                log::warn!("simulator worker did not stop within {STOP_WAIT:?}; leaving it");
            }
        }
    }
}

fn subscribe(transport: &dyn MqttTransport, mode: SimulatorMode) -> Result<(), TransportError> {
    let deadline = Instant::now() + OPERATION_TIMEOUT;
    let filters = mode.filters();
    let outcomes = transport.subscribe(filters, QoS::AtLeastOnce, deadline)?;
    for (filter, outcome) in filters.iter().zip(&outcomes) {
        if *outcome == SubscribeOutcome::Refused {
            return Err(TransportError::SubscriptionRefused {
                filter: (*filter).to_owned(),
            });
        }
    }
    if outcomes.len() != filters.len() {
        return Err(TransportError::backend(format!(
            "SUBACK carried {} outcomes for {} filters",
            outcomes.len(),
            filters.len()
        )));
    }
    Ok(())
}

/// The worker: one request at a time, in arrival order.
fn run(
    service: &Mutex<JobsService>,
    transport: &dyn MqttTransport,
    rx: &Receiver<Message>,
    real_clock: bool,
    mode: SimulatorMode,
) {
    loop {
        let message = if real_clock {
            let wait = {
                let service = service.lock();
                service
                    .next_timer_deadline()
                    .and_then(|deadline| service.clock().real_time_until(deadline))
                    .map_or(TIMER_TICK, |wait| wait.min(TIMER_TICK))
            };
            match rx.recv_timeout(wait) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(message) => Some(message),
                Err(_) => return,
            }
        };
        let out = match message {
            Some(Message::Request { topic, payload }) => mode.serve(service, &topic, &payload),
            Some(Message::Reconnected) => {
                if let Err(error) = subscribe(transport, mode) {
                    log::warn!("simulator could not re-subscribe: {error}");
                }
                continue;
            }
            Some(Message::Stop) => return,
            None => service.lock().fire_timers(),
        };
        publish_all(transport, &out);
    }
}

fn publish_all(transport: &dyn MqttTransport, out: &[Outgoing]) {
    for message in out {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        if let Err(error) =
            transport.publish(&message.topic, &message.payload, QoS::AtLeastOnce, deadline)
        {
            log::warn!("simulator could not publish on {}: {error}", message.topic);
        }
    }
}
