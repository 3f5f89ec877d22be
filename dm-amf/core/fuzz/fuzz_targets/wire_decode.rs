// SPDX-License-Identifier: GPL-2.0
//! Fuzz the receive path: any bytes must decode or fail with a typed error, never panic.
//! Half of the inputs get a valid CRC spliced in so the fuzzer reaches the field checks;
//! whatever decodes must re-encode to the same bytes, and records then go through
//! `validate_record` and a `RecordTable` as a survivor would store them; handshake frames
//! (Hello, Proof, Confirm) go through the handshake state machine at each stage.
#![no_main]

use amf_core::geometry::{Geometry, Level};
use amf_core::handshake::{Handshake, SecretMac, KEY_LEN};
use amf_core::op::validate_record;
use amf_core::recovery::RecordTable;
use amf_core::wire::{self, Body, Crc32c, Frame, SeqWindow, Side, Tagger};
use libfuzzer_sys::fuzz_target;

struct Crc;
impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

/// A stand-in MAC: the machine's checks, not the cryptography, are fuzzed here.
struct Mac;
impl SecretMac for Mac {
    fn mac(&self, parts: &[&[u8]], out: &mut [u8; 32]) -> bool {
        *out = [0; 32];
        for (i, b) in parts.iter().flat_map(|p| p.iter()).enumerate() {
            out[i % 32] ^= *b;
        }
        true
    }
}
impl Tagger for Mac {
    fn tag(&mut self, signed: &[u8], out: &mut [u8; 32]) -> bool {
        self.mac(&[signed], out)
    }
}

/// Feeds a handshake frame to machines waiting for it at its stage (and at the wrong one):
/// they must refuse or advance, never panic. The peer is the frame's sender, brought along
/// honestly up to that stage.
fn handshake(frame: &Frame<'_>) {
    let peer_node = frame.header.sender;
    for side in [Side::Dialler, Side::Acceptor] {
        let mut hs = Handshake::new(side, 1, [0; 16], [1; 32], None);
        let mut peer = Handshake::new(side.other(), peer_node, [0; 16], [2; 32], None);
        let mut key = [0u8; KEY_LEN];
        match frame.body {
            Body::Hello(h) => {
                let _ = hs.on_hello(&h, |n| n < 64, &Mac);
            }
            Body::Proof(p) => {
                let _ = hs.on_hello(&peer.hello(), |_| true, &Mac);
                let _ = hs.on_proof(&p, &Mac, &mut key);
            }
            _ => {
                let _ = hs.on_hello(&peer.hello(), |_| true, &Mac);
                if let Ok(p) = peer.on_hello(&hs.hello(), |_| true, &Mac) {
                    let _ = hs.on_proof(&p, &Mac, &mut key);
                }
                let _ = hs.on_confirm(frame, &mut Mac, &mut SeqWindow::default());
            }
        }
        let _ = (hs.peer(), hs.is_done());
    }
}

fn check(buf: &[u8]) {
    let _ = wire::frame_len(buf);
    let Ok((frame, used)) = wire::decode::<Crc>(buf) else {
        return;
    };
    assert!(used <= buf.len());
    let blocks: Vec<wire::Block> = match frame.body {
        Body::Record(r) => r.blocks().collect(),
        _ => Vec::new(),
    };
    if matches!(frame.body, Body::Hello(_) | Body::Proof(_) | Body::Confirm(_)) {
        handshake(&frame);
    }
    if let Body::Record(r) = frame.body {
        for g in [
            Geometry::new(Level::Raid6, 6, 8, 64),
            Geometry::new(Level::Raid1, 2, 8, 64),
        ]
        .into_iter()
        .flatten()
        {
            if validate_record(&g, &r, 1).is_ok() {
                let mut t = RecordTable::<2>::new();
                let _ = t.receive(r.header, false);
                let _ = t.receive(r.header, false);
            }
        }
    }
    let msg = frame.body.to_message(&blocks);
    if frame.is_authenticated() {
        return; // Re-encoding would need the key.
    }
    let mut out = vec![0u8; used];
    let n = wire::encode::<Crc>(&msg, frame.header.sender, frame.header.seq, None, &mut out)
        .expect("a decoded frame re-encodes");
    assert_eq!(&out[..n], &buf[..used]);
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= wire::MIN_FRAME_LEN && data.len() <= 1 << 16 {
        let mut buf = data.to_vec();
        buf[..4].copy_from_slice(&wire::MAGIC);
        buf[4] = wire::VERSION;
        let len = buf.len() as u32;
        buf[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c(&buf[..buf.len() - 4]);
        let at = buf.len() - 4;
        buf[at..].copy_from_slice(&crc.to_le_bytes());
        check(&buf);
    }
});
