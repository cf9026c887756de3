//! [`PahoTransport`]: [`MqttTransport`] over a Paho `AsyncClient`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{BrokerLimits, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError};
use log::{debug, info, warn};
use paho_mqtt as paho;

use crate::PahoTransportBuilder;
use crate::builder::{AWS_IOT_ALPN, Plan};
use crate::delivery::Delivery;
use crate::error::{ConfigError, ConnectError, connect_error, transport_error};

/// An MQTT connection through Eclipse Paho C, implementing [`MqttTransport`] for
/// [`jobs_core::Client`].
///
/// Create it with [`PahoTransport::builder`] or, for AWS IoT Core,
/// [`PahoTransport::aws_iot`] / [`PahoTransport::aws_iot_443`]; `build` connects before it
/// returns. The connection reconnects by itself with backoff; each reconnect is reported to the
/// sink as [`ConnectionEvent::Connected`](jobs_core::ConnectionEvent::Connected) with
/// `session_present: Some(false)` for a clean session, `None` for a persistent one (Paho does
/// not say), so `jobs-core` re-subscribes.
///
/// Dropping it disconnects (bounded by the operation timeout) and stops its thread.
pub struct PahoTransport {
    client: paho::AsyncClient,
    server_uri: String,
    client_id: String,
    operation_timeout: Duration,
    session_present: bool,
    limits: BrokerLimits,
    delivery: Arc<Delivery>,
}

impl fmt::Debug for PahoTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PahoTransport")
            .field("server_uri", &self.server_uri)
            .field("client_id", &self.client_id)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl PahoTransport {
    /// Starts configuring a connection to `server_uri` (`tcp://host:port` or `mqtt://…` plain;
    /// `ssl://host:port`, `mqtts://…` or `tls://…` with TLS) as `client_id`.
    ///
    /// Use a client ID unique to this connection (commonly the thing name): a second
    /// connection with the same ID makes the broker drop the first.
    pub fn builder(server_uri: &str, client_id: &str) -> PahoTransportBuilder {
        PahoTransportBuilder::new(server_uri, client_id)
    }

    /// Starts configuring a connection to AWS IoT Core on port 8883 with mutual TLS:
    /// `endpoint` is the `iot:Data-ATS` host (`…-ats.iot.<region>.amazonaws.com`), `ca_file`
    /// the Amazon root CA (PEM), `certificate` and `private_key` the device's PEM files.
    pub fn aws_iot(
        endpoint: &str,
        client_id: &str,
        ca_file: impl Into<PathBuf>,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> PahoTransportBuilder {
        aws_iot_on_port(endpoint, 8883, client_id, ca_file, certificate, private_key)
    }

    /// As [`aws_iot`](Self::aws_iot), on port 443 with the ALPN protocol
    /// [`x-amzn-mqtt-ca`](crate::AWS_IOT_ALPN), for networks that only let HTTPS out.
    pub fn aws_iot_443(
        endpoint: &str,
        client_id: &str,
        ca_file: impl Into<PathBuf>,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> PahoTransportBuilder {
        aws_iot_on_port(endpoint, 443, client_id, ca_file, certificate, private_key)
            .alpn_protocols(&[AWS_IOT_ALPN])
    }

    pub(crate) fn connect(builder: PahoTransportBuilder, plan: Plan) -> Result<Self, ConnectError> {
        let Plan {
            create,
            connect,
            connect_timeout,
            tls,
        } = plan;
        let client =
            paho::AsyncClient::new(create).map_err(|e| ConfigError::Create(Box::new(e)))?;
        // Before connecting: a persistent session may deliver messages before the connect
        // completes.
        let delivery = Delivery::install(&client, builder.pre_sink_buffer, builder.watch());
        debug!(
            "connecting to {} as {}",
            builder.server_uri, builder.client_id
        );
        let response = client.connect(connect).wait_for(connect_timeout);
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                // Stop any reconnect attempt, then take Paho's mutex once so that the failure
                // callback (whose token holds a client clone) has returned: the last clone is
                // then ours and the client is destroyed here, not on Paho's thread.
                drop(client.disconnect(None));
                let _ = client.is_connected();
                drop(client);
                return Err(connect_error(error, &tls));
            }
        };
        let session_present = response
            .connect_response()
            .is_some_and(|r| r.session_present);
        delivery.wait_initial_connect(connect_timeout);
        info!(
            "connected to {} as {} (session present: {session_present})",
            builder.server_uri, builder.client_id
        );
        Ok(Self {
            limits: builder.limits(),
            client,
            server_uri: builder.server_uri,
            client_id: builder.client_id,
            operation_timeout: builder.operation_timeout,
            session_present,
            delivery,
        })
    }

    /// Whether the connection is up right now (a snapshot: it may drop the next moment).
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Whether the broker resumed a stored session on the first connect (always `false` with
    /// [`Session::Clean`](crate::Session::Clean)). Automatic reconnects do not report it.
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// The server URI this transport connects to.
    pub fn server_uri(&self) -> &str {
        &self.server_uri
    }

    /// The MQTT client ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The upper bound on each subscribe, unsubscribe and publish; each also ends at the
    /// deadline its caller gives, whichever comes first.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }
}

impl PahoTransport {
    /// How long an operation may wait: until `deadline`, at most the operation timeout.
    /// `Timeout` when the deadline is already over, so that nothing is sent after it.
    fn wait_budget(&self, deadline: Instant) -> Result<Duration, TransportError> {
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left.min(self.operation_timeout)),
            _ => Err(TransportError::Timeout),
        }
    }
}

impl MqttTransport for PahoTransport {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        self.delivery.set_sink(sink)
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        check_topics(filters)?;
        let budget = self.wait_budget(deadline)?;
        let response = self
            .client
            .subscribe_many_same_qos(filters, qos_code(qos))
            .wait_for(budget);
        let codes = match response {
            Ok(response) => response.subscribe_many_response().unwrap_or_default(),
            // MQTT 5, one filter: a refusal fails the token with the SUBACK reason code.
            Err(paho::Error::ReasonCode(code, _)) if code.is_err() && filters.len() == 1 => {
                return Ok(vec![SubscribeOutcome::Refused]);
            }
            Err(error) => return Err(transport_error(error)),
        };
        if codes.len() != filters.len() {
            return Err(TransportError::backend(format!(
                "SUBACK has {} codes for {} filters",
                codes.len(),
                filters.len()
            )));
        }
        codes.into_iter().map(subscribe_outcome).collect()
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        if filters.is_empty() {
            return Ok(());
        }
        check_topics(filters)?;
        let budget = self.wait_budget(deadline)?;
        self.client
            .unsubscribe_many(filters)
            .wait_for(budget)
            .map(drop)
            .map_err(transport_error)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        check_topics(&[topic])?;
        let budget = self.wait_budget(deadline)?;
        let message = paho::Message::new(topic, payload, qos_code(qos));
        let token = self.client.try_publish(message).map_err(transport_error)?;
        token.wait_for(budget).map_err(publish_error)
    }

    /// QoS 0: Paho C 1.3.16 can free a QoS 1 message twice when the broker resets the
    /// connection while it is written (see the crate docs, "Reconnect churn"); QoS 0 is not
    /// exposed, and a Jobs reply acknowledges its request anyway.
    fn request_qos(&self) -> QoS {
        QoS::AtMostOnce
    }

    /// As set with [`PahoTransportBuilder::broker_limits`] (AWS IoT Core's for its endpoints).
    fn broker_limits(&self) -> BrokerLimits {
        self.limits
    }
}

impl Drop for PahoTransport {
    fn drop(&mut self) {
        match self
            .client
            .disconnect(None)
            .wait_for(self.operation_timeout)
        {
            Ok(_) => debug!("disconnected from {}", self.server_uri),
            Err(paho::Error::Disconnected) => debug!("already disconnected"),
            Err(error) => warn!("disconnect from {} failed: {error}", self.server_uri),
        }
        // Take Paho's mutex once: callbacks still running (each may hold a token with a client
        // clone) finish first, so our clone is normally the last and the C client is destroyed
        // on this thread, never on Paho's.
        let _ = self.client.is_connected();
        self.delivery.clear();
    }
}

fn aws_iot_on_port(
    endpoint: &str,
    port: u16,
    client_id: &str,
    ca_file: impl Into<PathBuf>,
    certificate: impl Into<PathBuf>,
    private_key: impl Into<PathBuf>,
) -> PahoTransportBuilder {
    PahoTransportBuilder::new(&format!("ssl://{endpoint}:{port}"), client_id)
        .ca_file(ca_file)
        .client_certificate(certificate, private_key)
}

fn qos_code(qos: QoS) -> i32 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
    }
}

/// The QoS of the PUBLISH packet Paho sends for a publish at `qos`.
/// Paho fails a publish token with `MQTTASYNC_FAILURE` when writing the PUBLISH to the socket
/// failed: the connection is going down and the broker may have part of it (outcome unknown).
fn publish_error(error: paho::Error) -> TransportError {
    match error {
        paho::Error::Failure => TransportError::ConnectionLost,
        other => transport_error(other),
    }
}

fn subscribe_outcome(code: i32) -> Result<SubscribeOutcome, TransportError> {
    match code {
        0 => Ok(SubscribeOutcome::Granted(QoS::AtMostOnce)),
        1 => Ok(SubscribeOutcome::Granted(QoS::AtLeastOnce)),
        0x80..=0xff => Ok(SubscribeOutcome::Refused),
        other => Err(TransportError::backend(format!(
            "unexpected SUBACK code {other:#x}"
        ))),
    }
}

/// Paho turns topics into C strings and panics on an interior NUL; refuse them first.
fn check_topics(topics: &[&str]) -> Result<(), TransportError> {
    match topics.iter().find(|t| t.is_empty() || t.contains('\0')) {
        Some(bad) => Err(TransportError::backend(format!(
            "invalid topic or filter {bad:?}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suback_codes_map_to_outcomes() {
        assert!(matches!(
            subscribe_outcome(1),
            Ok(SubscribeOutcome::Granted(QoS::AtLeastOnce))
        ));
        assert!(matches!(
            subscribe_outcome(0x80),
            Ok(SubscribeOutcome::Refused)
        ));
        assert!(matches!(
            subscribe_outcome(0x87),
            Ok(SubscribeOutcome::Refused)
        ));
        assert!(matches!(
            subscribe_outcome(2),
            Err(TransportError::Backend(_))
        ));
    }

    #[test]
    fn paho_errors_map_to_transport_errors_by_variant() {
        assert!(matches!(
            transport_error(paho::Error::Disconnected),
            TransportError::NotConnected
        ));
        assert!(matches!(
            transport_error(paho::Error::OperationIncomplete),
            TransportError::ConnectionLost
        ));
        assert!(matches!(
            transport_error(paho::Error::Timeout),
            TransportError::Timeout
        ));
        assert!(matches!(
            transport_error(paho::Error::Failure),
            TransportError::Backend(_)
        ));
    }

    #[test]
    fn a_failed_publish_write_is_a_lost_connection() {
        assert!(matches!(
            publish_error(paho::Error::Failure),
            TransportError::ConnectionLost
        ));
        assert!(matches!(
            publish_error(paho::Error::Timeout),
            TransportError::Timeout
        ));
    }

    #[test]
    fn topics_with_nul_are_refused_before_reaching_paho() {
        assert!(check_topics(&["a/b", "a\0b"]).is_err());
        assert!(check_topics(&[""]).is_err());
        assert!(check_topics(&["a/+/#"]).is_ok());
    }

    #[test]
    fn transport_and_errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<PahoTransport>();
        check::<ConnectError>();
        check::<ConfigError>();
    }
}
