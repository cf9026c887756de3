//! The real-broker harness's own MQTT: a packet codec, the known-good [`peer::Peer`] and the
//! observing [`proxy::Proxy`].

pub(crate) mod codec;
pub(crate) mod peer;
pub(crate) mod proxy;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::peer::Peer;
    use crate::conformance::{self, Config, MosquittoHarness, Rule};

    /// The peer is known-good: as the transport under test it keeps every rule it can without
    /// reconnecting (it never reconnects: a peer lives for one check).
    #[test]
    fn the_peer_keeps_every_rule_that_needs_no_reconnect() {
        let mut harness = MosquittoHarness::start(|endpoint, client_id| {
            Ok(Box::new(Peer::connect(
                (endpoint.host(), endpoint.port()),
                client_id,
                Duration::from_secs(2),
            )?))
        })
        .unwrap();
        let rules: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|rule| {
                !matches!(
                    rule,
                    Rule::ReconnectWithoutSession
                        | Rule::ReconnectWithSession
                        | Rule::NothingResentAfterTimeout
                )
            })
            .collect();
        let started = Instant::now();
        let report = conformance::run_rules(&mut harness, &Config::default(), &rules);
        eprintln!("{report}in {:?}", started.elapsed());
        report.assert_conforms();
        assert_eq!(report.skipped(), [Rule::ReconnectWithSession; 0]);
    }
}
