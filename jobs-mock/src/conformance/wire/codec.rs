//! The MQTT 3.1.1 packets the known-good peer and the observing proxy need: framing (fixed
//! header and remaining length), and the fields of the packets a client exchanges with a
//! broker. Written by hand (about as long as the glue a packet crate would need) so that the
//! harness shares no code with any transport it checks.

use std::io::{self, Read};

/// The largest packet the harness reads: AWS IoT Core's 128 KiB payload plus headers, with room.
pub(crate) const MAX_PACKET: usize = 512 * 1024;

/// One packet as it was on the wire: its first byte and its body (after the remaining length).
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) header: u8,
    pub(crate) body: Vec<u8>,
}

impl Frame {
    /// The packet type (the high nibble of the first byte).
    pub(crate) fn kind(&self) -> u8 {
        self.header >> 4
    }

    /// The frame as bytes, ready to write.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.body.len() + 5);
        bytes.push(self.header);
        push_length(&mut bytes, self.body.len());
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one frame. A clean end of stream before the first byte is `UnexpectedEof` too.
///
/// # Errors
/// On I/O errors, a malformed remaining length, or a packet larger than [`MAX_PACKET`].
pub(crate) fn read_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let mut byte = [0u8; 1];
    reader.read_exact(&mut byte)?;
    let header = byte[0];
    let mut length = 0usize;
    for shift in [0u32, 7, 14, 21] {
        reader.read_exact(&mut byte)?;
        length |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            if length > MAX_PACKET {
                return Err(invalid(format!("a {length}-byte packet is too large")));
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            return Ok(Frame { header, body });
        }
    }
    Err(invalid("malformed remaining length".into()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn push_length(bytes: &mut Vec<u8>, mut length: usize) {
    loop {
        let digit = u8::try_from(length % 128).unwrap_or(0);
        length /= 128;
        if length == 0 {
            bytes.push(digit);
            return;
        }
        bytes.push(digit | 0x80);
    }
}

/// The packets of MQTT 3.1.1 a client and a broker exchange (QoS 2 ones as `Other`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    Connect {
        client_id: String,
        keep_alive: u16,
        clean_session: bool,
    },
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        topic: String,
        payload: Vec<u8>,
        /// 0, 1 or 2.
        qos: u8,
        retain: bool,
        dup: bool,
        /// Present for QoS 1 and 2.
        packet_id: Option<u16>,
    },
    PubAck(u16),
    Subscribe {
        packet_id: u16,
        /// Each filter with its requested QoS.
        filters: Vec<(String, u8)>,
    },
    SubAck {
        packet_id: u16,
        /// One return code per filter: the granted QoS, or 0x80.
        codes: Vec<u8>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<String>,
    },
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
    /// Any other packet type (QoS 2 flows, reserved types).
    Other(u8),
}

/// A cursor over a packet body.
struct Body<'a> {
    bytes: &'a [u8],
}

impl<'a> Body<'a> {
    fn u8(&mut self) -> io::Result<u8> {
        let (&first, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| invalid("packet too short".into()))?;
        self.bytes = rest;
        Ok(first)
    }

    fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(invalid("length beyond the packet".into()));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn string(&mut self) -> io::Result<String> {
        let n = usize::from(self.u16()?);
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| invalid("a string is not UTF-8".into()))
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

impl Packet {
    /// Decodes a frame.
    ///
    /// # Errors
    /// `InvalidData` when the body does not hold what the packet type needs.
    pub(crate) fn decode(frame: &Frame) -> io::Result<Self> {
        let flags = frame.header & 0x0f;
        let mut body = Body { bytes: &frame.body };
        Ok(match frame.kind() {
            1 => {
                let _protocol = body.string()?;
                let _level = body.u8()?;
                let connect_flags = body.u8()?;
                let keep_alive = body.u16()?;
                Self::Connect {
                    client_id: body.string()?,
                    keep_alive,
                    clean_session: connect_flags & 0x02 != 0,
                }
            }
            2 => {
                let acknowledge = body.u8()?;
                Self::ConnAck {
                    session_present: acknowledge & 0x01 != 0,
                    code: body.u8()?,
                }
            }
            3 => {
                let qos = (flags >> 1) & 0x03;
                let topic = body.string()?;
                let packet_id = if qos > 0 { Some(body.u16()?) } else { None };
                Self::Publish {
                    topic,
                    payload: body.rest().to_vec(),
                    qos,
                    retain: flags & 0x01 != 0,
                    dup: flags & 0x08 != 0,
                    packet_id,
                }
            }
            4 => Self::PubAck(body.u16()?),
            8 => {
                let packet_id = body.u16()?;
                let mut filters = Vec::new();
                while !body.is_empty() {
                    filters.push((body.string()?, body.u8()?));
                }
                Self::Subscribe { packet_id, filters }
            }
            9 => Self::SubAck {
                packet_id: body.u16()?,
                codes: body.rest().to_vec(),
            },
            10 => {
                let packet_id = body.u16()?;
                let mut filters = Vec::new();
                while !body.is_empty() {
                    filters.push(body.string()?);
                }
                Self::Unsubscribe { packet_id, filters }
            }
            11 => Self::UnsubAck(body.u16()?),
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            other => Self::Other(other),
        })
    }

    /// Encodes the packet; strings longer than 65535 bytes are cut (the harness never sends any).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let header = match self {
            Self::Connect {
                client_id,
                keep_alive,
                clean_session,
            } => {
                push_string(&mut body, "MQTT");
                body.push(4);
                body.push(if *clean_session { 0x02 } else { 0 });
                body.extend_from_slice(&keep_alive.to_be_bytes());
                push_string(&mut body, client_id);
                0x10
            }
            Self::ConnAck {
                session_present,
                code,
            } => {
                body.push(u8::from(*session_present));
                body.push(*code);
                0x20
            }
            Self::Publish {
                topic,
                payload,
                qos,
                retain,
                dup,
                packet_id,
            } => {
                push_string(&mut body, topic);
                if let Some(id) = packet_id {
                    body.extend_from_slice(&id.to_be_bytes());
                }
                body.extend_from_slice(payload);
                0x30 | (u8::from(*dup) << 3) | ((qos & 0x03) << 1) | u8::from(*retain)
            }
            Self::PubAck(id) => {
                body.extend_from_slice(&id.to_be_bytes());
                0x40
            }
            Self::Subscribe { packet_id, filters } => {
                body.extend_from_slice(&packet_id.to_be_bytes());
                for (filter, qos) in filters {
                    push_string(&mut body, filter);
                    body.push(*qos);
                }
                0x82
            }
            Self::SubAck { packet_id, codes } => {
                body.extend_from_slice(&packet_id.to_be_bytes());
                body.extend_from_slice(codes);
                0x90
            }
            Self::Unsubscribe { packet_id, filters } => {
                body.extend_from_slice(&packet_id.to_be_bytes());
                for filter in filters {
                    push_string(&mut body, filter);
                }
                0xa2
            }
            Self::UnsubAck(id) => {
                body.extend_from_slice(&id.to_be_bytes());
                0xb0
            }
            Self::PingReq => 0xc0,
            Self::PingResp => 0xd0,
            Self::Disconnect => 0xe0,
            Self::Other(kind) => kind << 4,
        };
        Frame { header, body }.to_bytes()
    }
}

fn push_string(body: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let bytes = bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes);
    let length = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(packet: Packet) {
        let bytes = packet.encode();
        let frame = read_frame(&mut bytes.as_slice()).unwrap();
        assert_eq!(frame.to_bytes(), bytes);
        assert_eq!(Packet::decode(&frame).unwrap(), packet);
    }

    #[test]
    fn every_packet_survives_encoding_and_decoding() {
        round_trip(Packet::Connect {
            client_id: "c".into(),
            keep_alive: 2,
            clean_session: true,
        });
        round_trip(Packet::ConnAck {
            session_present: true,
            code: 0,
        });
        round_trip(Packet::Publish {
            topic: "a/b".into(),
            payload: vec![7; 200],
            qos: 1,
            retain: true,
            dup: false,
            packet_id: Some(9),
        });
        round_trip(Packet::Publish {
            topic: "a".into(),
            payload: Vec::new(),
            qos: 0,
            retain: false,
            dup: false,
            packet_id: None,
        });
        round_trip(Packet::PubAck(65535));
        round_trip(Packet::Subscribe {
            packet_id: 1,
            filters: vec![("a/+".into(), 1), ("b/#".into(), 0)],
        });
        round_trip(Packet::SubAck {
            packet_id: 1,
            codes: vec![1, 0x80],
        });
        round_trip(Packet::Unsubscribe {
            packet_id: 2,
            filters: vec!["a/+".into()],
        });
        round_trip(Packet::UnsubAck(2));
        round_trip(Packet::PingReq);
        round_trip(Packet::PingResp);
        round_trip(Packet::Disconnect);
    }

    #[test]
    fn a_large_payload_needs_a_three_byte_length() {
        let packet = Packet::Publish {
            topic: "t".into(),
            payload: vec![1; 128 * 1024],
            qos: 0,
            retain: false,
            dup: false,
            packet_id: None,
        };
        let bytes = packet.encode();
        assert_eq!(bytes.get(1..4), Some(&[0x83, 0x80, 0x08][..]));
        round_trip(packet);
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        for bytes in [
            &[0x30, 0x01, 0x00][..],       // topic length cut off
            &[0x30, 0x02, 0x00, 0x05][..], // topic longer than the packet
            &[0x40, 0x00][..],             // PUBACK without an id
            &[0x90, 0x01, 0x00][..],       // SUBACK without an id
        ] {
            let frame = read_frame(&mut &bytes[..]).unwrap();
            assert!(Packet::decode(&frame).is_err(), "{bytes:?}");
        }
        let endless = [0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(read_frame(&mut &endless[..]).is_err());
        let huge = [0x30, 0xff, 0xff, 0xff, 0x7f];
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
