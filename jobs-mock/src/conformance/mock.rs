//! [`MockHarness`]: the suite over [`MockBroker`]'s own transport.

use jobs_core::MqttTransport;

use super::{Capability, Harness, HarnessError};
use crate::MockBroker;

/// The filter [`MockHarness`] makes its broker refuse.
const REFUSED_FILTER: &str = "conformance/refused";

/// A [`Harness`] over a [`MockBroker`]: [`MockTransport`](crate::MockTransport)s under test,
/// connections dropped and restored (with or without session) by client ID, a frozen broker
/// ([`MockBroker::freeze`]), and a refused filter. It is the reference the suite itself is tested against, and a model for harnesses
/// that wrap the mock's transport.
#[derive(Debug)]
pub struct MockHarness {
    broker: MockBroker,
    clients: Vec<String>,
}

impl MockHarness {
    /// A harness over a fresh broker (recording off: the suite publishes a lot).
    pub fn new() -> Self {
        let broker = MockBroker::new();
        broker.set_recording(false);
        broker.refuse_subscriptions(REFUSED_FILTER);
        Self {
            broker,
            clients: Vec::new(),
        }
    }

    /// The broker the transports connect to.
    pub fn broker(&self) -> &MockBroker {
        &self.broker
    }
}

impl Default for MockHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness for MockHarness {
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        self.clients.push(client_id.to_owned());
        Ok(Box::new(self.broker.connect(client_id)))
    }

    fn supports(&self, capability: Capability) -> bool {
        matches!(
            capability,
            Capability::DropConnection
                | Capability::ResumeSession
                | Capability::Freeze
                | Capability::RefuseFilter
                | Capability::SessionFlag
        )
    }

    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        for client in &self.clients {
            self.broker.drop_connection(client);
        }
        Ok(())
    }

    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        for client in &self.clients {
            self.broker.restore_connection(client, session_present);
        }
        Ok(())
    }

    fn freeze(&mut self) -> Result<(), HarnessError> {
        self.broker.freeze();
        Ok(())
    }

    fn thaw(&mut self) -> Result<(), HarnessError> {
        self.broker.thaw();
        Ok(())
    }

    fn refused_filter(&self) -> Option<String> {
        Some(REFUSED_FILTER.to_owned())
    }
}
