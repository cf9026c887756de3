//! [`SimulatorMode`]: how the [`Simulator`](super::Simulator) meets the devices' requests —
//! by subscription on any broker, or through the relay of an AWS-mode broker.

use parking_lot::Mutex;

use super::jobs_service::{JobsService, Outgoing};
use crate::aws::relay;

/// How a [`Simulator`](super::Simulator) receives requests and sends replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimulatorMode {
    /// Any broker: the simulator subscribes to the request topics
    /// ([`REQUEST_FILTERS`](super::REQUEST_FILTERS)) and publishes each reply on its reply
    /// topic, which reaches every client subscribed to it.
    #[default]
    Portable,
    /// Behind an AWS-mode broker (the [`MockBroker`](crate::MockBroker)'s AWS mode, or
    /// mosquitto with `jobs-mosquitto-plugin`; see [`crate::aws::relay`]): the simulator
    /// subscribes to [`relay::REQUEST_FILTER`] alone, answers each relayed request as if
    /// published on its original topic, and sends the replies on the relay's reply topic of
    /// the requester, so that the broker delivers them to that client alone. Events
    /// (`notify`, `notify-next`) are ordinary publishes. Connect the simulator with the
    /// broker's service client ID (`jobs-service` by default).
    Relay,
}

impl SimulatorMode {
    /// The filters the simulator subscribes to.
    pub(crate) fn filters(self) -> &'static [&'static str] {
        match self {
            Self::Portable => &super::driver::REQUEST_FILTERS,
            Self::Relay => &[relay::REQUEST_FILTER],
        }
    }

    /// Answers one message the simulator received on `topic`: the service's replies and
    /// events, on the topics to publish them on.
    pub(crate) fn serve(
        self,
        service: &Mutex<JobsService>,
        topic: &str,
        payload: &[u8],
    ) -> Vec<Outgoing> {
        match self {
            Self::Portable => service.lock().handle(topic, payload),
            Self::Relay => {
                let Some((client_id, request)) = relay::parse_request(topic) else {
                    log::debug!("simulator (relay) ignores a message on {topic}");
                    return Vec::new();
                };
                let mut out = service.lock().handle(request, payload);
                for message in &mut out {
                    if relay::is_reply_to(request, &message.topic) {
                        message.topic = relay::reply_topic(&client_id, &message.topic);
                    }
                }
                out
            }
        }
    }
}
