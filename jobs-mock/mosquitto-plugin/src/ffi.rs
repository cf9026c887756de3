//! The FFI with mosquitto 2.0 (plugin interface version 5): the three exported functions, the
//! four callbacks, and the handful of broker functions they call, declared by hand from
//! `mosquitto_broker.h` and `mosquitto_plugin.h` (Debian's `mosquitto-dev` 2.0.11).
//!
//! Every decision is made by [`Quotas`] under the plugin's lock; the broker functions are
//! called after the lock is released (kicking a client runs this plugin's DISCONNECT callback,
//! which takes the lock again). mosquitto calls plugins from its one main thread; the lock is
//! there so that no `unsafe` is needed for the shared state.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::config::Config;
use crate::quota::{Action, Connection, Quotas, Verdict};
use crate::relay;

/// `struct mosquitto`: a client of the broker (opaque).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Mosquitto {
    _private: [u8; 0],
}

/// `mosquitto_plugin_id_t`: the broker's handle on this plugin (opaque).
#[repr(C)]
#[derive(Debug)]
pub struct PluginId {
    _private: [u8; 0],
}

/// `struct mosquitto_opt`: one `plugin_opt_<key> <value>` line.
#[repr(C)]
#[derive(Debug)]
pub struct MosquittoOpt {
    key: *mut c_char,
    value: *mut c_char,
}

/// `struct mosquitto_evt_acl_check`.
#[repr(C)]
#[allow(dead_code, reason = "the C layout: fields the plugin does not read")]
struct EvtAclCheck {
    future: *mut c_void,
    client: *mut Mosquitto,
    topic: *const c_char,
    payload: *const c_void,
    properties: *mut c_void,
    access: c_int,
    payloadlen: u32,
    qos: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_message`.
#[repr(C)]
#[allow(dead_code, reason = "the C layout: fields the plugin does not read")]
struct EvtMessage {
    future: *mut c_void,
    client: *mut Mosquitto,
    topic: *mut c_char,
    payload: *mut c_void,
    properties: *mut c_void,
    reason_string: *mut c_char,
    payloadlen: u32,
    qos: u8,
    reason_code: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect`.
#[repr(C)]
#[allow(dead_code, reason = "the C layout: fields the plugin does not read")]
struct EvtDisconnect {
    future: *mut c_void,
    client: *mut Mosquitto,
    reason: c_int,
    future2: [*mut c_void; 4],
}

type Callback = extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;

unsafe extern "C" {
    fn mosquitto_callback_register(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    fn mosquitto_callback_unregister(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
    ) -> c_int;
    fn mosquitto_client_id(client: *const Mosquitto) -> *const c_char;
    fn mosquitto_client_clean_session(client: *const Mosquitto) -> bool;
    fn mosquitto_client_sub_count(client: *const Mosquitto) -> c_int;
    fn mosquitto_broker_publish_copy(
        clientid: *const c_char,
        topic: *const c_char,
        payloadlen: c_int,
        payload: *const c_void,
        qos: c_int,
        retain: bool,
        properties: *mut c_void,
    ) -> c_int;
    fn mosquitto_kick_client_by_clientid(clientid: *const c_char, with_will: bool) -> c_int;
    fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
    fn mosquitto_strdup(s: *const c_char) -> *mut c_char;
}

const MOSQ_ERR_SUCCESS: c_int = 0;
const MOSQ_ERR_NOMEM: c_int = 1;
const MOSQ_ERR_INVAL: c_int = 3;
const MOSQ_ERR_ACL_DENIED: c_int = 12;
/// Returned to make mosquitto close a connection without answering its packet.
const MOSQ_ERR_ADMINISTRATIVE_ACTION: c_int = 30;

const MOSQ_EVT_ACL_CHECK: c_int = 2;
const MOSQ_EVT_MESSAGE: c_int = 7;
const MOSQ_EVT_TICK: c_int = 9;
const MOSQ_EVT_DISCONNECT: c_int = 10;

const MOSQ_ACL_READ: c_int = 0x01;
const MOSQ_ACL_SUBSCRIBE: c_int = 0x04;
const MOSQ_ACL_UNSUBSCRIBE: c_int = 0x08;

const MOSQ_LOG_INFO: c_int = 1 << 0;
const MOSQ_LOG_ERR: c_int = 1 << 3;
const MOSQ_LOG_DEBUG: c_int = 1 << 4;

/// The callbacks and their events, registered at init and unregistered at cleanup.
const CALLBACKS: [(c_int, Callback); 4] = [
    (MOSQ_EVT_ACL_CHECK, on_acl_check),
    (MOSQ_EVT_MESSAGE, on_message),
    (MOSQ_EVT_DISCONNECT, on_disconnect),
    (MOSQ_EVT_TICK, on_tick),
];

struct Plugin {
    /// The broker's handle on this plugin, kept as an address for cleanup.
    id: usize,
    quotas: Quotas,
    /// The origin of the rate windows' clock.
    start: Instant,
}

static PLUGIN: Mutex<Option<Plugin>> = Mutex::new(None);

fn plugin() -> MutexGuard<'static, Option<Plugin>> {
    PLUGIN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn log(level: c_int, message: &str) {
    let Ok(message) = CString::new(format!("jobs-mosquitto-plugin: {message}").replace('\0', ""))
    else {
        return;
    };
    // SAFETY: `%s` consumes exactly the one argument given, a NUL-terminated string that
    // lives until the call returns.
    unsafe { mosquitto_log_printf(level, c"%s".as_ptr(), message.as_ptr()) };
}

/// Runs a callback body, turning a panic into `on_panic` (a panic must not cross into C).
fn guarded(on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log(MOSQ_LOG_ERR, "a callback panicked");
        on_panic
    })
}

/// A C string as `&str`; `None` for NULL or invalid UTF-8 (mosquitto validates topics and
/// client IDs as UTF-8, so only NULL happens).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn c_str<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: not NULL, and NUL-terminated and alive for 'a by the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

/// What the plugin needs to know of the client behind an event.
struct Client {
    id: String,
    handle: usize,
    clean_session: bool,
    sub_count: usize,
}

impl Client {
    /// # Safety
    /// `client` is NULL or a client mosquitto passed to the current callback.
    unsafe fn of(client: *mut Mosquitto) -> Option<Self> {
        if client.is_null() {
            return None;
        }
        // SAFETY: `client` is a live client for the duration of the callback.
        let id = unsafe { mosquitto_client_id(client) };
        // SAFETY: the ID is NULL or a string owned by the client, copied before the callback
        // ends.
        let id = unsafe { c_str(id) }?.to_owned();
        // SAFETY: `client` is a live client (see above).
        let clean_session = unsafe { mosquitto_client_clean_session(client) };
        // SAFETY: `client` is a live client (see above).
        let sub_count = unsafe { mosquitto_client_sub_count(client) };
        Some(Self {
            id,
            handle: client.addr(),
            clean_session,
            sub_count: usize::try_from(sub_count).unwrap_or(0),
        })
    }

    fn connection(&self) -> Connection<'_> {
        Connection {
            id: &self.id,
            handle: self.handle,
            clean_session: self.clean_session,
            sub_count: self.sub_count,
        }
    }
}

/// Publishes `payload` on `topic` to `client_id` alone (QoS 1), whether or not it subscribed;
/// mosquitto copies everything and queues it for its next loop iteration.
fn publish_to(client_id: &str, topic: &str, payload: *const c_void, len: usize) {
    let (Ok(client), Ok(topic_c), Ok(len)) = (
        CString::new(client_id),
        CString::new(topic),
        c_int::try_from(len),
    ) else {
        log(
            MOSQ_LOG_ERR,
            &format!("cannot deliver {topic} to {client_id}"),
        );
        return;
    };
    let payload = if len == 0 { ptr::null() } else { payload };
    // SAFETY: both strings are NUL-terminated and live until the call returns; `payload` is
    // NULL with `len` 0, or points to `len` readable bytes for the duration of the call
    // (mosquitto copies them); no properties.
    let rc = unsafe {
        mosquitto_broker_publish_copy(
            client.as_ptr(),
            topic_c.as_ptr(),
            len,
            payload,
            1,
            false,
            ptr::null_mut(),
        )
    };
    if rc != MOSQ_ERR_SUCCESS {
        log(
            MOSQ_LOG_ERR,
            &format!("delivering {topic} to {client_id} failed ({rc})"),
        );
    }
}

extern "C" fn on_acl_check(
    _event: c_int,
    event_data: *mut c_void,
    _userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_ACL_DENIED, || {
        // SAFETY: for MOSQ_EVT_ACL_CHECK mosquitto passes a valid `mosquitto_evt_acl_check`
        // that lives for the duration of the call; it is only read.
        let event = unsafe { &*event_data.cast::<EvtAclCheck>() };
        // SAFETY: the event's client is valid for the duration of the call.
        let client = unsafe { Client::of(event.client) };
        // SAFETY: the event's topic is a string valid for the duration of the call.
        let topic = unsafe { c_str(event.topic) };
        let (Some(client), Some(topic)) = (client, topic) else {
            return MOSQ_ERR_SUCCESS;
        };
        let mut guard = plugin();
        let Some(plugin) = guard.as_mut() else {
            return MOSQ_ERR_SUCCESS;
        };
        let conn = client.connection();
        let verdict = match event.access {
            MOSQ_ACL_READ => plugin.quotas.read(&conn, topic, plugin.start.elapsed()),
            MOSQ_ACL_SUBSCRIBE => plugin.quotas.subscribe(&conn, topic),
            MOSQ_ACL_UNSUBSCRIBE => {
                plugin.quotas.unsubscribe(&conn, topic);
                Verdict::Allow
            }
            // WRITE: decided in MOSQ_EVT_MESSAGE, which sees the payload's size.
            _ => Verdict::Allow,
        };
        drop(guard);
        match verdict {
            Verdict::Allow => MOSQ_ERR_SUCCESS,
            Verdict::Deny => {
                if event.access != MOSQ_ACL_READ {
                    log(MOSQ_LOG_DEBUG, &format!("refused {topic} to {}", client.id));
                }
                MOSQ_ERR_ACL_DENIED
            }
            Verdict::Disconnect => {
                log(
                    MOSQ_LOG_INFO,
                    &format!("disconnecting {} (subscriptions)", client.id),
                );
                MOSQ_ERR_ADMINISTRATIVE_ACTION
            }
        }
    })
}

extern "C" fn on_message(_event: c_int, event_data: *mut c_void, _userdata: *mut c_void) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        // SAFETY: for MOSQ_EVT_MESSAGE mosquitto passes a valid `mosquitto_evt_message` that
        // lives for the duration of the call and that the plugin may modify.
        let event = unsafe { &mut *event_data.cast::<EvtMessage>() };
        // SAFETY: the event's client is valid for the duration of the call.
        let client = unsafe { Client::of(event.client) };
        // SAFETY: the event's topic is a string valid for the duration of the call.
        let topic = unsafe { c_str(event.topic) };
        let (Some(client), Some(topic)) = (client, topic) else {
            return MOSQ_ERR_SUCCESS;
        };
        let len = usize::try_from(event.payloadlen).unwrap_or(usize::MAX);
        let mut guard = plugin();
        let Some(plugin) = guard.as_mut() else {
            return MOSQ_ERR_SUCCESS;
        };
        let now = plugin.start.elapsed();
        let action = plugin.quotas.message(&client.connection(), topic, len, now);
        let (delivered, report) = match &action {
            Action::Deliver { client_id, .. } => (plugin.quotas.deliver(client_id, now), None),
            Action::Report { reset } => {
                if *reset {
                    plugin.quotas.reset();
                }
                (false, Some(plugin.quotas.report()))
            }
            _ => (false, None),
        };
        drop(guard);
        match action {
            Action::Pass => MOSQ_ERR_SUCCESS,
            Action::Relay(relay_topic) => relay_message(event, &relay_topic),
            Action::Drop => MOSQ_ERR_ACL_DENIED,
            Action::Disconnect => {
                log(
                    MOSQ_LOG_INFO,
                    &format!("disconnecting {} (payload of {len} bytes)", client.id),
                );
                MOSQ_ERR_ADMINISTRATIVE_ACTION
            }
            Action::Deliver { client_id, topic } => {
                if delivered {
                    publish_to(&client_id, &topic, event.payload.cast_const(), len);
                }
                MOSQ_ERR_ACL_DENIED
            }
            Action::Report { .. } => {
                let report = report.unwrap_or_default();
                let payload = report.as_ptr().cast::<c_void>();
                publish_to(&client.id, relay::QUOTA_REPORT_TOPIC, payload, report.len());
                MOSQ_ERR_ACL_DENIED
            }
        }
    })
}

/// Routes a request on the relay topic instead of its own, not retained.
///
/// The original topic is not freed: mosquitto 2.0.11–2.0.14 neither free it (it leaks, one
/// topic string per request) nor allow a plugin to (2.0.15 and later free it themselves, so
/// freeing it here would free it twice there).
fn relay_message(event: &mut EvtMessage, relay_topic: &str) -> c_int {
    let Ok(relay_topic) = CString::new(relay_topic) else {
        return MOSQ_ERR_ACL_DENIED;
    };
    // SAFETY: a NUL-terminated string that lives until the call returns; mosquitto copies it
    // with its allocator, which is what it frees the message's topic with.
    let copy = unsafe { mosquitto_strdup(relay_topic.as_ptr()) };
    if copy.is_null() {
        return MOSQ_ERR_NOMEM;
    }
    event.topic = copy;
    event.retain = false;
    MOSQ_ERR_SUCCESS
}

extern "C" fn on_disconnect(
    _event: c_int,
    event_data: *mut c_void,
    _userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        // SAFETY: for MOSQ_EVT_DISCONNECT mosquitto passes a valid `mosquitto_evt_disconnect`
        // that lives for the duration of the call; it is only read.
        let event = unsafe { &*event_data.cast::<EvtDisconnect>() };
        // SAFETY: the event's client is valid for the duration of the call.
        if let Some(client) = unsafe { Client::of(event.client) }
            && let Some(plugin) = plugin().as_mut()
        {
            plugin.quotas.disconnected(&client.id, client.handle);
        }
        MOSQ_ERR_SUCCESS
    })
}

extern "C" fn on_tick(_event: c_int, _event_data: *mut c_void, _userdata: *mut c_void) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        let kicks = plugin()
            .as_mut()
            .map(|plugin| plugin.quotas.take_kicks())
            .unwrap_or_default();
        for client_id in kicks {
            log(MOSQ_LOG_INFO, &format!("disconnecting {client_id} (quota)"));
            let Ok(id) = CString::new(client_id) else {
                continue;
            };
            // SAFETY: a NUL-terminated string that lives until the call returns; called from
            // the tick, outside any packet's handling, with the plugin's lock released (the
            // kick runs `on_disconnect`).
            unsafe { mosquitto_kick_client_by_clientid(id.as_ptr(), false) };
        }
        MOSQ_ERR_SUCCESS
    })
}

/// Tells mosquitto which plugin interface this plugin speaks: version 5 (mosquitto 2.0), or
/// -1 if the broker does not offer it.
///
/// # Safety
/// Called by mosquitto: `supported_versions` points to `supported_version_count` integers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_version(
    supported_version_count: c_int,
    supported_versions: *const c_int,
) -> c_int {
    let count = usize::try_from(supported_version_count).unwrap_or(0);
    if supported_versions.is_null() || count == 0 {
        return -1;
    }
    // SAFETY: mosquitto passes an array of `supported_version_count` versions, alive for
    // the call.
    let versions = unsafe { std::slice::from_raw_parts(supported_versions, count) };
    if versions.contains(&5) { 5 } else { -1 }
}

/// Reads the `plugin_opt_*` options and registers the callbacks. An unknown option or a bad
/// value is logged and refused (`MOSQ_ERR_INVAL`): mosquitto then does not start.
///
/// # Safety
/// Called by mosquitto (once, after [`mosquitto_plugin_version`]): `identifier` is its handle
/// on this plugin and `options` points to `option_count` options.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut PluginId,
    _userdata: *mut *mut c_void,
    options: *mut MosquittoOpt,
    option_count: c_int,
) -> c_int {
    guarded(MOSQ_ERR_INVAL, || {
        let count = usize::try_from(option_count).unwrap_or(0);
        let options: &[MosquittoOpt] = if options.is_null() || count == 0 {
            &[]
        } else {
            // SAFETY: mosquitto passes an array of `option_count` options, alive for the call.
            unsafe { std::slice::from_raw_parts(options, count) }
        };
        let mut pairs = Vec::with_capacity(options.len());
        for option in options {
            // SAFETY: each key is NULL or a NUL-terminated string alive for the call.
            let key = unsafe { c_str(option.key) };
            // SAFETY: the same for each value.
            let value = unsafe { c_str(option.value) };
            if let (Some(key), Some(value)) = (key, value) {
                pairs.push((key, value));
            }
        }
        let config = match Config::parse(pairs) {
            Ok(config) => config,
            Err(error) => {
                log(MOSQ_LOG_ERR, &error);
                return MOSQ_ERR_INVAL;
            }
        };
        log(MOSQ_LOG_INFO, &describe(&config));
        *plugin() = Some(Plugin {
            id: identifier.expose_provenance(),
            quotas: Quotas::new(config),
            start: Instant::now(),
        });
        for (event, callback) in CALLBACKS {
            // SAFETY: `identifier` is the handle mosquitto gave this call; the callback is a
            // function of this library, which stays loaded until cleanup unregisters it.
            let rc = unsafe {
                mosquitto_callback_register(
                    identifier,
                    event,
                    callback,
                    ptr::null(),
                    ptr::null_mut(),
                )
            };
            if rc != MOSQ_ERR_SUCCESS {
                log(
                    MOSQ_LOG_ERR,
                    &format!("registering for event {event} failed ({rc})"),
                );
                return rc;
            }
        }
        MOSQ_ERR_SUCCESS
    })
}

/// Unregisters the callbacks and forgets the state.
///
/// # Safety
/// Called by mosquitto, once, after [`mosquitto_plugin_init`] succeeded.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    _userdata: *mut c_void,
    _options: *mut MosquittoOpt,
    _option_count: c_int,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        let Some(plugin) = plugin().take() else {
            return MOSQ_ERR_SUCCESS;
        };
        let identifier: *mut PluginId = ptr::with_exposed_provenance_mut(plugin.id);
        for (event, callback) in CALLBACKS {
            // SAFETY: `identifier` is the handle mosquitto gave init, still valid at cleanup;
            // the callback was registered with it.
            unsafe { mosquitto_callback_unregister(identifier, event, callback, ptr::null()) };
        }
        MOSQ_ERR_SUCCESS
    })
}

/// The settings in one log line.
fn describe(config: &Config) -> String {
    let rate = match config.publish_rate {
        Some((limit, per)) => format!("{limit} publishes per {} ms", per.as_millis()),
        None => "no publish rate".to_owned(),
    };
    format!(
        "service {:?}, implicit replies {}, {} subscriptions ({:?}), {rate}, payload {} bytes ({:?})",
        config.service_client_id,
        if config.implicit_replies { "on" } else { "off" },
        config.max_subscriptions,
        config.subscription_overrun,
        config.max_payload,
        config.payload_overrun,
    )
}
