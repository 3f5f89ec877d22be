// SPDX-License-Identifier: GPL-2.0
//! Wire format of the replication channel between AMFs (see `Documentation/protocol.rst`).
//!
//! Every message is one frame: a 24-byte header, a payload, a 32-byte authentication-tag slot
//! and a trailing CRC-32C over everything before it. All integers are little-endian. Decoding
//! never copies: it returns views that borrow the receive buffer, after checking every field,
//! so that a malformed frame is a typed [`WireError`] and never a panic. The CRC and the tag
//! are computed by the caller ([`Crc32c`], [`Tagger`]): the kernel and userspace each bring
//! their own implementations.

/// Frame magic, the bytes `AMFw`.
pub const MAGIC: [u8; 4] = *b"AMFw";
/// Protocol version this code speaks.
pub const VERSION: u8 = 2;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 24;
/// Size of the authentication-tag slot (an HMAC-SHA256).
pub const TAG_LEN: usize = 32;
/// Bytes after the payload: tag slot and CRC.
pub const TRAILER_LEN: usize = TAG_LEN + 4;
/// Smallest possible frame (empty payload).
pub const MIN_FRAME_LEN: usize = HEADER_LEN + TRAILER_LEN;
/// Largest frame accepted: room for a few MiB of chunk data per record.
pub const MAX_FRAME_LEN: usize = 16 << 20;
/// Flag: the tag slot carries an authentication tag.
pub const FLAG_AUTH: u16 = 1;
/// Fixed part of a record payload, before its block descriptors.
pub const RECORD_FIXED_LEN: usize = 48;
/// Size of one block descriptor in a record.
pub const BLOCK_DESC_LEN: usize = 8;
/// Most blocks one record may carry (data for 64 chunks plus old images and parity).
pub const MAX_BLOCKS: usize = 132;
/// Payload size of a hello message.
pub const HELLO_LEN: usize = 64;
/// Payload size of a proof message.
pub const PROOF_LEN: usize = 40;
/// Payload size of a key confirmation.
pub const CONFIRM_LEN: usize = 8;
/// Payload size of an ack message.
pub const ACK_LEN: usize = 24;
/// Payload size of a recovery message.
pub const RECOVERY_LEN: usize = 16;

/// A CRC-32C (Castagnoli, the iSCSI variant: initial value and final XOR `!0`; the check
/// value of `"123456789"` is `0xe306_9283`) supplied by the caller.
pub trait Crc32c {
    /// Extend `crc`, the CRC-32C of some bytes, to cover `data` after them (the `crc32c`
    /// crate's `crc32c_append`; in the kernel `!crc32c(!crc, data, len)`). The CRC of
    /// nothing is 0.
    fn append(crc: u32, data: &[u8]) -> u32;

    /// CRC-32C of `data`.
    fn crc32c(data: &[u8]) -> u32 {
        Self::append(0, data)
    }
}

/// Computes authentication tags (HMAC-SHA256 with the cluster key) for the caller.
pub trait Tagger {
    /// Tag of `signed` into `out`; false if the tag could not be computed.
    fn tag(&mut self, signed: &[u8], out: &mut [u8; TAG_LEN]) -> bool;
}

/// Every way a frame can be malformed or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header or the announced length; `needed` bytes in total.
    Truncated {
        /// Total bytes needed to go on.
        needed: usize,
    },
    /// Not the frame magic.
    BadMagic,
    /// A version this code does not speak.
    UnsupportedVersion(u8),
    /// Unknown message kind.
    UnknownKind(u8),
    /// Reserved flag bits set.
    ReservedFlags(u16),
    /// Announced length below [`MIN_FRAME_LEN`].
    LengthTooSmall(u32),
    /// Announced length above [`MAX_FRAME_LEN`].
    LengthTooLarge(u32),
    /// CRC mismatch.
    BadChecksum,
    /// Tag slot not zero although [`FLAG_AUTH`] is clear.
    StrayTag,
    /// Payload size wrong for the message kind.
    BadPayloadLength,
    /// A reserved field is not zero.
    ReservedNonZero,
    /// Unknown replication step.
    BadStep(u8),
    /// Unknown operation kind.
    BadOpKind(u8),
    /// Unknown block role.
    BadBlockRole(u8),
    /// Block index out of range for its role.
    BadBlockIndex(u8),
    /// More blocks than [`MAX_BLOCKS`].
    TooManyBlocks(u8),
    /// Block lengths do not add up to the payload.
    BlockLengthMismatch,
    /// Hello with `version_min > version_max`.
    BadVersionRange,
    /// Unknown ack status.
    BadAckStatus(u8),
    /// Unknown recovery phase.
    BadRecoveryPhase(u8),
    /// Unknown handshake side.
    BadSide(u8),
    /// The output buffer is too small; `needed` bytes.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// The tagger failed, or the tag did not verify.
    AuthFailed,
    /// The frame is not authenticated but authentication is required.
    NotAuthenticated,
}

/// Message kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Handshake: versions, identity, challenge nonce.
    Hello = 1,
    /// Handshake: answer to the peer's challenge.
    Proof = 2,
    /// Replication record of one step of one write operation.
    Record = 3,
    /// Acknowledgement of a record.
    Ack = 4,
    /// Recovery coordination for a dead AMF.
    Recovery = 5,
    /// Handshake: the first authenticated frame, confirming the session key.
    Confirm = 6,
}

impl Kind {
    fn from_u8(v: u8) -> Result<Kind, WireError> {
        Ok(match v {
            1 => Kind::Hello,
            2 => Kind::Proof,
            3 => Kind::Record,
            4 => Kind::Ack,
            5 => Kind::Recovery,
            6 => Kind::Confirm,
            _ => return Err(WireError::UnknownKind(v)),
        })
    }
}

/// Replication step of a write operation (see `super::op::Step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Step {
    /// New data is replicated; nothing is on disk yet.
    Intent = 1,
    /// New parity (and any old images) replicated; disk writes may start.
    Prepared = 2,
    /// All disk writes completed; the records may be dropped.
    Done = 3,
}

impl Step {
    /// Decode a step byte.
    pub fn from_u8(v: u8) -> Result<Step, WireError> {
        Ok(match v {
            1 => Step::Intent,
            2 => Step::Prepared,
            3 => Step::Done,
            _ => return Err(WireError::BadStep(v)),
        })
    }
}

/// Kind of write operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// Every data chunk of the stripe is written: parity from new data alone.
    FullStripe = 1,
    /// Read old data and parity, apply the delta.
    ReadModifyWrite = 2,
    /// Read the untouched data chunks, compute parity afresh.
    ReconstructWrite = 3,
    /// Mirrored or striped level: write every copy, no parity.
    Mirror = 4,
}

impl OpKind {
    /// Decode an op-kind byte.
    pub fn from_u8(v: u8) -> Result<OpKind, WireError> {
        Ok(match v {
            1 => OpKind::FullStripe,
            2 => OpKind::ReadModifyWrite,
            3 => OpKind::ReconstructWrite,
            4 => OpKind::Mirror,
            _ => return Err(WireError::BadOpKind(v)),
        })
    }
}

/// What a block in a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// New data of data chunk `index`.
    NewData = 1,
    /// Old data of data chunk `index`.
    OldData = 2,
    /// Old P.
    OldP = 3,
    /// Old Q.
    OldQ = 4,
    /// New P.
    NewP = 5,
    /// New Q.
    NewQ = 6,
}

impl Role {
    fn from_u8(v: u8) -> Result<Role, WireError> {
        Ok(match v {
            1 => Role::NewData,
            2 => Role::OldData,
            3 => Role::OldP,
            4 => Role::OldQ,
            5 => Role::NewP,
            6 => Role::NewQ,
            _ => return Err(WireError::BadBlockRole(v)),
        })
    }

    fn is_data(self) -> bool {
        matches!(self, Role::NewData | Role::OldData)
    }
}

/// Frame header fields chosen by the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message kind.
    pub kind: Kind,
    /// Flags ([`FLAG_AUTH`]).
    pub flags: u16,
    /// Total frame length.
    pub len: u32,
    /// Sender's node id.
    pub sender: u32,
    /// Per-connection sequence number (replay protection with the tag).
    pub seq: u64,
}

/// Handshake opening: who I am, which group, which versions, and a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Oldest protocol version spoken.
    pub version_min: u16,
    /// Newest protocol version spoken.
    pub version_max: u16,
    /// Node id of the sender.
    pub node: u32,
    /// Redundancy group (array) UUID.
    pub group: [u8; 16],
    /// Random challenge the peer must answer in its [`Proof`].
    pub nonce: [u8; 32],
    /// Feature bits.
    pub features: u64,
}

/// Handshake answer: a MAC over the handshake transcript (`super::handshake`), proving
/// knowledge of the group secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Node id of the sender.
    pub node: u32,
    /// HMAC computed by the caller (see `Documentation/protocol.rst`).
    pub proof: [u8; 32],
}

/// Which end of a connection a node is: the handshake binds it into every proof and into the
/// session key, so that a proof made for one end is worthless at the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Side {
    /// It connected (sends its records on this connection).
    Dialler = 1,
    /// It accepted (receives the dialler's records).
    Acceptor = 2,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Dialler => Side::Acceptor,
            Side::Acceptor => Side::Dialler,
        }
    }

    fn from_u8(v: u8) -> Result<Side, WireError> {
        Ok(match v {
            1 => Side::Dialler,
            2 => Side::Acceptor,
            _ => return Err(WireError::BadSide(v)),
        })
    }
}

/// Handshake end: the first authenticated frame of each side, tagged under the new session
/// key, so a connection is used only once the peer proved it holds that key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// The sender's end of the connection.
    pub side: Side,
}

/// Fixed fields of a replication record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Operation id, unique per owner.
    pub op_id: u64,
    /// Owner's membership generation when the operation started.
    pub generation: u64,
    /// Stripe written.
    pub stripe: u64,
    /// Owner node id.
    pub owner: u32,
    /// Step reached.
    pub step: Step,
    /// Operation kind.
    pub kind: OpKind,
    /// First sector written within each chunk.
    pub offset: u32,
    /// Sectors written per chunk.
    pub sectors: u32,
    /// Data chunks written (bit i = data chunk i).
    pub chunks: u64,
}

/// One block of a record: role, chunk index and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    /// What the bytes are.
    pub role: Role,
    /// Data chunk index (0 for parity roles).
    pub index: u8,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// Acknowledgement status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AckStatus {
    /// Stored.
    Ok = 0,
    /// Refused (stale generation, unknown owner).
    Rejected = 1,
}

/// Acknowledgement of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Operation id acknowledged.
    pub op_id: u64,
    /// Its generation.
    pub generation: u64,
    /// Owner of the operation.
    pub owner: u32,
    /// Step acknowledged.
    pub step: Step,
    /// Outcome.
    pub status: AckStatus,
}

/// Recovery coordination phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecoveryPhase {
    /// The dead node's operations are finished on disk: drop its records (stay paused).
    Complete = 1,
    /// Everyone dropped the records: resume I/O.
    Resume = 2,
}

/// Recovery coordination message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The dead node.
    pub dead: u32,
    /// Phase.
    pub phase: RecoveryPhase,
    /// Membership generation the recovery belongs to.
    pub epoch: u64,
}

/// A message to encode.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// Handshake opening.
    Hello(Hello),
    /// Handshake answer.
    Proof(Proof),
    /// Replication record with its blocks.
    Record(RecordHeader, &'a [Block<'a>]),
    /// Acknowledgement.
    Ack(Ack),
    /// Recovery coordination.
    Recovery(Recovery),
    /// Key confirmation.
    Confirm(Confirm),
}

/// A decoded record: fixed fields plus a validated, borrowed block table.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// Fixed fields.
    pub header: RecordHeader,
    descs: &'a [u8],
    data: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The blocks, in the order the sender put them.
    pub fn blocks(&self) -> BlockIter<'a> {
        BlockIter {
            descs: self.descs,
            data: self.data,
        }
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.descs.len() / BLOCK_DESC_LEN
    }

    /// The first block with `role` and `index`.
    pub fn find(&self, role: Role, index: u8) -> Option<&'a [u8]> {
        self.blocks()
            .find(|b| b.role == role && b.index == index)
            .map(|b| b.bytes)
    }
}

/// Iterator over a record's blocks (validated at decode time).
#[derive(Clone, Debug)]
pub struct BlockIter<'a> {
    descs: &'a [u8],
    data: &'a [u8],
}

impl<'a> Iterator for BlockIter<'a> {
    type Item = Block<'a>;

    fn next(&mut self) -> Option<Block<'a>> {
        let (d, rest) = split(self.descs, BLOCK_DESC_LEN)?;
        self.descs = rest;
        let role = Role::from_u8(*d.first()?).ok()?;
        let index = *d.get(1)?;
        let len = le_u32(d, 4)? as usize;
        let (bytes, rest) = split(self.data, len)?;
        self.data = rest;
        Some(Block { role, index, bytes })
    }
}

/// A decoded message body.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    /// Handshake opening.
    Hello(Hello),
    /// Handshake answer.
    Proof(Proof),
    /// Replication record.
    Record(RecordView<'a>),
    /// Acknowledgement.
    Ack(Ack),
    /// Recovery coordination.
    Recovery(Recovery),
    /// Key confirmation.
    Confirm(Confirm),
}

impl Body<'_> {
    /// The message that encodes this body again. A record's blocks are `blocks`: the caller
    /// collects them from [`RecordView::blocks`], since a decoded record borrows its block
    /// table while [`Message::Record`] takes a slice. Other bodies ignore `blocks`.
    pub fn to_message<'b>(self, blocks: &'b [Block<'b>]) -> Message<'b> {
        match self {
            Body::Hello(h) => Message::Hello(h),
            Body::Proof(p) => Message::Proof(p),
            Body::Record(r) => Message::Record(r.header, blocks),
            Body::Ack(a) => Message::Ack(a),
            Body::Recovery(r) => Message::Recovery(r),
            Body::Confirm(c) => Message::Confirm(c),
        }
    }
}

/// A decoded, checksum-verified frame borrowing the receive buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Header fields.
    pub header: Header,
    /// Body.
    pub body: Body<'a>,
    signed: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Bytes the tag covers: header and payload.
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.signed
    }

    /// The tag slot.
    pub fn tag(&self) -> &'a [u8] {
        self.tag
    }

    /// Whether the sender set [`FLAG_AUTH`].
    pub fn is_authenticated(&self) -> bool {
        self.header.flags & FLAG_AUTH != 0
    }

    /// Check the tag with the caller's key; errors if absent or wrong.
    pub fn verify(&self, tagger: &mut dyn Tagger) -> Result<(), WireError> {
        if !self.is_authenticated() {
            return Err(WireError::NotAuthenticated);
        }
        let mut want = [0u8; TAG_LEN];
        if !tagger.tag(self.signed, &mut want) {
            return Err(WireError::AuthFailed);
        }
        if !tags_equal(&want, self.tag) {
            return Err(WireError::AuthFailed);
        }
        Ok(())
    }
}

/// Constant-time comparison of two tags (or proofs); slices of different lengths differ.
pub fn tags_equal(x: &[u8], y: &[u8]) -> bool {
    let diff = x
        .iter()
        .zip(y.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0 && x.len() == y.len()
}

fn split(buf: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    if at > buf.len() {
        return None;
    }
    Some(buf.split_at(at))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    for (d, b) in a.iter_mut().zip(s) {
        *d = *b;
    }
    Some(u32::from_le_bytes(a))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    for (d, b) in a.iter_mut().zip(s) {
        *d = *b;
    }
    Some(u64::from_le_bytes(a))
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    let s = b.get(at..at.checked_add(N)?)?;
    let mut a = [0u8; N];
    for (d, b) in a.iter_mut().zip(s) {
        *d = *b;
    }
    Some(a)
}

const SHORT: WireError = WireError::BadPayloadLength;

/// Total length of the frame starting at `buf`, from its header alone, so a stream reader
/// knows how much to read. `Truncated` if fewer than [`HEADER_LEN`] bytes are present.
pub fn frame_len(buf: &[u8]) -> Result<usize, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Truncated { needed: HEADER_LEN });
    }
    if buf.get(0..4) != Some(&MAGIC[..]) {
        return Err(WireError::BadMagic);
    }
    let version = buf.get(4).copied().unwrap_or(0);
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let len = le_u32(buf, 8).ok_or(WireError::Truncated { needed: HEADER_LEN })?;
    if (len as usize) < MIN_FRAME_LEN {
        return Err(WireError::LengthTooSmall(len));
    }
    if len as usize > MAX_FRAME_LEN {
        return Err(WireError::LengthTooLarge(len));
    }
    Ok(len as usize)
}

/// Decode and verify the frame at the start of `buf` (which may hold more bytes after it).
/// Returns the frame and the number of bytes it used.
pub fn decode<C: Crc32c>(buf: &[u8]) -> Result<(Frame<'_>, usize), WireError> {
    let len = frame_len(buf)?;
    let frame = buf.get(..len).ok_or(WireError::Truncated { needed: len })?;
    let crc_at = len - 4;
    let want = le_u32(frame, crc_at).ok_or(WireError::Truncated { needed: len })?;
    let covered = frame
        .get(..crc_at)
        .ok_or(WireError::Truncated { needed: len })?;
    if C::crc32c(covered) != want {
        return Err(WireError::BadChecksum);
    }
    let kind = Kind::from_u8(frame.get(5).copied().unwrap_or(0))?;
    let flags = le_u16(frame, 6).ok_or(SHORT)?;
    if flags & !FLAG_AUTH != 0 {
        return Err(WireError::ReservedFlags(flags));
    }
    let header = Header {
        kind,
        flags,
        len: len as u32,
        sender: le_u32(frame, 12).ok_or(SHORT)?,
        seq: le_u64(frame, 16).ok_or(SHORT)?,
    };
    let tag_at = crc_at - TAG_LEN;
    let signed = frame.get(..tag_at).ok_or(SHORT)?;
    let tag = frame.get(tag_at..crc_at).ok_or(SHORT)?;
    if flags & FLAG_AUTH == 0 && tag.iter().any(|b| *b != 0) {
        return Err(WireError::StrayTag);
    }
    let payload = signed.get(HEADER_LEN..).ok_or(SHORT)?;
    let body = decode_body(kind, payload)?;
    Ok((
        Frame {
            header,
            body,
            signed,
            tag,
        },
        len,
    ))
}

fn exact(payload: &[u8], n: usize) -> Result<(), WireError> {
    if payload.len() == n {
        Ok(())
    } else {
        Err(WireError::BadPayloadLength)
    }
}

fn decode_body(kind: Kind, p: &[u8]) -> Result<Body<'_>, WireError> {
    Ok(match kind {
        Kind::Hello => {
            exact(p, HELLO_LEN)?;
            let h = Hello {
                version_min: le_u16(p, 0).ok_or(SHORT)?,
                version_max: le_u16(p, 2).ok_or(SHORT)?,
                node: le_u32(p, 4).ok_or(SHORT)?,
                group: array(p, 8).ok_or(SHORT)?,
                nonce: array(p, 24).ok_or(SHORT)?,
                features: le_u64(p, 56).ok_or(SHORT)?,
            };
            if h.version_min > h.version_max {
                return Err(WireError::BadVersionRange);
            }
            Body::Hello(h)
        }
        Kind::Proof => {
            exact(p, PROOF_LEN)?;
            if le_u32(p, 4) != Some(0) {
                return Err(WireError::ReservedNonZero);
            }
            Body::Proof(Proof {
                node: le_u32(p, 0).ok_or(SHORT)?,
                proof: array(p, 8).ok_or(SHORT)?,
            })
        }
        Kind::Ack => {
            exact(p, ACK_LEN)?;
            if le_u16(p, 22) != Some(0) {
                return Err(WireError::ReservedNonZero);
            }
            let status = match p.get(21).copied().unwrap_or(0xff) {
                0 => AckStatus::Ok,
                1 => AckStatus::Rejected,
                s => return Err(WireError::BadAckStatus(s)),
            };
            Body::Ack(Ack {
                op_id: le_u64(p, 0).ok_or(SHORT)?,
                generation: le_u64(p, 8).ok_or(SHORT)?,
                owner: le_u32(p, 16).ok_or(SHORT)?,
                step: Step::from_u8(p.get(20).copied().unwrap_or(0))?,
                status,
            })
        }
        Kind::Recovery => {
            exact(p, RECOVERY_LEN)?;
            if p.get(5..8) != Some(&[0, 0, 0][..]) {
                return Err(WireError::ReservedNonZero);
            }
            let phase = match p.get(4).copied().unwrap_or(0) {
                1 => RecoveryPhase::Complete,
                2 => RecoveryPhase::Resume,
                v => return Err(WireError::BadRecoveryPhase(v)),
            };
            Body::Recovery(Recovery {
                dead: le_u32(p, 0).ok_or(SHORT)?,
                phase,
                epoch: le_u64(p, 8).ok_or(SHORT)?,
            })
        }
        Kind::Confirm => {
            exact(p, CONFIRM_LEN)?;
            if p.get(1..8) != Some(&[0; 7][..]) {
                return Err(WireError::ReservedNonZero);
            }
            Body::Confirm(Confirm {
                side: Side::from_u8(p.first().copied().unwrap_or(0))?,
            })
        }
        Kind::Record => Body::Record(decode_record(p)?),
    })
}

fn decode_record(p: &[u8]) -> Result<RecordView<'_>, WireError> {
    if p.len() < RECORD_FIXED_LEN {
        return Err(WireError::BadPayloadLength);
    }
    let count = p.get(30).copied().unwrap_or(0);
    if count as usize > MAX_BLOCKS {
        return Err(WireError::TooManyBlocks(count));
    }
    if p.get(31) != Some(&0) {
        return Err(WireError::ReservedNonZero);
    }
    let header = RecordHeader {
        op_id: le_u64(p, 0).ok_or(SHORT)?,
        generation: le_u64(p, 8).ok_or(SHORT)?,
        stripe: le_u64(p, 16).ok_or(SHORT)?,
        owner: le_u32(p, 24).ok_or(SHORT)?,
        step: Step::from_u8(p.get(28).copied().unwrap_or(0))?,
        kind: OpKind::from_u8(p.get(29).copied().unwrap_or(0))?,
        offset: le_u32(p, 32).ok_or(SHORT)?,
        sectors: le_u32(p, 36).ok_or(SHORT)?,
        chunks: le_u64(p, 40).ok_or(SHORT)?,
    };
    let desc_len = count as usize * BLOCK_DESC_LEN;
    let rest = p.get(RECORD_FIXED_LEN..).ok_or(SHORT)?;
    let (descs, data) = split(rest, desc_len).ok_or(WireError::BadPayloadLength)?;
    let mut total: usize = 0;
    for d in descs.chunks_exact(BLOCK_DESC_LEN) {
        let role = Role::from_u8(d.first().copied().unwrap_or(0))?;
        let index = d.get(1).copied().unwrap_or(0);
        if (role.is_data() && index as usize >= super::geometry::MAX_MEMBERS)
            || (!role.is_data() && index != 0)
        {
            return Err(WireError::BadBlockIndex(index));
        }
        if le_u16(d, 2) != Some(0) {
            return Err(WireError::ReservedNonZero);
        }
        let len = le_u32(d, 4).ok_or(SHORT)? as usize;
        total = total
            .checked_add(len)
            .ok_or(WireError::BlockLengthMismatch)?;
    }
    if total != data.len() {
        return Err(WireError::BlockLengthMismatch);
    }
    Ok(RecordView {
        header,
        descs,
        data,
    })
}

fn payload_len(msg: &Message<'_>) -> Result<usize, WireError> {
    Ok(match msg {
        Message::Hello(_) => HELLO_LEN,
        Message::Proof(_) => PROOF_LEN,
        Message::Ack(_) => ACK_LEN,
        Message::Recovery(_) => RECOVERY_LEN,
        Message::Confirm(_) => CONFIRM_LEN,
        Message::Record(_, blocks) => {
            if blocks.len() > MAX_BLOCKS {
                return Err(WireError::TooManyBlocks(u8::MAX));
            }
            let mut n = RECORD_FIXED_LEN + blocks.len() * BLOCK_DESC_LEN;
            for b in blocks.iter() {
                n = n
                    .checked_add(b.bytes.len())
                    .ok_or(WireError::LengthTooLarge(u32::MAX))?;
            }
            n
        }
    })
}

/// Bytes needed to encode `msg`.
pub fn encoded_len(msg: &Message<'_>) -> Result<usize, WireError> {
    let n = payload_len(msg)?
        .checked_add(HEADER_LEN + TRAILER_LEN)
        .ok_or(WireError::LengthTooLarge(u32::MAX))?;
    if n > MAX_FRAME_LEN {
        return Err(WireError::LengthTooLarge(
            u32::try_from(n).unwrap_or(u32::MAX),
        ));
    }
    Ok(n)
}

/// A little cursor that writes into a slice whose size was checked beforehand.
struct Out<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.at..end) {
            // Element-wise: no length-mismatch panic path in the kernel build.
            for (d, b) in dst.iter_mut().zip(bytes) {
                *d = *b;
            }
        }
        self.at = end;
    }
}

/// Encode `msg` into `out`; returns the frame length. With a `tagger` the frame is
/// authenticated ([`FLAG_AUTH`] set, tag over header and payload), else the tag slot is zero.
pub fn encode<C: Crc32c>(
    msg: &Message<'_>,
    sender: u32,
    seq: u64,
    tagger: Option<&mut dyn Tagger>,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let len = encoded_len(msg)?;
    if out.len() < len {
        return Err(WireError::BufferTooSmall { needed: len });
    }
    let (kind, flags) = (
        match msg {
            Message::Hello(_) => Kind::Hello,
            Message::Proof(_) => Kind::Proof,
            Message::Record(..) => Kind::Record,
            Message::Ack(_) => Kind::Ack,
            Message::Recovery(_) => Kind::Recovery,
            Message::Confirm(_) => Kind::Confirm,
        },
        if tagger.is_some() { FLAG_AUTH } else { 0 },
    );
    let frame = out
        .get_mut(..len)
        .ok_or(WireError::BufferTooSmall { needed: len })?;
    let mut w = Out { buf: frame, at: 0 };
    w.put(&MAGIC);
    w.put(&[VERSION, kind as u8]);
    w.put(&flags.to_le_bytes());
    w.put(&(len as u32).to_le_bytes());
    w.put(&sender.to_le_bytes());
    w.put(&seq.to_le_bytes());
    match msg {
        Message::Hello(h) => {
            w.put(&h.version_min.to_le_bytes());
            w.put(&h.version_max.to_le_bytes());
            w.put(&h.node.to_le_bytes());
            w.put(&h.group);
            w.put(&h.nonce);
            w.put(&h.features.to_le_bytes());
        }
        Message::Proof(p) => {
            w.put(&p.node.to_le_bytes());
            w.put(&[0; 4]);
            w.put(&p.proof);
        }
        Message::Ack(a) => {
            w.put(&a.op_id.to_le_bytes());
            w.put(&a.generation.to_le_bytes());
            w.put(&a.owner.to_le_bytes());
            w.put(&[a.step as u8, a.status as u8, 0, 0]);
        }
        Message::Recovery(r) => {
            w.put(&r.dead.to_le_bytes());
            w.put(&[r.phase as u8, 0, 0, 0]);
            w.put(&r.epoch.to_le_bytes());
        }
        Message::Confirm(c) => {
            w.put(&[c.side as u8, 0, 0, 0, 0, 0, 0, 0]);
        }
        Message::Record(h, blocks) => {
            put_record_fields(&mut w, h, blocks.len());
            for b in blocks.iter() {
                w.put(&[b.role as u8, b.index, 0, 0]);
                w.put(&(b.bytes.len() as u32).to_le_bytes());
            }
            for b in blocks.iter() {
                w.put(b.bytes);
            }
        }
    }
    let tag_at = len - TRAILER_LEN;
    let mut tag = [0u8; TAG_LEN];
    if let Some(t) = tagger {
        let signed = w.buf.get(..tag_at).ok_or(WireError::AuthFailed)?;
        if !t.tag(signed, &mut tag) {
            return Err(WireError::AuthFailed);
        }
    }
    w.at = tag_at;
    w.put(&tag);
    let crc = C::crc32c(w.buf.get(..len - 4).unwrap_or(&[]));
    w.put(&crc.to_le_bytes());
    // Validate our own output so a bad block (role/index) is caught at the sender.
    decode::<C>(w.buf).map(|_| len)
}

/// One block of a record sent from the caller's own buffers (pages): role, index, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockDesc {
    /// What the bytes are.
    pub role: Role,
    /// Data chunk index (0 for parity roles).
    pub index: u8,
    /// Length in bytes.
    pub len: u32,
}

/// Bytes of a record's head (frame header, record fields, descriptors) for `blocks` blocks.
pub fn record_head_len(blocks: usize) -> usize {
    (HEADER_LEN + RECORD_FIXED_LEN).saturating_add(blocks.saturating_mul(BLOCK_DESC_LEN))
}

/// Scatter-gather sending of a record, so block data goes out of the caller's pages without
/// a copy: write the head into `out` (returns its length and the total frame length), then
/// send the head, the blocks' bytes in `descs` order, and the [`record_trailer`].
pub fn encode_record_head(
    header: &RecordHeader,
    descs: &[BlockDesc],
    sender: u32,
    seq: u64,
    authenticated: bool,
    out: &mut [u8],
) -> Result<(usize, usize), WireError> {
    if descs.len() > MAX_BLOCKS {
        return Err(WireError::TooManyBlocks(u8::MAX));
    }
    let head = record_head_len(descs.len());
    let mut total = head + TRAILER_LEN;
    for d in descs {
        if (d.role.is_data() && d.index as usize >= super::geometry::MAX_MEMBERS)
            || (!d.role.is_data() && d.index != 0)
        {
            return Err(WireError::BadBlockIndex(d.index));
        }
        total = total
            .checked_add(d.len as usize)
            .ok_or(WireError::LengthTooLarge(u32::MAX))?;
    }
    if total > MAX_FRAME_LEN {
        return Err(WireError::LengthTooLarge(
            u32::try_from(total).unwrap_or(u32::MAX),
        ));
    }
    let buf = out
        .get_mut(..head)
        .ok_or(WireError::BufferTooSmall { needed: head })?;
    let flags: u16 = if authenticated { FLAG_AUTH } else { 0 };
    let mut w = Out { buf, at: 0 };
    w.put(&MAGIC);
    w.put(&[VERSION, Kind::Record as u8]);
    w.put(&flags.to_le_bytes());
    w.put(&(total as u32).to_le_bytes());
    w.put(&sender.to_le_bytes());
    w.put(&seq.to_le_bytes());
    put_record_fields(&mut w, header, descs.len());
    for d in descs {
        w.put(&[d.role as u8, d.index, 0, 0]);
        w.put(&d.len.to_le_bytes());
    }
    Ok((head, total))
}

/// The 36-byte trailer of a scatter-gather frame: `tag` (zero when not authenticated),
/// then the CRC, given `crc` = the CRC-32C of everything sent before the trailer.
pub fn record_trailer<C: Crc32c>(crc: u32, tag: &[u8; TAG_LEN]) -> [u8; TRAILER_LEN] {
    let mut out = [0u8; TRAILER_LEN];
    let crc = C::append(crc, tag);
    let mut w = Out {
        buf: &mut out,
        at: 0,
    };
    w.put(tag);
    w.put(&crc.to_le_bytes());
    out
}

fn put_record_fields(w: &mut Out<'_>, h: &RecordHeader, count: usize) {
    w.put(&h.op_id.to_le_bytes());
    w.put(&h.generation.to_le_bytes());
    w.put(&h.stripe.to_le_bytes());
    w.put(&h.owner.to_le_bytes());
    w.put(&[h.step as u8, h.kind as u8, count as u8, 0]);
    w.put(&h.offset.to_le_bytes());
    w.put(&h.sectors.to_le_bytes());
    w.put(&h.chunks.to_le_bytes());
}

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The peer serves another redundancy group.
    OtherGroup,
    /// No protocol version in common.
    NoCommonVersion,
    /// The peer claims our own node id.
    SameNode,
    /// The peer's node id is not the one dialled, or not one of the group's peers.
    UnknownNode,
    /// The peer sent our own nonce back (a reflection).
    Reflected,
    /// A message out of the handshake's order, or from another node than the Hello's.
    OutOfOrder,
    /// The peer's proof is wrong: it does not hold the secret, or it proved another
    /// transcript (another side, node, nonce, group or version).
    BadProof,
    /// The peer's first authenticated frame is not a valid confirmation under the session
    /// key.
    BadConfirm,
    /// Our own HMAC could not be computed.
    Crypto,
}

impl HandshakeError {
    /// What went wrong, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            HandshakeError::OtherGroup => "it serves another group",
            HandshakeError::NoCommonVersion => "no common protocol version",
            HandshakeError::SameNode => "it claims our own node id",
            HandshakeError::UnknownNode => "its node id is not the one dialled or not in peers",
            HandshakeError::Reflected => "it sent our own nonce back",
            HandshakeError::OutOfOrder => "handshake message out of order",
            HandshakeError::BadProof => "wrong proof (another secret, or a relay)",
            HandshakeError::BadConfirm => "its key confirmation did not verify",
            HandshakeError::Crypto => "HMAC failed",
        }
    }
}

/// Check a peer's [`Hello`] against ours; returns the protocol version to speak.
pub fn negotiate(ours: &Hello, peer: &Hello) -> Result<u16, HandshakeError> {
    if ours.group != peer.group {
        return Err(HandshakeError::OtherGroup);
    }
    if ours.node == peer.node {
        return Err(HandshakeError::SameNode);
    }
    let hi = ours.version_max.min(peer.version_max);
    let lo = ours.version_min.max(peer.version_min);
    if lo > hi {
        return Err(HandshakeError::NoCommonVersion);
    }
    Ok(hi)
}

/// Replay protection for one connection: sequence numbers must strictly increase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqWindow {
    last: Option<u64>,
}

impl SeqWindow {
    /// Accept `seq` if it is newer than every sequence number seen so far.
    pub fn accept(&mut self, seq: u64) -> bool {
        match self.last {
            Some(l) if seq <= l => false,
            _ => {
                self.last = Some(seq);
                true
            }
        }
    }
}

/// Bitwise CRC-32C for the crate's tests only (the library takes the checksum from its
/// caller).
#[cfg(test)]
pub(crate) struct TestCrc;

#[cfg(test)]
impl Crc32c for TestCrc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        let mut crc = !crc;
        for b in data {
            crc ^= *b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct XorTagger(u8);
    impl Tagger for XorTagger {
        fn tag(&mut self, signed: &[u8], out: &mut [u8; TAG_LEN]) -> bool {
            *out = [self.0; TAG_LEN];
            for (i, b) in signed.iter().enumerate() {
                out[i % TAG_LEN] ^= *b;
            }
            true
        }
    }

    fn record_header() -> RecordHeader {
        RecordHeader {
            op_id: 7,
            generation: 3,
            stripe: 99,
            owner: 2,
            step: Step::Prepared,
            kind: OpKind::ReadModifyWrite,
            offset: 1,
            sectors: 2,
            chunks: 0b101,
        }
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(TestCrc::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn record_roundtrip_zero_copy() {
        let blocks = [
            Block {
                role: Role::NewData,
                index: 0,
                bytes: &[1, 2, 3],
            },
            Block {
                role: Role::NewData,
                index: 2,
                bytes: &[4, 5, 6],
            },
            Block {
                role: Role::NewP,
                index: 0,
                bytes: &[7, 8, 9],
            },
        ];
        let mut buf = [0u8; 256];
        let n = encode::<TestCrc>(
            &Message::Record(record_header(), &blocks),
            2,
            11,
            None,
            &mut buf,
        )
        .unwrap();
        let (f, used) = decode::<TestCrc>(&buf[..n + 5]).unwrap();
        assert_eq!(used, n);
        assert_eq!(f.header.seq, 11);
        match f.body {
            Body::Record(r) => {
                assert_eq!(r.header, record_header());
                let got: std::vec::Vec<_> = r.blocks().collect();
                assert_eq!(&got[..], &blocks[..]);
                assert_eq!(r.find(Role::NewP, 0), Some(&[7u8, 8, 9][..]));
                // Borrowed from the buffer, not copied.
                let p = r.find(Role::NewData, 2).unwrap().as_ptr() as usize;
                assert!(p >= buf.as_ptr() as usize && p < buf.as_ptr() as usize + n);
            }
            _ => panic!("not a record"),
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let blocks = [Block {
            role: Role::NewData,
            index: 1,
            bytes: &[9; 16],
        }];
        let mut buf = [0u8; 256];
        let n = encode::<TestCrc>(
            &Message::Record(record_header(), &blocks),
            1,
            1,
            None,
            &mut buf,
        )
        .unwrap();
        for cut in 0..n {
            assert!(decode::<TestCrc>(&buf[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..n {
            for bit in 0..8 {
                let mut b = buf;
                b[i] ^= 1 << bit;
                assert!(decode::<TestCrc>(&b[..n]).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn confirm_roundtrip_and_field_checks() {
        let c = Confirm {
            side: Side::Acceptor,
        };
        let mut buf = [0u8; 128];
        let n = encode::<TestCrc>(
            &Message::Confirm(c),
            2,
            2,
            Some(&mut XorTagger(3)),
            &mut buf,
        )
        .unwrap();
        assert_eq!(n, MIN_FRAME_LEN + CONFIRM_LEN);
        let (f, _) = decode::<TestCrc>(&buf[..n]).unwrap();
        assert!(matches!(f.body, Body::Confirm(x) if x == c));
        assert_eq!(f.verify(&mut XorTagger(3)), Ok(()));
        assert_eq!(f.verify(&mut XorTagger(4)), Err(WireError::AuthFailed));
        for (at, v, err) in [
            (HEADER_LEN, 3, WireError::BadSide(3)),
            (HEADER_LEN, 0, WireError::BadSide(0)),
            (HEADER_LEN + 7, 1, WireError::ReservedNonZero),
        ] {
            let mut b = buf;
            b[at] = v;
            reseal(&mut b, n);
            assert_eq!(decode::<TestCrc>(&b[..n]).unwrap_err(), err);
        }
        assert_eq!(Side::Dialler.other(), Side::Acceptor);
        assert!(tags_equal(&[1, 2], &[1, 2]));
        assert!(!tags_equal(&[1, 2], &[1, 3]));
        assert!(!tags_equal(&[1, 2], &[1]));
    }

    #[test]
    fn authenticated_frames_verify_and_detect_forgery() {
        let hello = Hello {
            version_min: 1,
            version_max: 1,
            node: 4,
            group: [0xab; 16],
            nonce: [5; 32],
            features: 0,
        };
        let mut buf = [0u8; 256];
        let n = encode::<TestCrc>(
            &Message::Hello(hello),
            4,
            0,
            Some(&mut XorTagger(1)),
            &mut buf,
        )
        .unwrap();
        let (f, _) = decode::<TestCrc>(&buf[..n]).unwrap();
        assert!(matches!(f.body, Body::Hello(h) if h == hello));
        assert_eq!(f.verify(&mut XorTagger(1)), Ok(()));
        assert_eq!(f.verify(&mut XorTagger(2)), Err(WireError::AuthFailed));
        let n = encode::<TestCrc>(&Message::Hello(hello), 4, 0, None, &mut buf).unwrap();
        let (f, _) = decode::<TestCrc>(&buf[..n]).unwrap();
        assert_eq!(
            f.verify(&mut XorTagger(1)),
            Err(WireError::NotAuthenticated)
        );
    }

    /// Re-seal a tampered frame with a correct CRC so the field checks are what fails.
    fn reseal(buf: &mut [u8], n: usize) {
        let crc = TestCrc::crc32c(&buf[..n - 4]);
        buf[n - 4..n].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn typed_errors_for_bad_fields() {
        let ack = Ack {
            op_id: 1,
            generation: 2,
            owner: 3,
            step: Step::Intent,
            status: AckStatus::Ok,
        };
        let mut buf = [0u8; 128];
        let n = encode::<TestCrc>(&Message::Ack(ack), 3, 0, None, &mut buf).unwrap();
        let cases: [(usize, u8, WireError); 7] = [
            (0, b'X', WireError::BadMagic),
            (4, 1, WireError::UnsupportedVersion(1)),
            (5, 9, WireError::UnknownKind(9)),
            (6, 2, WireError::ReservedFlags(2)),
            (HEADER_LEN + 20, 7, WireError::BadStep(7)),
            (HEADER_LEN + 21, 5, WireError::BadAckStatus(5)),
            (HEADER_LEN + 22, 1, WireError::ReservedNonZero),
        ];
        for (at, v, err) in cases {
            let mut b = buf;
            b[at] = v;
            reseal(&mut b, n);
            assert_eq!(decode::<TestCrc>(&b[..n]).unwrap_err(), err);
        }
        let mut b = buf;
        b[n - 10] = 1;
        reseal(&mut b, n);
        assert_eq!(decode::<TestCrc>(&b[..n]).unwrap_err(), WireError::StrayTag);
        let mut b = buf;
        b[8..12].copy_from_slice(&(u32::MAX).to_le_bytes());
        assert_eq!(
            decode::<TestCrc>(&b).unwrap_err(),
            WireError::LengthTooLarge(u32::MAX)
        );
        assert_eq!(
            encode::<TestCrc>(&Message::Ack(ack), 3, 0, None, &mut buf[..10]),
            Err(WireError::BufferTooSmall { needed: n })
        );
    }

    #[test]
    fn scatter_gather_record_equals_contiguous_encoding() {
        let data: [&[u8]; 2] = [&[1, 2, 3, 4], &[9; 7]];
        let blocks = [
            Block {
                role: Role::NewData,
                index: 3,
                bytes: data[0],
            },
            Block {
                role: Role::NewQ,
                index: 0,
                bytes: data[1],
            },
        ];
        let descs = blocks.map(|b| BlockDesc {
            role: b.role,
            index: b.index,
            len: b.bytes.len() as u32,
        });
        for auth in [false, true] {
            let mut whole = [0u8; 256];
            let mut t = XorTagger(7);
            let tagger: Option<&mut dyn Tagger> = if auth { Some(&mut t) } else { None };
            let n = encode::<TestCrc>(
                &Message::Record(record_header(), &blocks),
                4,
                8,
                tagger,
                &mut whole,
            )
            .unwrap();
            let mut head = [0u8; 128];
            let (h, total) =
                encode_record_head(&record_header(), &descs, 4, 8, auth, &mut head).unwrap();
            assert_eq!(total, n);
            let mut signed = std::vec::Vec::new();
            signed.extend_from_slice(&head[..h]);
            let mut crc = TestCrc::append(0, &head[..h]);
            for d in data {
                crc = TestCrc::append(crc, d);
                signed.extend_from_slice(d);
            }
            let mut tag = [0u8; TAG_LEN];
            if auth {
                XorTagger(7).tag(&signed, &mut tag);
            }
            let trailer = record_trailer::<TestCrc>(crc, &tag);
            signed.extend_from_slice(&trailer);
            assert_eq!(&signed[..], &whole[..n]);
        }
        let bad = [BlockDesc {
            role: Role::NewP,
            index: 1,
            len: 1,
        }];
        assert_eq!(
            encode_record_head(&record_header(), &bad, 4, 8, false, &mut [0u8; 128]),
            Err(WireError::BadBlockIndex(1))
        );
        assert_eq!(
            encode_record_head(&record_header(), &descs, 4, 8, false, &mut [0u8; 10]),
            Err(WireError::BufferTooSmall {
                needed: record_head_len(2)
            })
        );
    }

    #[test]
    fn handshake_rules() {
        let a = Hello {
            version_min: 1,
            version_max: 3,
            node: 1,
            group: [1; 16],
            nonce: [2; 32],
            features: 0,
        };
        let mut b = Hello {
            version_min: 2,
            version_max: 5,
            node: 2,
            ..a
        };
        assert_eq!(negotiate(&a, &b), Ok(3));
        b.version_min = 4;
        assert_eq!(negotiate(&a, &b), Err(HandshakeError::NoCommonVersion));
        b.version_min = 1;
        b.group = [9; 16];
        assert_eq!(negotiate(&a, &b), Err(HandshakeError::OtherGroup));
        assert_eq!(negotiate(&a, &a), Err(HandshakeError::SameNode));
        let mut w = SeqWindow::default();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(5));
        assert!(!w.accept(4));
    }

    #[test]
    fn rejects_bad_block_index_at_encode() {
        let blocks = [Block {
            role: Role::NewP,
            index: 3,
            bytes: &[1],
        }];
        let mut buf = [0u8; 128];
        assert_eq!(
            encode::<TestCrc>(
                &Message::Record(record_header(), &blocks),
                1,
                1,
                None,
                &mut buf
            ),
            Err(WireError::BadBlockIndex(3))
        );
    }
}
