// SPDX-License-Identifier: GPL-2.0
//! The replication handshake (`amf_core::handshake`) against a man in the middle who does
//! not hold the group secret: a relay joining two connections, nonce and proof reflection,
//! and withheld key confirmation. Endpoints run the same state machine as the kernel's
//! `Session::handshake`, with real HMAC-SHA256 and encoded frames.

use amf_core::handshake::{self, Handshake, SecretMac, KEY_LEN};
use amf_core::wire::{self, Body, Crc32c, Hello, Message, Proof, SeqWindow, Side, Tagger};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;

struct Crc;
impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

const SECRET: &[u8] = b"group secret of sixteen+ bytes";
const GROUP: [u8; 16] = [7; 16];

fn hmac(key: &[u8], parts: &[&[u8]], out: &mut [u8; 32]) -> bool {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    out.copy_from_slice(&m.finalize().into_bytes());
    true
}

struct Secret(&'static [u8]);
impl SecretMac for Secret {
    fn mac(&self, parts: &[&[u8]], out: &mut [u8; 32]) -> bool {
        hmac(self.0, parts, out)
    }
}

struct KeyTagger([u8; KEY_LEN]);
impl Tagger for KeyTagger {
    fn tag(&mut self, signed: &[u8], out: &mut [u8; 32]) -> bool {
        hmac(&self.0, &[signed], out)
    }
}

/// One end of one connection, driven as the kernel's `Session::handshake` drives it.
struct Endpoint {
    node: u32,
    hs: Handshake,
    key: [u8; KEY_LEN],
    window: SeqWindow,
    secret: Secret,
    /// The connection would be installed (`Replication::install`).
    installed: bool,
}

impl Endpoint {
    fn new(node: u32, side: Side, expect: Option<u32>, nonce: [u8; 32]) -> Self {
        Self {
            node,
            hs: Handshake::new(side, node, GROUP, nonce, expect),
            key: [0; KEY_LEN],
            window: SeqWindow::default(),
            secret: Secret(SECRET),
            installed: false,
        }
    }

    fn start(&mut self) -> Vec<Vec<u8>> {
        vec![frame(&Message::Hello(self.hs.hello()), self.node, 0, None)]
    }

    fn receive(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let Ok((f, _)) = wire::decode::<Crc>(bytes) else {
            return vec![];
        };
        let known = |n: u32| (1..=4).contains(&n);
        match f.body {
            Body::Hello(h) => match self.hs.on_hello(&h, known, &self.secret) {
                Ok(p) => vec![frame(&Message::Proof(p), self.node, 1, None)],
                Err(_) => vec![],
            },
            Body::Proof(p) => match self.hs.on_proof(&p, &self.secret, &mut self.key) {
                Ok(()) => {
                    let c = Message::Confirm(self.hs.confirm());
                    let mut t = KeyTagger(self.key);
                    vec![frame(&c, self.node, handshake::CONFIRM_SEQ, Some(&mut t))]
                }
                Err(_) => vec![],
            },
            _ => {
                let mut t = KeyTagger(self.key);
                if self.hs.on_confirm(&f, &mut t, &mut self.window).is_ok() {
                    self.installed = true;
                }
                vec![]
            }
        }
    }
}

fn frame(msg: &Message<'_>, sender: u32, seq: u64, tagger: Option<&mut dyn Tagger>) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = wire::encode::<Crc>(msg, sender, seq, tagger, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Pumps frames between `x` and `y` for a few rounds; `edit` sees (and may change or drop)
/// every frame on its way, with `true` for frames going to `y`.
fn pump(x: &mut Endpoint, y: &mut Endpoint, edit: impl Fn(Vec<u8>, bool) -> Option<Vec<u8>>) {
    let mut to_x: Vec<Vec<u8>> = y
        .start()
        .into_iter()
        .filter_map(|f| edit(f, false))
        .collect();
    let mut to_y: Vec<Vec<u8>> = x
        .start()
        .into_iter()
        .filter_map(|f| edit(f, true))
        .collect();
    for _ in 0..8 {
        let ny: Vec<Vec<u8>> = to_x.drain(..).flat_map(|f| x.receive(&f)).collect();
        let nx: Vec<Vec<u8>> = to_y.drain(..).flat_map(|f| y.receive(&f)).collect();
        to_y = ny.into_iter().filter_map(|f| edit(f, true)).collect();
        to_x = nx.into_iter().filter_map(|f| edit(f, false)).collect();
    }
}

/// A man in the middle without the secret: it holds connection `x` to one endpoint and `y`
/// to the other and forwards every frame from one to the other unchanged.
fn relay(x: &mut Endpoint, y: &mut Endpoint) {
    pump(x, y, |f, _| Some(f));
}

/// Rewrites the identity fields of an unauthenticated handshake frame to `node`.
fn pose_as(bytes: Vec<u8>, node: u32) -> Vec<u8> {
    let (f, _) = wire::decode::<Crc>(&bytes).unwrap();
    match f.body {
        Body::Hello(h) => frame(&Message::Hello(Hello { node, ..h }), node, 0, None),
        Body::Proof(p) => frame(&Message::Proof(Proof { node, ..p }), node, 1, None),
        _ => bytes,
    }
}

#[test]
fn honest_pair_confirms_one_key() {
    let mut a = Endpoint::new(1, Side::Dialler, Some(2), [0xa1; 32]);
    let mut b = Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]);
    relay(&mut a, &mut b);
    assert!(a.installed && b.installed);
    assert_eq!(a.key, b.key);
    assert_eq!((a.hs.peer(), b.hs.peer()), (Some(2), Some(1)));
    // Another connection between the same nodes gets another key.
    let mut c = Endpoint::new(1, Side::Dialler, Some(2), [0xc3; 32]);
    let mut d = Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]);
    relay(&mut c, &mut d);
    assert!(c.installed && d.installed);
    assert_ne!(a.key, c.key);
}

/// Two honest endpoints `a` and `b` joined by a relay without the key: neither may install
/// a session.
fn relay_installs_nothing(mut a: Endpoint, mut b: Endpoint) {
    relay(&mut a, &mut b);
    assert!(
        !a.installed,
        "A installed a session from a relay without the key"
    );
    assert!(
        !b.installed,
        "B installed a session from a relay without the key"
    );
}

/// The relay of the issue: M dials A pretending to be B and dials B pretending to be A;
/// both A and B accept.
#[test]
fn relay_between_two_acceptors_installs_nothing() {
    relay_installs_nothing(
        Endpoint::new(1, Side::Acceptor, None, [0xa1; 32]),
        Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]),
    );
}

/// An on-path M catches A's dial to B and B's dial to A and joins them: two diallers.
#[test]
fn relay_between_two_diallers_installs_nothing() {
    relay_installs_nothing(
        Endpoint::new(1, Side::Dialler, Some(2), [0xa1; 32]),
        Endpoint::new(2, Side::Dialler, Some(1), [0xb2; 32]),
    );
}

/// Reflection: M dials A twice as B and feeds each connection what A sent on the other
/// (its nonce and its proof), and on a third connection A's own frames back.
#[test]
fn reflection_installs_nothing() {
    let mut x = Endpoint::new(1, Side::Acceptor, None, [0x11; 32]);
    let mut y = Endpoint::new(1, Side::Acceptor, None, [0x22; 32]);
    pump(&mut x, &mut y, |f, _| Some(pose_as(f, 2)));
    assert!(!x.installed && !y.installed, "A accepted its own proofs");
    let mut z = Endpoint::new(1, Side::Acceptor, None, [0x33; 32]);
    let mut back: Vec<Vec<u8>> = z.start().into_iter().map(|f| pose_as(f, 2)).collect();
    for _ in 0..4 {
        back = back
            .drain(..)
            .flat_map(|f| z.receive(&f))
            .map(|f| pose_as(f, 2))
            .collect();
    }
    assert!(!z.installed, "A accepted its own reflected frames");
}

/// Key confirmation: a genuine dial of A to B through M, who forwards the Hellos and
/// Proofs but nothing after them. Neither end may install the connection (replace an old
/// one, drop held records) before a frame authenticated under the session key arrived.
#[test]
fn nothing_installed_before_key_confirmation() {
    let handshake_only = |f: Vec<u8>, _| {
        let keep = matches!(
            wire::decode::<Crc>(&f).map(|(f, _)| f.body),
            Ok(Body::Hello(_) | Body::Proof(_))
        );
        keep.then_some(f)
    };
    let mut a = Endpoint::new(1, Side::Dialler, Some(2), [0xa1; 32]);
    let mut b = Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]);
    pump(&mut a, &mut b, handshake_only);
    assert!(
        !a.installed,
        "A installed before any authenticated frame of B"
    );
    assert!(
        !b.installed,
        "B installed before any authenticated frame of A"
    );
    // A Confirm under a key M made up is refused.
    let mut a = Endpoint::new(1, Side::Dialler, Some(2), [0xa1; 32]);
    let mut b = Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]);
    pump(&mut a, &mut b, handshake_only);
    let confirm = |side, sender, key| {
        let mut t = KeyTagger(key);
        let c = Message::Confirm(wire::Confirm { side });
        frame(&c, sender, handshake::CONFIRM_SEQ, Some(&mut t))
    };
    a.receive(&confirm(Side::Acceptor, 2, [0x55; KEY_LEN]));
    assert!(!a.installed, "a Confirm under a forged key was taken");
    // A's own Confirm sent back to it is refused; B's, which M withheld, is then taken.
    let mut a = Endpoint::new(1, Side::Dialler, Some(2), [0xa1; 32]);
    let mut b = Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]);
    pump(&mut a, &mut b, handshake_only);
    let own = confirm(Side::Dialler, 1, a.key);
    let theirs = confirm(Side::Acceptor, 2, b.key);
    a.receive(&own);
    assert!(!a.installed, "A took its own Confirm");
    let mut c = Endpoint::new(1, Side::Dialler, Some(2), [0xa1; 32]);
    let mut d = Endpoint::new(2, Side::Acceptor, None, [0xb2; 32]);
    pump(&mut c, &mut d, handshake_only);
    c.receive(&theirs);
    assert!(c.installed, "the withheld genuine Confirm is taken");
}

proptest! {
    /// Any two endpoints joined by a forwarding relay install a session only when the
    /// pairing is a genuine one (a dialler reaching the node it dialled, which accepts):
    /// then the relay is just a router and both hold the same key it never saw. Two ends of
    /// the same side never do, whatever the ids and nonces.
    #[test]
    fn relay_completes_only_genuine_pairings(
        x_node in 1u32..=4, y_node in 1u32..=4,
        x_dials in any::<bool>(), y_dials in any::<bool>(),
        x_expect in 1u32..=4, y_expect in 1u32..=4,
        x_nonce in any::<[u8; 32]>(), y_nonce in any::<[u8; 32]>(),
    ) {
        let side = |d: bool| if d { Side::Dialler } else { Side::Acceptor };
        let mut x = Endpoint::new(x_node, side(x_dials), x_dials.then_some(x_expect), x_nonce);
        let mut y = Endpoint::new(y_node, side(y_dials), y_dials.then_some(y_expect), y_nonce);
        relay(&mut x, &mut y);
        let genuine = x_dials != y_dials
            && x_node != y_node
            && x_nonce != y_nonce
            && (!x_dials || x_expect == y_node)
            && (!y_dials || y_expect == x_node);
        prop_assert_eq!(x.installed, genuine);
        prop_assert_eq!(y.installed, genuine);
        if genuine {
            prop_assert_eq!(x.key, y.key);
        }
    }
}
