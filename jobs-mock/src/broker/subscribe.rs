//! SUBSCRIBE and UNSUBSCRIBE: MQTT's rules, and in AWS mode the subscription quotas.

use jobs_core::{QoS, SubscribeOutcome, TransportError};

use super::MockBroker;
use super::aws::{Close, SubscribePlan};

impl MockBroker {
    pub(super) fn subscribe(
        &self,
        index: usize,
        filters: &[&str],
        qos: QoS,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        let (outcomes, client_id, close) = {
            let mut state = self.shared.state.lock();
            state.routes.clear();
            let refused = state.refused_filters.clone();
            let client = state.connected_client(index)?;
            let client_id = client.id.clone();
            let held: Vec<String> = client
                .subscriptions
                .iter()
                .map(|(f, _)| f.clone())
                .collect();
            let plan = match &mut state.aws {
                Some(aws) => {
                    let held: Vec<&str> = held.iter().map(String::as_str).collect();
                    aws.plan_subscribe(&client_id, &held, filters, &refused)
                }
                None => SubscribePlan {
                    allowed: filters
                        .iter()
                        .map(|f| !refused.iter().any(|r| r == f))
                        .collect(),
                    close: Close::No,
                },
            };
            let client = state.connected_client(index)?;
            let outcomes: Vec<SubscribeOutcome> = filters
                .iter()
                .zip(&plan.allowed)
                .map(|(filter, &allowed)| {
                    if !allowed {
                        return SubscribeOutcome::Refused;
                    }
                    // As in MQTT, subscribing again replaces the subscription (and its QoS).
                    match client.subscriptions.iter_mut().find(|(f, _)| f == filter) {
                        Some((_, granted)) => *granted = qos,
                        None => client.subscriptions.push(((*filter).to_owned(), qos)),
                    }
                    SubscribeOutcome::Granted(qos)
                })
                .collect();
            state.record_subscribe(client_id.clone(), filters);
            self.shared.changed.notify_all();
            (outcomes, client_id, plan.close)
        };
        match close {
            Close::No => Ok(outcomes),
            Close::AfterAck => {
                self.close_for_quota(&client_id);
                Ok(outcomes)
            }
            Close::Instead => {
                self.close_for_quota(&client_id);
                Err(TransportError::ConnectionLost)
            }
        }
    }

    pub(super) fn unsubscribe(&self, index: usize, filters: &[&str]) -> Result<(), TransportError> {
        let (client_id, close) = {
            let mut state = self.shared.state.lock();
            state.routes.clear();
            let client_id = state.connected_client(index)?.id.clone();
            let close = match &mut state.aws {
                Some(aws) => aws.plan_unsubscribe(&client_id, filters.len()),
                None => None,
            };
            if close.is_none() {
                state
                    .connected_client(index)?
                    .subscriptions
                    .retain(|(s, _)| !filters.contains(&s.as_str()));
            }
            (client_id, close)
        };
        match close {
            None | Some(Close::No) => Ok(()),
            Some(Close::AfterAck) => {
                self.close_for_quota(&client_id);
                Ok(())
            }
            Some(Close::Instead) => {
                self.close_for_quota(&client_id);
                Err(TransportError::ConnectionLost)
            }
        }
    }
}
