// SPDX-License-Identifier: GPL-2.0
//! The replication channel's handshake, without I/O: the kernel module and the tests drive
//! the same state machine.
//!
//! Both ends send a [`Hello`] (node id, group, versions, a fresh nonce). Each then sends a
//! [`Proof`] = HMAC(secret, label of its side || transcript), where the transcript names the
//! negotiated version, the group, the dialler's and the acceptor's node ids and nonces, so
//! a proof is valid for one connection, one direction of it and one pair of nodes only: a
//! relay that joins two acceptors (or two diallers) gets proofs of the wrong side, and a
//! node's own proofs never answer its own challenge. Both derive the session key
//! HMAC(secret, "amf-session-v2" || transcript) and send a [`Confirm`] tagged under it; a
//! connection is used (installed, allowed to replace another or touch held records) only
//! after the peer's `Confirm` verified.

use super::wire::{
    self, Body, Confirm, Frame, HandshakeError, Hello, Proof, SeqWindow, Side, Tagger,
};

/// Handshake protocol version (the `Hello` version range); 2 binds sides and confirms keys.
pub const PROTOCOL_VERSION: u16 = 2;
/// Sequence numbers of the handshake frames; session frames start after [`CONFIRM_SEQ`].
pub const HELLO_SEQ: u64 = 0;
/// See [`HELLO_SEQ`].
pub const PROOF_SEQ: u64 = 1;
/// See [`HELLO_SEQ`].
pub const CONFIRM_SEQ: u64 = 2;
/// Sequence number of a session's first frame after the handshake.
pub const FIRST_SESSION_SEQ: u64 = 3;
/// Bytes of the transcript: version, group, dialler id, acceptor id, their nonces.
pub const TRANSCRIPT_LEN: usize = 2 + 16 + 4 + 4 + 32 + 32;
/// Bytes of a derived session key.
pub const KEY_LEN: usize = 32;
/// The shortest shared secret (`auth_key`'s logon key) taken, in bytes, by `amfctl key-add`
/// and by the kernel at table load: anyone who records one handshake can test guesses of the
/// secret against its proofs offline, so a short one is found quickly.
pub const MIN_SECRET_LEN: usize = 16;

/// Label of the dialler's proof.
const DIALLER_PROOF: &[u8] = b"amf-proof-dialler";
/// Label of the acceptor's proof.
const ACCEPTOR_PROOF: &[u8] = b"amf-proof-acceptor";
/// Label of the session key.
const SESSION_KEY: &[u8] = b"amf-session-v2";

/// HMAC-SHA256 under the group secret, supplied by the caller (the kernel's crypto API).
pub trait SecretMac {
    /// HMAC of the concatenation of `parts` into `out`; false if it could not be computed.
    fn mac(&self, parts: &[&[u8]], out: &mut [u8; 32]) -> bool;

    /// Constant-time comparison of two proofs (the kernel uses `crypto_memneq`).
    fn equal(&self, x: &[u8], y: &[u8]) -> bool {
        wire::tags_equal(x, y)
    }
}

/// What both ends of one connection must agree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transcript {
    version: u16,
    group: [u8; 16],
    dialler: (u32, [u8; 32]),
    acceptor: (u32, [u8; 32]),
}

impl Transcript {
    fn bytes(&self) -> [u8; TRANSCRIPT_LEN] {
        let mut out = [0u8; TRANSCRIPT_LEN];
        let fields: [&[u8]; 6] = [
            &self.version.to_le_bytes(),
            &self.group,
            &self.dialler.0.to_le_bytes(),
            &self.acceptor.0.to_le_bytes(),
            &self.dialler.1,
            &self.acceptor.1,
        ];
        let mut dst = out.iter_mut();
        for b in fields.iter().flat_map(|f| f.iter()) {
            if let Some(d) = dst.next() {
                *d = *b;
            }
        }
        out
    }

    fn proof(&self, side: Side, secret: &dyn SecretMac) -> Result<[u8; 32], HandshakeError> {
        let label = match side {
            Side::Dialler => DIALLER_PROOF,
            Side::Acceptor => ACCEPTOR_PROOF,
        };
        let mut out = [0u8; 32];
        if !secret.mac(&[label, &self.bytes()], &mut out) {
            return Err(HandshakeError::Crypto);
        }
        Ok(out)
    }
}

/// Where a handshake is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the peer's Hello.
    Hello,
    /// Waiting for the peer's Proof.
    Proof(Transcript),
    /// Waiting for the peer's Confirm.
    Confirm(Transcript),
    /// The peer confirmed the key: the connection may be used.
    Done(Transcript),
    /// Failed: nothing more is accepted.
    Failed,
}

/// One end of one connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    side: Side,
    ours: Hello,
    expect: Option<u32>,
    stage: Stage,
}

impl Handshake {
    /// Starts a handshake of node `node` at `side` of a new connection, with a fresh random
    /// `nonce`. `expect` is the node dialled (None when accepting).
    pub fn new(
        side: Side,
        node: u32,
        group: [u8; 16],
        nonce: [u8; 32],
        expect: Option<u32>,
    ) -> Self {
        Self {
            side,
            ours: Hello {
                version_min: PROTOCOL_VERSION,
                version_max: PROTOCOL_VERSION,
                node,
                group,
                nonce,
                features: 0,
            },
            expect,
            stage: Stage::Hello,
        }
    }

    /// Our Hello, to send first (sequence [`HELLO_SEQ`], unauthenticated).
    pub fn hello(&self) -> Hello {
        self.ours
    }

    /// Our end of the connection.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The peer's node id, once its Hello was accepted.
    pub fn peer(&self) -> Option<u32> {
        match self.stage {
            Stage::Proof(t) | Stage::Confirm(t) | Stage::Done(t) => Some(match self.side {
                Side::Dialler => t.acceptor.0,
                Side::Acceptor => t.dialler.0,
            }),
            Stage::Hello | Stage::Failed => None,
        }
    }

    /// Whether the peer confirmed the session key: only then may the connection be used.
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    fn fail<T>(&mut self, e: HandshakeError) -> Result<T, HandshakeError> {
        self.stage = Stage::Failed;
        Err(e)
    }

    /// Checks the peer's Hello (group, version, node id: the dialled one, or one `known`
    /// accepts; not our nonce) and returns our Proof, to send at [`PROOF_SEQ`].
    #[inline(never)]
    pub fn on_hello(
        &mut self,
        theirs: &Hello,
        known: impl Fn(u32) -> bool,
        secret: &dyn SecretMac,
    ) -> Result<Proof, HandshakeError> {
        if self.stage != Stage::Hello {
            return self.fail(HandshakeError::OutOfOrder);
        }
        let version = match wire::negotiate(&self.ours, theirs) {
            Ok(v) => v,
            Err(e) => return self.fail(e),
        };
        if self.expect.is_some_and(|e| e != theirs.node) || !known(theirs.node) {
            return self.fail(HandshakeError::UnknownNode);
        }
        if wire::tags_equal(&theirs.nonce, &self.ours.nonce) {
            return self.fail(HandshakeError::Reflected);
        }
        let (me, peer) = (
            (self.ours.node, self.ours.nonce),
            (theirs.node, theirs.nonce),
        );
        let (dialler, acceptor) = match self.side {
            Side::Dialler => (me, peer),
            Side::Acceptor => (peer, me),
        };
        let t = Transcript {
            version,
            group: self.ours.group,
            dialler,
            acceptor,
        };
        let proof = match t.proof(self.side, secret) {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        self.stage = Stage::Proof(t);
        Ok(Proof {
            node: self.ours.node,
            proof,
        })
    }

    /// Checks the peer's Proof (the other side's label over the same transcript, compared
    /// in constant time) and writes the session key into `key`. Then send [`Self::confirm`]
    /// tagged under that key.
    #[inline(never)]
    pub fn on_proof(
        &mut self,
        got: &Proof,
        secret: &dyn SecretMac,
        key: &mut [u8; KEY_LEN],
    ) -> Result<(), HandshakeError> {
        let Stage::Proof(t) = self.stage else {
            return self.fail(HandshakeError::OutOfOrder);
        };
        if Some(got.node) != self.peer() {
            return self.fail(HandshakeError::OutOfOrder);
        }
        let want = match t.proof(self.side.other(), secret) {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        if !secret.equal(&want, &got.proof) {
            return self.fail(HandshakeError::BadProof);
        }
        if !secret.mac(&[SESSION_KEY, &t.bytes()], key) {
            return self.fail(HandshakeError::Crypto);
        }
        self.stage = Stage::Confirm(t);
        Ok(())
    }

    /// Our key confirmation, to send authenticated under the session key at
    /// [`CONFIRM_SEQ`].
    pub fn confirm(&self) -> Confirm {
        Confirm { side: self.side }
    }

    /// Checks the peer's first authenticated frame: a Confirm of the other side from the
    /// peer, whose tag verifies under the session key (`tagger`), at a sequence number the
    /// connection's `window` accepts.
    #[inline(never)]
    pub fn on_confirm(
        &mut self,
        f: &Frame<'_>,
        tagger: &mut dyn Tagger,
        window: &mut SeqWindow,
    ) -> Result<(), HandshakeError> {
        let Stage::Confirm(t) = self.stage else {
            return self.fail(HandshakeError::OutOfOrder);
        };
        let ok = matches!(f.body, Body::Confirm(c) if c.side == self.side.other())
            && Some(f.header.sender) == self.peer()
            && f.verify(tagger).is_ok()
            && window.accept(f.header.seq);
        if !ok {
            return self.fail(HandshakeError::BadConfirm);
        }
        self.stage = Stage::Done(t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in MAC for the layout tests (the attack tests use HMAC-SHA256).
    struct Sum(u8);
    impl SecretMac for Sum {
        fn mac(&self, parts: &[&[u8]], out: &mut [u8; 32]) -> bool {
            for (i, b) in parts.iter().flat_map(|p| p.iter()).enumerate() {
                out[i % 32] = out[i % 32].wrapping_mul(31).wrapping_add(*b ^ self.0);
            }
            true
        }
    }

    #[test]
    fn transcript_layout() {
        let t = Transcript {
            version: 2,
            group: [9; 16],
            dialler: (5, [1; 32]),
            acceptor: (6, [2; 32]),
        };
        let b = t.bytes();
        assert_eq!(&b[..2], &2u16.to_le_bytes());
        assert_eq!(&b[2..18], &[9; 16]);
        assert_eq!(&b[18..22], &5u32.to_le_bytes());
        assert_eq!(&b[22..26], &6u32.to_le_bytes());
        assert_eq!(&b[26..58], &[1; 32]);
        assert_eq!(&b[58..], &[2; 32]);
        let m = Sum(0);
        assert_ne!(t.proof(Side::Dialler, &m), t.proof(Side::Acceptor, &m));
    }

    #[test]
    fn order_is_enforced() {
        let m = Sum(1);
        let mut h = Handshake::new(Side::Acceptor, 1, [0; 16], [1; 32], None);
        let p = Proof {
            node: 2,
            proof: [0; 32],
        };
        let mut key = [0; KEY_LEN];
        assert_eq!(
            h.on_proof(&p, &m, &mut key),
            Err(HandshakeError::OutOfOrder)
        );
        // A failed handshake accepts nothing more.
        let peer = Handshake::new(Side::Dialler, 2, [0; 16], [2; 32], Some(1)).hello();
        assert_eq!(
            h.on_hello(&peer, |_| true, &m).map(|_| ()),
            Err(HandshakeError::OutOfOrder)
        );
        let mut h = Handshake::new(Side::Acceptor, 1, [0; 16], [1; 32], None);
        assert!(h.on_hello(&peer, |n| n == 2, &m).is_ok());
        assert_eq!(h.peer(), Some(2));
        assert!(!h.is_done());
        let mut h = Handshake::new(Side::Acceptor, 1, [0; 16], [1; 32], None);
        assert_eq!(
            h.on_hello(&peer, |n| n == 3, &m).map(|_| ()),
            Err(HandshakeError::UnknownNode)
        );
        let mut h = Handshake::new(Side::Dialler, 1, [0; 16], [2; 32], Some(2));
        assert_eq!(
            h.on_hello(&peer, |_| true, &m).map(|_| ()),
            Err(HandshakeError::Reflected)
        );
    }
}
