// SPDX-License-Identifier: GPL-2.0
//! The `amf` table line: syntax and every check that needs no kernel.
//!
//! The kernel target parses its constructor arguments here (so the same code is fuzzed and
//! unit-tested in userspace) and then does what only the kernel can: open the devices,
//! compare them and check their sizes. `Documentation/table-syntax.rst` is the user contract
//! this module implements; every [`TableError`] message appears there verbatim.
//!
//! ```text
//! <level> <#params> <chunk_sectors> [<param>...] <#devs> <dev> <offset> [<dev> <offset>]...
//! ```
//!
//! A `<dev>` of `-` is a missing member; `rebuild <idx>` names a member to be rebuilt from
//! the others. The parser refuses a group that cannot serve its data (more missing and
//! rebuilding members than the level tolerates). `group <uuid>` names the group whose
//! superblocks the members hold ([`TableSpec::group`]); reading and checking them is the
//! kernel's part (`super::superblock::validate_member_set`).

use core::ffi::CStr;
use core::fmt;

use super::geometry::{
    nonzero, BoundedList, Geometry, GeometryError, Level, MemberSet, MAX_MEMBERS,
};
use super::superblock::{parse_uuid, Superblock, Uuid};

/// Smallest chunk: one 4 KiB page.
pub const MIN_CHUNK_SECTORS: u32 = 8;
/// Largest chunk: 1 GiB.
pub const MAX_CHUNK_SECTORS: u32 = 1 << 21;

/// Copies of each chunk in raid10 when `raid10_copies` is not given (md's `n2`).
pub const DEFAULT_RAID10_COPIES: u8 = 2;

/// Longest cluster name: the DLM compares at most this many bytes with corosync's
/// `totem.cluster_name` (`DLM_LOCKSPACE_LEN` is 64, with the terminating NUL).
pub const MAX_CLUSTER_NAME: usize = 63;
/// Largest node id (corosync node ids are positive 32-bit numbers).
pub const MAX_NODE_ID: u32 = i32::MAX as u32;
/// Most stripes one lock may cover.
pub const MAX_LOCK_STRIPES: u32 = 1 << 20;

/// Most AMFs in `peers` (this one included).
pub const MAX_PEERS: usize = 16;
/// Fewest AMFs in `peers`: this one and one other.
pub const MIN_PEERS: usize = 2;
/// Largest node id in `peers`: the replication protocol keeps sets of nodes in 64-bit masks,
/// and 0 is no node id.
pub const MAX_PEER_NODE_ID: u32 = 63;
/// Longest `auth_key` description.
pub const MAX_AUTH_KEY_LEN: usize = 255;

/// The `<dev>` word of a missing member (dm-raid's spelling).
pub const MISSING_DEVICE: &str = "-";

/// Why a table line was refused. Each maps to one documented message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Fewer words than the syntax needs.
    NotEnoughArgs,
    /// `<level>` is not a level name.
    UnknownLevel,
    /// `<#params>` not a number, zero, or more than the words that follow.
    BadParamCount,
    /// `<chunk_sectors>` not a decimal number.
    BadChunk,
    /// `<chunk_sectors>` not a power of two.
    ChunkNotPowerOfTwo,
    /// `<chunk_sectors>` outside [`MIN_CHUNK_SECTORS`]..=[`MAX_CHUNK_SECTORS`].
    ChunkOutOfRange,
    /// An optional parameter this version does not know.
    UnknownParam,
    /// The same optional parameter given twice.
    DuplicateParam,
    /// `raid10_copies` with a level other than raid10.
    CopiesNotRaid10,
    /// `raid10_copies` missing its value, not a number, below 2 or above the member count.
    BadCopies,
    /// Fewer members than the level needs (raid1 and raid5: 2, raid6: 4, raid10: its copies).
    TooFewDevices,
    /// `<#devs>` not a number, zero, or above [`MAX_MEMBERS`].
    BadDeviceCount,
    /// Fewer `<dev> <offset>` words than `<#devs>` says.
    WrongDeviceArgs,
    /// Words left over after the last device pair.
    TooManyArgs,
    /// `<offset>` not a decimal sector number.
    BadOffset,
    /// The same device named twice.
    DuplicateDevice,
    /// The target length is not a whole number of full stripes.
    LengthNotStripeMultiple,
    /// A member's data area would end beyond the largest sector number.
    DeviceTooSmall,
    /// `rebuild` missing its value, not a number, or not below `<#devs>`.
    BadRebuild,
    /// The same `rebuild` index given twice.
    DuplicateRebuild,
    /// `rebuild` with raid0, which has nothing to rebuild from.
    RebuildNotRedundant,
    /// More members missing or to be rebuilt than the level tolerates.
    TooManyFailed,
    /// `group` missing its value, the value not a UUID, or the all-zero UUID.
    BadGroup,
    /// With `group`: the table's level, chunk size or member count is not the group's, or
    /// its members' data areas are longer than the group's ([`TableSpec::check_group`]).
    GroupMismatch,
    /// With `group`: a member's `<offset>` is not the data offset of its superblock
    /// ([`TableSpec::check_data_offset`]).
    WrongDataOffset,
    /// `cluster` missing its value, or the value not a cluster name.
    BadCluster,
    /// `node` missing its value, not a number, or outside 1..=[`MAX_NODE_ID`].
    BadNode,
    /// Only one of `cluster` and `node` given.
    ClusterIncomplete,
    /// `cluster` without `group` (the lockspace is named after the group).
    ClusterNeedsGroup,
    /// `cluster` with a level other than raid1, raid5 and raid6.
    ClusterLevel,
    /// `lock_stripes` missing its value, not a number, or outside
    /// 1..=[`MAX_LOCK_STRIPES`].
    BadLockStripes,
    /// `lock_stripes` without `cluster`.
    LockStripesNotCluster,
    /// `peers` without `cluster` and `node`.
    PeersNotCluster,
    /// `peers` missing its count, the count not a number or outside
    /// [`MIN_PEERS`]..=[`MAX_PEERS`], or the parameters end before that many entries.
    BadPeerCount,
    /// A `peers` entry that is not `<node>@<a.b.c.d>:<port>` with a node id from 1 to
    /// [`MAX_PEER_NODE_ID`] and a port from 1 to 65535 ([`parse_peer`]).
    BadPeer,
    /// Two `peers` entries with the same node id or the same address and port.
    DuplicatePeer,
    /// `peers` without an entry for the table's own `node`.
    PeersMissSelf,
    /// `peers` without `auth_key`.
    PeersNeedAuthKey,
    /// `auth_key` without `peers`.
    AuthKeyNeedsPeers,
    /// `auth_key` missing its value, or the value not a logon key description
    /// ([`valid_auth_key`]).
    BadAuthKey,
    /// `transport` missing its value, or the value not `tcp` or `rdma`.
    BadTransport,
    /// `transport` without `peers`.
    TransportNeedsPeers,
    /// `ppl` with a level other than raid5 and raid6.
    PplLevel,
    /// `ppl` without `group` (the log lives in the members' reserved area).
    PplNeedsGroup,
    /// `start_dirty_degraded` with a level other than raid5 and raid6.
    DirtyDegradedLevel,
    /// `start_dirty_degraded` without `group` (only a group's bitmap says it is dirty).
    DirtyDegradedNeedsGroup,
}

impl TableError {
    /// The message for `ti->error`, as documented.
    pub fn message(self) -> &'static CStr {
        match self {
            Self::NotEnoughArgs => c"Not enough arguments",
            Self::UnknownLevel => c"Unknown RAID level",
            Self::BadParamCount => c"Invalid number of parameters",
            Self::BadChunk => c"Invalid chunk size",
            Self::ChunkNotPowerOfTwo => c"Chunk size must be a power of two",
            Self::ChunkOutOfRange => c"Chunk size out of range",
            Self::UnknownParam => c"Unknown optional parameter",
            Self::DuplicateParam => c"Duplicate optional parameter",
            Self::CopiesNotRaid10 => c"raid10_copies is only valid for raid10",
            Self::BadCopies => c"Invalid raid10_copies",
            Self::TooFewDevices => c"Too few devices for the RAID level",
            Self::BadDeviceCount => c"Invalid number of devices",
            Self::WrongDeviceArgs => c"Wrong number of device arguments",
            Self::TooManyArgs => c"Too many arguments",
            Self::BadOffset => c"Invalid device offset",
            Self::DuplicateDevice => c"Duplicate device",
            Self::LengthNotStripeMultiple => c"Target length is not a multiple of the full stripe",
            Self::DeviceTooSmall => c"Device too small",
            Self::BadRebuild => c"Invalid rebuild index",
            Self::DuplicateRebuild => c"Duplicate rebuild index",
            Self::RebuildNotRedundant => {
                c"rebuild is only valid for raid1, raid5, raid6 and raid10"
            }
            Self::TooManyFailed => c"Too many failed members for the RAID level",
            Self::BadGroup => c"Invalid group UUID",
            Self::GroupMismatch => c"Table does not match the group's superblock",
            Self::WrongDataOffset => c"Member offset is not its superblock's data offset",
            Self::BadCluster => c"Invalid cluster name",
            Self::BadNode => c"Invalid node id",
            Self::ClusterIncomplete => c"cluster and node must be given together",
            Self::ClusterNeedsGroup => c"cluster needs group <uuid>",
            Self::ClusterLevel => c"cluster is only implemented for raid1, raid5 and raid6",
            Self::BadLockStripes => c"Invalid lock_stripes",
            Self::LockStripesNotCluster => c"lock_stripes is only valid with cluster",
            Self::PeersNotCluster => c"peers needs cluster and node",
            Self::BadPeerCount => c"peers needs a count of 2 to 16 and that many entries",
            Self::BadPeer => c"peer must be <node>@<a.b.c.d>:<port> with node 1..63",
            Self::DuplicatePeer => c"peers lists a node id or address twice",
            Self::PeersMissSelf => c"peers must list this table's node id",
            Self::PeersNeedAuthKey => c"peers needs auth_key",
            Self::AuthKeyNeedsPeers => c"auth_key needs peers",
            Self::BadAuthKey => c"auth_key must be <prefix>:<name>, 1 to 255 characters",
            Self::BadTransport => c"transport must be tcp or rdma",
            Self::TransportNeedsPeers => c"transport needs peers",
            Self::PplLevel => c"ppl is only valid for raid5 and raid6",
            Self::PplNeedsGroup => c"ppl needs group <uuid>",
            Self::DirtyDegradedLevel => c"start_dirty_degraded is only valid for raid5 and raid6",
            Self::DirtyDegradedNeedsGroup => c"start_dirty_degraded needs group <uuid>",
        }
    }
}

/// The cluster parameters of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterSpec<'a> {
    /// corosync's `totem.cluster_name`, which the DLM checks.
    pub name: &'a str,
    /// This server's corosync node id.
    pub node: u32,
    /// Stripes per lock resource (default 1).
    pub lock_stripes: u32,
    /// The replication channel (`peers ... auth_key <desc>`): `None` without `peers`.
    pub replication: Option<ReplicationSpec<'a>>,
}

/// One AMF of the group, as `peers` lists it: `<node>@<a.b.c.d>:<port>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PeerSpec {
    /// Its corosync node id, 1 to [`MAX_PEER_NODE_ID`].
    pub node: u32,
    /// The IPv4 address its replication channel listens on, in network order
    /// (`[10, 0, 0, 1]` is `10.0.0.1`).
    pub ip: [u8; 4],
    /// The TCP port, 1 to 65535.
    pub port: u16,
}

impl PeerSpec {
    /// Whether `other` listens on the same address and port.
    pub fn same_address(&self, other: &PeerSpec) -> bool {
        self.ip == other.ip && self.port == other.port
    }
}

/// The canonical table form, `<node>@<a.b.c.d>:<port>`, numbers without leading zeros.
impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{}@{a}.{b}.{c}.{d}:{}", self.node, self.port)
    }
}

/// The transport the replication channel runs on (`transport tcp|rdma`, default TCP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP over the kernel's sockets.
    #[default]
    Tcp,
    /// RDMA reliable connections through the RDMA connection manager (RoCE, InfiniBand).
    Rdma,
}

impl TransportKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "tcp" => Some(Self::Tcp),
            "rdma" => Some(Self::Rdma),
            _ => None,
        }
    }
}

/// The replication parameters of a clustered table:
/// `peers <n> <peer>... auth_key <desc> [transport tcp|rdma]`.
#[derive(Clone, Copy, Debug)]
pub struct ReplicationSpec<'a> {
    /// Every AMF of the group, this one included, sorted by node id (node ids and
    /// addresses unique, [`MIN_PEERS`] to [`MAX_PEERS`] of them).
    pub peers: BoundedList<PeerSpec, MAX_PEERS>,
    /// The description of the kernel `logon` key that holds the group's shared secret
    /// ([`valid_auth_key`]).
    pub auth_key: &'a str,
    /// The transport (`transport`; TCP when not given).
    pub transport: TransportKind,
}

impl ReplicationSpec<'_> {
    /// Every AMF of the group, this one included, sorted by node id.
    pub fn peers(&self) -> &[PeerSpec] {
        self.peers.as_slice()
    }

    /// The entry of node `node` (the table's own `node`: the address this AMF listens on).
    pub fn own(&self, node: u32) -> Option<&PeerSpec> {
        self.peers().iter().find(|p| p.node == node)
    }

    /// The words the replication parameters take in `<#params>`:
    /// `peers <n>`, the `n` entries, `auth_key <desc>`, `transport rdma` (TCP, the default,
    /// is not echoed).
    pub fn param_words(&self) -> usize {
        4 + self.peers().len()
            + if self.transport == TransportKind::Rdma {
                2
            } else {
                0
            }
    }
}

impl PartialEq for ReplicationSpec<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.peers() == other.peers()
            && self.auth_key == other.auth_key
            && self.transport == other.transport
    }
}

impl Eq for ReplicationSpec<'_> {}

/// Writes the replication parameters as `dmsetup table` prints them, each word preceded by
/// a space: ` peers <n> <node>@<a.b.c.d>:<port>... auth_key <desc> [transport rdma]`, the
/// peers sorted by node id, numbers without leading zeros, the transport only when not TCP.
/// They follow `cluster <name> node <id> [lock_stripes <n>]`;
/// [`ReplicationSpec::param_words`] counts them for `<#params>`.
pub fn write_replication(
    spec: &ReplicationSpec<'_>,
    out: &mut (impl fmt::Write + ?Sized),
) -> fmt::Result {
    write!(out, " peers {}", spec.peers().len())?;
    for p in spec.peers() {
        write!(out, " {p}")?;
    }
    write!(out, " auth_key {}", spec.auth_key)?;
    if spec.transport == TransportKind::Rdma {
        write!(out, " transport rdma")?;
    }
    Ok(())
}

/// One octet of a dotted quad: 1 to 3 digits, no leading zero (`010` would be octal to
/// `inet_aton`), at most 255.
fn parse_octet(s: &str) -> Option<u8> {
    if s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    u8::try_from(parse_decimal(s)?).ok()
}

/// Parses a `peers` entry, `<node>@<a.b.c.d>:<port>`: a decimal node id from 1 to
/// [`MAX_PEER_NODE_ID`], an IPv4 address as four decimal octets (0 to 255, no leading
/// zeros, no sign, none empty) and a decimal port from 1 to 65535.
pub fn parse_peer(word: &str) -> Option<PeerSpec> {
    let (node, addr) = word.split_once('@')?;
    let (ip, port) = addr.rsplit_once(':')?;
    let node = parse_decimal(node).filter(|n| (1..=u64::from(MAX_PEER_NODE_ID)).contains(n))?;
    let port = parse_decimal(port).filter(|p| (1..=u64::from(u16::MAX)).contains(p))?;
    let mut octets = [0u8; 4];
    let mut parts = ip.split('.');
    for o in &mut octets {
        *o = parse_octet(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(PeerSpec {
        node: node as u32,
        ip: octets,
        port: port as u16,
    })
}

/// Whether `desc` can name the kernel `logon` key of `auth_key`: 1 to
/// [`MAX_AUTH_KEY_LEN`] printable ASCII characters without spaces, with a `:` after a
/// non-empty prefix (the kernel refuses `logon` keys without one: `dm-amf:grp1`).
pub fn valid_auth_key(desc: &str) -> bool {
    (1..=MAX_AUTH_KEY_LEN).contains(&desc.len())
        && desc.bytes().all(|c| c.is_ascii_graphic())
        && desc.find(':').is_some_and(|i| i > 0)
}

fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// One member as the table names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemberArg<'a> {
    /// Path or `major:minor`; [`MISSING_DEVICE`] (`-`) for a missing member.
    pub path: &'a str,
    /// First sector of the member's data area (parsed and kept for missing members too).
    pub offset: u64,
    /// Sectors of the member the target uses from `offset` on.
    pub len: u64,
    /// The member is missing (`path` is `-`): there is no device to look up.
    pub missing: bool,
}

/// A parsed, self-consistent table line.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec<'a> {
    /// RAID level.
    pub level: Level,
    /// Chunk size in sectors (a power of two).
    pub chunk_sectors: u32,
    /// Members given by `rebuild <idx>`: they hold no valid data yet and are to be rebuilt
    /// from the others. Every index is below the member count; a member may also be missing.
    pub rebuild: MemberSet,
    /// The group UUID given by `group <uuid>` (never all zero): the constructor assembles
    /// the group from the members' superblocks, and each member's `offset` must be the data
    /// offset its superblock records. `None`: no metadata is read.
    pub group: Option<Uuid>,
    /// Cluster mode (`cluster <name> node <id> [lock_stripes <n>]
    /// [peers <n> <peer>... auth_key <desc>]`): `None` for a single-node target, which takes
    /// no locks.
    pub cluster: Option<ClusterSpec<'a>>,
    /// `ppl`: every raid5/6 write goes through the partial parity log, not only those to
    /// rows that lack a member (closes the write hole of a member lost after a crash).
    pub ppl: bool,
    /// `start_dirty_degraded` (md's module parameter of that name): start a raid5/6 group
    /// whose bitmap says it was dirty although a member it recorded in sync is missing
    /// (the write hole may have made that member's chunks of dirty rows unrecoverable).
    pub start_dirty_degraded: bool,
    /// The `<dev> <offset>` pairs, checked by [`parse`]; the members are read from them on
    /// demand, so that the spec stays small (the kernel's constructor keeps it on a 16 KiB
    /// stack).
    member_words: &'a [&'a str],
    member_len: u64,
    nr_members: usize,
}

/// The members of a [`TableSpec`], in member order.
#[derive(Clone, Debug)]
pub struct Members<'a> {
    /// The `<dev> <offset>` pairs not yet visited.
    words: &'a [&'a str],
    len: u64,
}

impl<'a> Iterator for Members<'a> {
    type Item = MemberArg<'a>;

    fn next(&mut self) -> Option<MemberArg<'a>> {
        let pair = self.words.get(..2)?;
        self.words = self.words.get(2..).unwrap_or(&[]);
        let path = pair.first().copied().unwrap_or(MISSING_DEVICE);
        Some(MemberArg {
            path,
            // Checked by `parse`.
            offset: pair.get(1).and_then(|o| parse_decimal(o)).unwrap_or(0),
            len: self.len,
            missing: path == MISSING_DEVICE,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.words.len() >> 1;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Members<'_> {}

impl<'a> TableSpec<'a> {
    /// The members, in member order.
    pub fn members(&self) -> Members<'a> {
        Members {
            words: self.member_words,
            len: self.member_len,
        }
    }

    /// Member `i`, if the table has it.
    pub fn member(&self, i: usize) -> Option<MemberArg<'a>> {
        self.members().nth(i)
    }

    /// The number of members.
    pub fn nr_members(&self) -> usize {
        self.nr_members
    }

    /// The missing members (`-` in the table).
    pub fn missing(&self) -> MemberSet {
        self.members()
            .enumerate()
            .filter(|(_, m)| m.missing)
            .fold(MemberSet::EMPTY, |set, (i, _)| set.with(i))
    }

    /// The members that hold no valid data: missing or to be rebuilt, each counted once.
    /// Never more than the level tolerates ([`Geometry::tolerated_failures`]).
    pub fn unavailable(&self) -> MemberSet {
        MemberSet(self.missing().0 | self.rebuild.0)
    }

    /// Level name as written in tables.
    pub fn level_name(&self) -> &'static str {
        level_name(self.level)
    }

    /// With `group <uuid>`: checks the table against the group's newest superblock (the
    /// authority `validate_member_set` picks): the same level (with raid10's copies), chunk
    /// size and member count, and a member length (the sectors each member serves from its
    /// offset) within the group's data area. The group UUID is `validate_member_set`'s.
    pub fn check_group(&self, authority: &Superblock) -> Result<(), TableError> {
        let fits = self.member_len <= authority.data_sectors;
        if self.level != authority.level
            || self.chunk_sectors != authority.chunk_sectors
            || self.nr_members != authority.member_count()
            || !fits
        {
            return Err(TableError::GroupMismatch);
        }
        Ok(())
    }

    /// With `group <uuid>`: the `<offset>` of the member at `position` must be the data
    /// offset recorded in that member's own superblock `sb`.
    pub fn check_data_offset(&self, position: usize, sb: &Superblock) -> Result<(), TableError> {
        match self.member(position) {
            Some(m) if m.offset == sb.data_offset => Ok(()),
            _ => Err(TableError::WrongDataOffset),
        }
    }
}

/// Level name as written in tables.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Raid0 => "raid0",
        Level::Raid1 => "raid1",
        Level::Raid5 => "raid5",
        Level::Raid6 => "raid6",
        Level::Raid10 { .. } => "raid10",
    }
}

/// Parses a strictly decimal unsigned number: digits only, no sign, no overflow.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

fn parse_level(word: &str) -> Result<Level, TableError> {
    match word {
        "raid0" => Ok(Level::Raid0),
        "raid1" => Ok(Level::Raid1),
        "raid10" => Ok(Level::Raid10 {
            copies: DEFAULT_RAID10_COPIES,
        }),
        "raid5" => Ok(Level::Raid5),
        "raid6" => Ok(Level::Raid6),
        _ => Err(TableError::UnknownLevel),
    }
}

fn parse_chunk(word: &str) -> Result<u32, TableError> {
    let v = parse_decimal(word).ok_or(TableError::BadChunk)?;
    if !v.is_power_of_two() {
        return Err(TableError::ChunkNotPowerOfTwo);
    }
    if v < u64::from(MIN_CHUNK_SECTORS) || v > u64::from(MAX_CHUNK_SECTORS) {
        return Err(TableError::ChunkOutOfRange);
    }
    u32::try_from(v).map_err(|_| TableError::ChunkOutOfRange)
}

/// The optional parameters that are not folded into the level.
struct Optional<'a> {
    /// `rebuild` indexes, checked against `<#devs>` by the caller (which parses it later).
    rebuild: MemberSet,
    /// `group <uuid>`.
    group: Option<Uuid>,
    /// `cluster <name>`, `node <id>`, `lock_stripes <n>`.
    cluster: Option<&'a str>,
    node: Option<u32>,
    lock_stripes: Option<u32>,
    /// `peers <n> <peer>...`, sorted by node id; `auth_key <desc>`.
    peers: Option<BoundedList<PeerSpec, MAX_PEERS>>,
    auth_key: Option<&'a str>,
    /// `transport tcp|rdma`.
    transport: Option<TransportKind>,
    /// `ppl`.
    ppl: bool,
    /// `start_dirty_degraded`.
    start_dirty_degraded: bool,
}

/// The `<n>` entries after `peers <n>`, checked and sorted by node id.
#[inline(never)]
fn parse_peers(
    it: &mut core::slice::Iter<'_, &str>,
) -> Result<BoundedList<PeerSpec, MAX_PEERS>, TableError> {
    let count = it.next().ok_or(TableError::BadPeerCount)?;
    let n = parse_decimal(count)
        .filter(|n| (MIN_PEERS as u64..=MAX_PEERS as u64).contains(n))
        .ok_or(TableError::BadPeerCount)? as usize;
    let mut peers = [PeerSpec::default(); MAX_PEERS];
    for i in 0..n {
        let word = it.next().ok_or(TableError::BadPeerCount)?;
        let peer = parse_peer(word).ok_or(TableError::BadPeer)?;
        let earlier = peers.get(..i).unwrap_or(&[]);
        if earlier
            .iter()
            .any(|p| p.node == peer.node || p.same_address(&peer))
        {
            return Err(TableError::DuplicatePeer);
        }
        // Insertion sort: the earlier entries are sorted, and at most 16.
        let at = earlier.iter().take_while(|p| p.node < peer.node).count();
        if let Some(tail) = peers.get_mut(at..=i) {
            tail.rotate_right(1);
            if let Some(slot) = tail.first_mut() {
                *slot = peer;
            }
        }
    }
    let mut list = BoundedList::new();
    for p in peers.iter().take(n) {
        list.push(*p);
    }
    Ok(list)
}

/// Applies the optional parameters (the words after `<chunk_sectors>`) to `level` and
/// returns the others.
#[inline(never)]
fn parse_optional<'a>(words: &[&'a str], level: &mut Level) -> Result<Optional<'a>, TableError> {
    let mut copies_seen = false;
    let mut rebuild = MemberSet::EMPTY;
    let mut group = None;
    let (mut cluster, mut node, mut lock_stripes) = (None, None, None);
    let (mut peers, mut auth_key, mut transport) = (None, None, None);
    let mut ppl = false;
    let mut start_dirty_degraded = false;
    let mut it = words.iter();
    while let Some(&word) = it.next() {
        match word {
            "raid10_copies" => {
                if copies_seen {
                    return Err(TableError::DuplicateParam);
                }
                copies_seen = true;
                let value = it.next().ok_or(TableError::BadCopies)?;
                let Level::Raid10 { copies } = level else {
                    return Err(TableError::CopiesNotRaid10);
                };
                *copies = parse_decimal(value)
                    .filter(|c| (2..=MAX_MEMBERS as u64).contains(c))
                    .ok_or(TableError::BadCopies)? as u8;
            }
            // Repeatable, one index each time (dm-raid's `rebuild <idx>`).
            "rebuild" => {
                let value = it.next().ok_or(TableError::BadRebuild)?;
                if *level == Level::Raid0 {
                    return Err(TableError::RebuildNotRedundant);
                }
                let idx = parse_decimal(value)
                    .filter(|&i| i < MAX_MEMBERS as u64)
                    .ok_or(TableError::BadRebuild)? as usize;
                if rebuild.contains(idx) {
                    return Err(TableError::DuplicateRebuild);
                }
                rebuild = rebuild.with(idx);
            }
            "group" => {
                if group.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                let value = it.next().ok_or(TableError::BadGroup)?;
                let uuid = parse_uuid(value)
                    .filter(|u| *u != [0; 16])
                    .ok_or(TableError::BadGroup)?;
                group = Some(uuid);
            }
            "cluster" => {
                if cluster.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                let value = *it.next().ok_or(TableError::BadCluster)?;
                if !valid_cluster_name(value) {
                    return Err(TableError::BadCluster);
                }
                cluster = Some(value);
            }
            "node" => {
                if node.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                let value = it.next().ok_or(TableError::BadNode)?;
                let id = parse_decimal(value)
                    .filter(|v| (1..=u64::from(MAX_NODE_ID)).contains(v))
                    .ok_or(TableError::BadNode)?;
                node = Some(id as u32);
            }
            "lock_stripes" => {
                if lock_stripes.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                let value = it.next().ok_or(TableError::BadLockStripes)?;
                let n = parse_decimal(value)
                    .filter(|v| (1..=u64::from(MAX_LOCK_STRIPES)).contains(v))
                    .ok_or(TableError::BadLockStripes)?;
                lock_stripes = Some(n as u32);
            }
            "peers" => {
                if peers.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                peers = Some(parse_peers(&mut it)?);
            }
            "auth_key" => {
                if auth_key.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                let value = *it.next().ok_or(TableError::BadAuthKey)?;
                if !valid_auth_key(value) {
                    return Err(TableError::BadAuthKey);
                }
                auth_key = Some(value);
            }
            "transport" => {
                if transport.is_some() {
                    return Err(TableError::DuplicateParam);
                }
                let value = it.next().ok_or(TableError::BadTransport)?;
                transport = Some(TransportKind::parse(value).ok_or(TableError::BadTransport)?);
            }
            // A flag, like dm-raid's `sync`: md's `consistency_policy=ppl`.
            "ppl" => {
                if ppl {
                    return Err(TableError::DuplicateParam);
                }
                if !matches!(level, Level::Raid5 | Level::Raid6) {
                    return Err(TableError::PplLevel);
                }
                ppl = true;
            }
            // A flag: md's `start_dirty_degraded`, for this table only.
            "start_dirty_degraded" => {
                if start_dirty_degraded {
                    return Err(TableError::DuplicateParam);
                }
                if !matches!(level, Level::Raid5 | Level::Raid6) {
                    return Err(TableError::DirtyDegradedLevel);
                }
                start_dirty_degraded = true;
            }
            _ => return Err(TableError::UnknownParam),
        }
    }
    if ppl && group.is_none() {
        return Err(TableError::PplNeedsGroup);
    }
    if start_dirty_degraded && group.is_none() {
        return Err(TableError::DirtyDegradedNeedsGroup);
    }
    Ok(Optional {
        rebuild,
        group,
        cluster,
        node,
        lock_stripes,
        peers,
        auth_key,
        transport,
        ppl,
        start_dirty_degraded,
    })
}

/// Sectors each member must provide for a target of `target_len` sectors, and the geometry
/// they make; checks the member count against the level and the length against the level's
/// stripe.
#[inline(never)]
fn member_len(
    level: Level,
    nr_devs: usize,
    chunk: u32,
    target_len: u64,
) -> Result<(u64, Geometry), TableError> {
    let chunk = u64::from(chunk);
    let n = nonzero(nr_devs as u64);
    let (stripe, member_len) = match level {
        Level::Raid0 => (chunk * n.get(), target_len / n),
        Level::Raid1 => (chunk, target_len),
        Level::Raid10 { copies } => {
            // Device chunks needed, spread over the members row by row (md's near layout).
            let rows = (target_len / nonzero(chunk))
                .checked_mul(u64::from(copies))
                .map(|c| c.div_ceil(n.get()))
                .ok_or(TableError::DeviceTooSmall)?;
            (
                chunk,
                rows.checked_mul(chunk).ok_or(TableError::DeviceTooSmall)?,
            )
        }
        Level::Raid5 | Level::Raid6 => {
            // Data chunks per stripe (too few members is caught below): the full stripe is
            // that many chunks, and each member holds one chunk of every stripe.
            let parity = if level == Level::Raid6 { 2 } else { 1 };
            let data = nonzero(n.get().saturating_sub(parity));
            (chunk * data.get(), target_len / data)
        }
    };
    let min = match level {
        Level::Raid1 | Level::Raid5 => 2,
        Level::Raid6 => 4,
        Level::Raid10 { copies } => usize::from(copies),
        _ => 1,
    };
    if nr_devs < min {
        return Err(if matches!(level, Level::Raid10 { .. }) && nr_devs >= 2 {
            TableError::BadCopies
        } else {
            TableError::TooFewDevices
        });
    }
    if target_len == 0 || target_len % nonzero(stripe) != 0 {
        return Err(TableError::LengthNotStripeMultiple);
    }
    // The layout must really hold the target: the core's geometry is the judge.
    match Geometry::new(level, nr_devs, chunk, member_len) {
        Ok(g) if g.logical_sectors() >= target_len => Ok((member_len, g)),
        Ok(_) | Err(GeometryError::Overflow) => Err(TableError::DeviceTooSmall),
        Err(GeometryError::BadCopies) => Err(TableError::BadCopies),
        Err(_) => Err(TableError::TooFewDevices),
    }
}

/// The cluster mode the optional parameters ask for, checked against each other and the
/// level.
#[inline(never)]
fn cluster_spec<'a>(
    opt: &Optional<'a>,
    level: Level,
) -> Result<Option<ClusterSpec<'a>>, TableError> {
    match (opt.cluster, opt.node) {
        (None, None) if opt.lock_stripes.is_some() => Err(TableError::LockStripesNotCluster),
        (None, None) if opt.peers.is_some() => Err(TableError::PeersNotCluster),
        (None, None) if opt.auth_key.is_some() => Err(TableError::AuthKeyNeedsPeers),
        (None, None) if opt.transport.is_some() => Err(TableError::TransportNeedsPeers),
        (None, None) => Ok(None),
        (Some(name), Some(node)) => {
            if opt.group.is_none() {
                return Err(TableError::ClusterNeedsGroup);
            }
            if !matches!(level, Level::Raid1 | Level::Raid5 | Level::Raid6) {
                return Err(TableError::ClusterLevel);
            }
            Ok(Some(ClusterSpec {
                name,
                node,
                lock_stripes: opt.lock_stripes.unwrap_or(1),
                replication: replication_spec(opt, node)?,
            }))
        }
        _ => Err(TableError::ClusterIncomplete),
    }
}

/// The replication parameters of a clustered table whose own node id is `node`.
fn replication_spec<'a>(
    opt: &Optional<'a>,
    node: u32,
) -> Result<Option<ReplicationSpec<'a>>, TableError> {
    match (opt.peers, opt.auth_key) {
        // The same order as without cluster mode ([`cluster_spec`]): auth_key first.
        (None, None) if opt.transport.is_some() => Err(TableError::TransportNeedsPeers),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(TableError::AuthKeyNeedsPeers),
        (Some(peers), auth_key) => {
            if !peers.as_slice().iter().any(|p| p.node == node) {
                return Err(TableError::PeersMissSelf);
            }
            let auth_key = auth_key.ok_or(TableError::PeersNeedAuthKey)?;
            Ok(Some(ReplicationSpec {
                peers,
                auth_key,
                transport: opt.transport.unwrap_or_default(),
            }))
        }
    }
}

/// Parses the constructor arguments of a target `target_len` sectors long.
#[inline(never)]
pub fn parse<'a>(args: &'a [&'a str], target_len: u64) -> Result<TableSpec<'a>, TableError> {
    let word = |i: usize| args.get(i).copied().ok_or(TableError::NotEnoughArgs);

    let level = parse_level(word(0)?)?;

    let nr_params = parse_decimal(word(1)?).ok_or(TableError::BadParamCount)?;
    let after_count = args.len() - 2;
    if nr_params == 0 || nr_params > after_count as u64 {
        return Err(TableError::BadParamCount);
    }
    let nr_params = nr_params as usize;

    let chunk_sectors = parse_chunk(word(2)?)?;
    let mut level = level;
    let opt = parse_optional(args.get(3..2 + nr_params).unwrap_or(&[]), &mut level)?;
    spec_from(args, &opt, (level, chunk_sectors, nr_params), target_len)
}

/// The rest of [`parse`], once the optional parameters are known: the cluster mode, the
/// members and the checks between them. Its own frame, so that neither holds all of a
/// spec's copies (the kernel parses on a 16 KiB stack).
#[inline(never)]
fn spec_from<'a>(
    args: &'a [&'a str],
    opt: &Optional<'a>,
    (level, chunk_sectors, nr_params): (Level, u32, usize),
    target_len: u64,
) -> Result<TableSpec<'a>, TableError> {
    let word = |i: usize| args.get(i).copied().ok_or(TableError::NotEnoughArgs);
    let (rebuild, group, ppl) = (opt.rebuild, opt.group, opt.ppl);
    let cluster = cluster_spec(opt, level)?;

    let devs_at = 2 + nr_params;
    let nr_devs = parse_decimal(word(devs_at)?).ok_or(TableError::BadDeviceCount)?;
    if nr_devs == 0 || nr_devs > MAX_MEMBERS as u64 {
        return Err(TableError::BadDeviceCount);
    }
    let nr_devs = nr_devs as usize;
    let dev_words = &args[devs_at + 1..];
    if dev_words.len() < 2 * nr_devs {
        return Err(TableError::WrongDeviceArgs);
    }
    if dev_words.len() > 2 * nr_devs {
        return Err(TableError::TooManyArgs);
    }
    // Now that `<#devs>` is known: every rebuild index names a member.
    if rebuild.iter().any(|i| i >= nr_devs) {
        return Err(TableError::BadRebuild);
    }

    let (member_len, geometry) = member_len(level, nr_devs, chunk_sectors, target_len)?;
    for (i, pair) in dev_words.chunks_exact(2).enumerate() {
        let (path, offset) = (pair[0], pair[1]);
        let missing = path == MISSING_DEVICE;
        let offset = parse_decimal(offset).ok_or(TableError::BadOffset)?;
        if offset.checked_add(member_len).is_none() {
            return Err(TableError::DeviceTooSmall);
        }
        let earlier = dev_words.get(..2 * i).unwrap_or(&[]);
        if !missing && earlier.chunks_exact(2).any(|p| p[0] == path) {
            return Err(TableError::DuplicateDevice);
        }
    }

    let spec = TableSpec {
        level,
        chunk_sectors,
        rebuild,
        group,
        cluster,
        ppl,
        start_dirty_degraded: opt.start_dirty_degraded,
        member_words: dev_words,
        member_len,
        nr_members: nr_devs,
    };
    // The group must be able to serve every sector from the members that hold valid data.
    // For raid10 `tolerated_failures` is `copies - 1`: the copies of a chunk are on `copies`
    // distinct members, so no chunk can lose all of them.
    if spec.unavailable().len() > geometry.tolerated_failures() {
        return Err(TableError::TooManyFailed);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `s`, kept for the whole test run (a spec borrows its words).
    fn words(s: &str) -> &'static [&'static str] {
        let s: &'static str = std::string::String::from(s).leak();
        s.split_whitespace().collect::<std::vec::Vec<_>>().leak()
    }

    fn err(s: &str, len: u64) -> TableError {
        parse(words(s), len).expect_err("table should be refused")
    }

    #[test]
    fn good_table_parses() {
        let w = words("raid0 1 128 3 /dev/a 0 /dev/b 2048 8:16 7");
        let t = parse(w, 3 * 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid0);
        assert_eq!(t.chunk_sectors, 128);
        assert_eq!(t.members().len(), 3);
        assert_eq!(
            t.member(1).unwrap(),
            MemberArg {
                path: "/dev/b",
                offset: 2048,
                len: 1280,
                missing: false,
            }
        );
        assert_eq!(t.member(2).unwrap().path, "8:16");
        assert_eq!(t.rebuild, MemberSet::EMPTY);
        assert_eq!(t.missing(), MemberSet::EMPTY);
        assert_eq!(t.unavailable(), MemberSet::EMPTY);
    }

    #[test]
    fn every_documented_error() {
        use TableError::*;
        let len = 4 * 128;
        assert_eq!(err("", len), NotEnoughArgs);
        assert_eq!(err("raid0", len), NotEnoughArgs);
        assert_eq!(err("raid9 1 128 1 /dev/a 0", len), UnknownLevel);
        assert_eq!(err("raid0 x 128 1 /dev/a 0", len), BadParamCount);
        assert_eq!(err("raid0 0 128 1 /dev/a 0", len), BadParamCount);
        assert_eq!(err("raid0 9 128 1 /dev/a 0", len), BadParamCount);
        assert_eq!(err("raid0 1 12k 1 /dev/a 0", len), BadChunk);
        assert_eq!(err("raid0 1 -8 1 /dev/a 0", len), BadChunk);
        assert_eq!(err("raid0 1 24 1 /dev/a 0", len), ChunkNotPowerOfTwo);
        assert_eq!(err("raid0 1 0 1 /dev/a 0", len), ChunkNotPowerOfTwo);
        assert_eq!(err("raid0 1 4 1 /dev/a 0", len), ChunkOutOfRange);
        assert_eq!(err("raid0 1 4194304 1 /dev/a 0", len), ChunkOutOfRange);
        assert_eq!(err("raid0 2 128 sync 1 /dev/a 0", len), UnknownParam);
        assert_eq!(err("raid0 1 128", len), NotEnoughArgs);
        assert_eq!(err("raid0 1 128 0", len), BadDeviceCount);
        assert_eq!(err("raid0 1 128 65 /dev/a 0", len), BadDeviceCount);
        assert_eq!(err("raid0 1 128 two /dev/a 0", len), BadDeviceCount);
        assert_eq!(err("raid0 1 128 2 /dev/a 0 /dev/b", len), WrongDeviceArgs);
        assert_eq!(err("raid0 1 128 1 /dev/a 0 junk", len), TooManyArgs);
        assert_eq!(err("raid0 1 128 1 /dev/a 0x10", len), BadOffset);
        assert_eq!(err("raid0 1 128 2 /dev/a 0 /dev/a 8", len), DuplicateDevice);
        assert_eq!(
            err("raid0 1 128 3 /dev/a 0 /dev/b 0 /dev/c 0", len),
            LengthNotStripeMultiple
        );
        assert_eq!(err("raid0 1 128 1 /dev/a 0", 0), LengthNotStripeMultiple);
        assert_eq!(
            err("raid0 1 128 1 /dev/a 18446744073709551615", len),
            DeviceTooSmall
        );
    }

    #[test]
    fn mirrored_levels() {
        use TableError::*;
        let w = words("raid1 1 128 3 /dev/a 0 /dev/b 0 /dev/c 8");
        let t = parse(w, 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid1);
        assert!(t.members().all(|m| m.len == 1280));

        let w = words("raid10 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0");
        let t = parse(w, 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid10 { copies: 2 });
        // 10 chunks x 2 copies over 4 members: 5 rows.
        assert_eq!(t.member(0).unwrap().len, 5 * 128);

        let w = words("raid10 3 128 raid10_copies 3 3 /dev/a 0 /dev/b 0 /dev/c 0");
        let t = parse(w, 128 * 7).unwrap();
        assert_eq!(t.level, Level::Raid10 { copies: 3 });
        assert_eq!(t.member(0).unwrap().len, 7 * 128);

        // 3 members, 2 copies, 3 chunks: 6 device chunks in 2 rows.
        let w = words("raid10 1 8 3 /dev/a 0 /dev/b 0 /dev/c 0");
        assert_eq!(parse(w, 24).unwrap().member(0).unwrap().len, 16);

        let len = 128 * 4;
        assert_eq!(err("raid1 1 128 1 /dev/a 0", len), TooFewDevices);
        assert_eq!(
            err("raid1 1 128 2 /dev/a 0 /dev/b 0", 100),
            LengthNotStripeMultiple
        );
        assert_eq!(err("raid10 1 128 1 /dev/a 0", len), TooFewDevices);
        assert_eq!(
            err("raid10 3 128 raid10_copies 3 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err("raid10 3 128 raid10_copies 1 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err("raid10 3 128 raid10_copies x 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err("raid10 2 128 raid10_copies 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err(
                "raid10 5 128 raid10_copies 2 raid10_copies 2 2 /dev/a 0 /dev/b 0",
                len
            ),
            DuplicateParam
        );
        assert_eq!(
            err("raid1 3 128 raid10_copies 2 2 /dev/a 0 /dev/b 0", len),
            CopiesNotRaid10
        );
    }

    #[test]
    fn parity_levels() {
        use TableError::*;
        // raid5 over 4 members: 3 data chunks per stripe.
        let w = words("raid5 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 2048");
        let t = parse(w, 3 * 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid5);
        assert_eq!(t.level_name(), "raid5");
        assert_eq!(t.members().len(), 4);
        assert!(t.members().all(|m| m.len == 128 * 10));
        assert_eq!(t.member(3).unwrap().offset, 2048);

        // raid6 over 5 members: 3 data chunks per stripe.
        let w = words("raid6 1 64 5 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0 /dev/e 0");
        let t = parse(w, 3 * 64 * 7).unwrap();
        assert_eq!(t.level, Level::Raid6);
        assert_eq!(t.level_name(), "raid6");
        assert!(t.members().all(|m| m.len == 64 * 7));

        // The examples of table-syntax.rst: 256 MiB per member.
        let w = words("raid5 1 128 4 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0");
        assert_eq!(parse(w, 1_572_864).unwrap().member(0).unwrap().len, 524_288);
        let w = words("raid6 1 128 5 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0 /dev/vdf 0");
        assert_eq!(parse(w, 1_572_864).unwrap().member(0).unwrap().len, 524_288);

        // The smallest groups: raid5 over 2 members (1 data chunk), raid6 over 4 (2).
        let w = words("raid5 1 8 2 /dev/a 0 /dev/b 0");
        assert_eq!(parse(w, 80).unwrap().member(0).unwrap().len, 80);
        let w = words("raid6 1 8 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0");
        assert_eq!(parse(w, 80).unwrap().member(0).unwrap().len, 40);

        let len = 128 * 6;
        assert_eq!(err("raid5 1 128 1 /dev/a 0", len), TooFewDevices);
        assert_eq!(
            err("raid6 1 128 3 /dev/a 0 /dev/b 0 /dev/c 0", len),
            TooFewDevices
        );
        assert_eq!(err("raid6 1 128 1 /dev/a 0", len), TooFewDevices);
        // The full stripe of raid5 over 3 members is 2 chunks: 3 chunks do not fit.
        assert_eq!(
            err("raid5 1 128 3 /dev/a 0 /dev/b 0 /dev/c 0", 3 * 128),
            LengthNotStripeMultiple
        );
        // A multiple of chunk * #devs is not enough either (4 chunks over 3 data chunks).
        assert_eq!(
            err("raid5 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0", 4 * 128),
            LengthNotStripeMultiple
        );
        assert_eq!(
            err(
                "raid6 1 128 5 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0 /dev/e 0",
                1024
            ),
            LengthNotStripeMultiple
        );
        assert_eq!(
            err(
                "raid5 3 128 raid10_copies 2 3 /dev/a 0 /dev/b 0 /dev/c 0",
                len
            ),
            CopiesNotRaid10
        );
        assert_eq!(
            err(
                "raid6 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 18446744073709551615",
                256
            ),
            DeviceTooSmall
        );
    }

    #[test]
    fn parity_member_len_matches_geometry() {
        // Whatever the member count, the geometry built from the member length holds exactly
        // the target, and too few members map to TooFewDevices, never to another error.
        for n in 1..=8usize {
            for (level, parity, min) in [(Level::Raid5, 1, 2), (Level::Raid6, 2, 4)] {
                let data = n.saturating_sub(parity).max(1) as u64;
                let len = 8 * data * 5;
                match member_len(level, n, 8, len) {
                    Ok((m, g)) => {
                        assert!(n >= min);
                        assert_eq!(m, 8 * 5);
                        assert_eq!(g, Geometry::new(level, n, 8, m).unwrap());
                        assert_eq!(g.logical_sectors(), len);
                        assert_eq!(g.data_chunks() as u64, data);
                    }
                    Err(e) => {
                        assert!(n < min, "{level:?} {n}: {e:?}");
                        assert_eq!(e, TableError::TooFewDevices);
                    }
                }
            }
        }
    }

    #[test]
    fn cluster_parameters() {
        const G: &str = "group 0123456789abcdef0123456789abcdef";
        let len = 3 * 128;
        let ok = |line: &str| {
            parse(words(line), len)
                .map(|s| s.cluster.map(|c| (c.name.len(), c.node, c.lock_stripes)))
        };
        let want = |node, lock_stripes| Ok(Some(("amf-test".len(), node, lock_stripes)));
        let devs = "4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0";
        assert_eq!(ok(&std::format!("raid5 1 128 {devs}")), Ok(None));
        assert_eq!(
            ok(&std::format!(
                "raid5 7 128 {G} cluster amf-test node 2 {devs}"
            )),
            want(2, 1)
        );
        assert_eq!(
            ok(&std::format!(
                "raid5 9 128 node 3 lock_stripes 16 cluster amf-test {G} {devs}"
            )),
            want(3, 16)
        );
        let e = |line: std::string::String| parse(words(&line), len).unwrap_err();
        use TableError::*;
        for (params, err) in [
            ("5 128 cluster amf-test node 2", ClusterNeedsGroup),
            ("5 128 {G} cluster amf-test", ClusterIncomplete),
            ("5 128 {G} node 1", ClusterIncomplete),
            ("7 128 {G} node 0 cluster amf-test", BadNode),
            ("7 128 {G} node 2147483648 cluster amf-test", BadNode),
            ("7 128 {G} node x cluster amf-test", BadNode),
            ("7 128 {G} node 1 cluster bad/name", BadCluster),
            ("6 128 {G} node 1 cluster", BadCluster),
            ("9 128 {G} node 1 cluster a lock_stripes 0", BadLockStripes),
            (
                "9 128 {G} node 1 cluster a lock_stripes 1048577",
                BadLockStripes,
            ),
            ("5 128 {G} lock_stripes 4", LockStripesNotCluster),
            ("9 128 {G} node 1 cluster a cluster b", DuplicateParam),
            ("9 128 {G} node 1 node 2 cluster b", DuplicateParam),
        ] {
            let params = params.replace("{G}", G);
            assert_eq!(e(std::format!("raid5 {params} {devs}")), err, "{params}");
        }
        let long = "c".repeat(MAX_CLUSTER_NAME + 1);
        assert_eq!(
            e(std::format!("raid5 7 128 {G} node 1 cluster {long} {devs}")),
            BadCluster
        );
        assert_eq!(
            e(std::format!(
                "raid10 7 128 {G} node 1 cluster a 2 /dev/a 0 /dev/b 0"
            )),
            ClusterLevel
        );
    }

    /// A clustered raid5 over four members (384 sectors) with `params` after `node <node>`;
    /// `<#params>` is counted.
    fn replicated(node: u32, params: &str) -> std::string::String {
        let params = std::format!(
            "128 group 0123456789abcdef0123456789abcdef cluster amf-test node {node} {params}"
        );
        std::format!(
            "raid5 {} {params} 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0",
            words(&params).len()
        )
    }

    fn replication_of(line: &str) -> Result<Option<ReplicationSpec<'static>>, TableError> {
        parse(words(line), 384).map(|t| t.cluster.and_then(|c| c.replication))
    }

    fn peer(node: u32, ip: [u8; 4], port: u16) -> PeerSpec {
        PeerSpec { node, ip, port }
    }

    #[test]
    fn replication_parameters() {
        // Without them: none.
        assert_eq!(replication_of(&replicated(2, "")), Ok(None));
        // Two to sixteen entries, this node's among them, sorted by node id.
        let l = replicated(
            2,
            "peers 3 3@10.0.0.3:7000 1@10.0.0.1:7000 2@192.168.100.254:65535 \
             auth_key dm-amf:grp1",
        );
        let r = replication_of(&l).unwrap().unwrap();
        assert_eq!(
            r.peers(),
            [
                peer(1, [10, 0, 0, 1], 7000),
                peer(2, [192, 168, 100, 254], 65535),
                peer(3, [10, 0, 0, 3], 7000),
            ]
        );
        assert_eq!(r.auth_key, "dm-amf:grp1");
        assert_eq!(r.own(2), Some(&peer(2, [192, 168, 100, 254], 65535)));
        assert_eq!(r.own(4), None);
        assert_eq!(r.param_words(), 7);
        // In any order with the other parameters; the key before the peers.
        let l = std::format!(
            "raid6 13 128 auth_key a:b peers 2 63@0.0.0.0:1 1@255.255.255.255:2 node 63 \
             group {GROUP} cluster c 5 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0 /dev/e 0"
        );
        let r = replication_of(&l).unwrap().unwrap();
        assert_eq!(r.peers(), [peer(1, [255; 4], 2), peer(63, [0; 4], 1)]);
        assert_eq!(r.own(63).map(|p| p.port), Some(1));
        // Sixteen entries; leading zeros in node ids and ports are decimal, as elsewhere.
        let mut many = std::string::String::from("peers 16");
        for i in (1..=16).rev() {
            many.push_str(&std::format!(" 0{i}@10.0.{i}.1:0{}", 7000 + i));
        }
        many.push_str(" auth_key x:~!#$%^&*()_+{}|\"'<>?,./;[]\\=-`");
        let l = replicated(16, &many);
        let r = replication_of(&l).unwrap().unwrap();
        assert_eq!(r.peers().len(), 16);
        for (i, p) in r.peers().iter().enumerate() {
            let n = i as u32 + 1;
            assert_eq!(*p, peer(n, [10, 0, n as u8, 1], 7000 + n as u16));
        }
        // The same port on different addresses, different ports on one address.
        let l = replicated(
            1,
            "peers 3 1@10.0.0.1:7 2@10.0.0.2:7 3@10.0.0.1:8 auth_key k:k",
        );
        assert_eq!(replication_of(&l).unwrap().unwrap().peers().len(), 3);
        // The longest description.
        let long = std::format!("k:{}", "x".repeat(MAX_AUTH_KEY_LEN - 2));
        let l = replicated(
            1,
            &std::format!("peers 2 1@1.1.1.1:1 2@1.1.1.1:2 auth_key {long}"),
        );
        assert_eq!(replication_of(&l).unwrap().unwrap().auth_key.len(), 255);
    }

    #[test]
    fn replication_round_trip() {
        // What write_replication prints parses back to the same spec, in canonical form.
        for (node, given, echo) in [
            (
                2,
                "peers 2 02@10.0.0.2:07000 1@10.0.0.1:7000 auth_key dm-amf:grp1",
                " peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 auth_key dm-amf:grp1",
            ),
            (
                5,
                "auth_key a:b peers 3 63@1.2.3.4:65535 5@0.0.0.0:1 9@100.200.250.255:80",
                " peers 3 5@0.0.0.0:1 9@100.200.250.255:80 63@1.2.3.4:65535 auth_key a:b",
            ),
            // RDMA is echoed last, wherever it was given; TCP, the default, is not echoed.
            (
                1,
                "transport rdma peers 2 2@10.0.0.2:7000 1@10.0.0.1:7000 auth_key k:k",
                " peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 auth_key k:k transport rdma",
            ),
            (
                2,
                "peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 transport tcp auth_key k:k",
                " peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 auth_key k:k",
            ),
        ] {
            let l = replicated(node, given);
            let r = replication_of(&l).unwrap().unwrap();
            let mut out = std::string::String::new();
            write_replication(&r, &mut out).unwrap();
            assert_eq!(out, echo);
            assert_eq!(words(&out).len(), r.param_words());
            let l2 = replicated(node, &out);
            assert_eq!(replication_of(&l2).unwrap(), Some(r));
            let mut again = std::string::String::new();
            write_replication(&replication_of(&l2).unwrap().unwrap(), &mut again).unwrap();
            assert_eq!(again, echo);
        }
        // The whole clustered table, as dmsetup table prints it.
        let l = std::format!(
            "raid5 13 128 group {GROUP} cluster amf-test node 1 peers 2 1@10.0.0.1:7000 \
             2@10.0.0.2:7000 auth_key dm-amf:grp1 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0"
        );
        let w = words(&l);
        let c = parse(w, 384).unwrap().cluster.unwrap();
        assert_eq!((c.name, c.node, c.lock_stripes), ("amf-test", 1, 1));
        assert_eq!(4 + c.replication.unwrap().param_words(), 10);
        assert_eq!(
            std::format!("{}", peer(7, [1, 22, 103, 0], 9)),
            "7@1.22.103.0:9"
        );
    }

    #[test]
    fn replication_errors() {
        use TableError::*;
        let e = |node: u32, params: &str| {
            let l = replicated(node, params);
            let w = words(&l);
            parse(w, 384).map(|_| ()).expect_err(&l)
        };
        const KEY: &str = "auth_key dm-amf:grp1";
        let two = "1@10.0.0.1:7000 2@10.0.0.2:7000";
        // Good, for reference.
        assert!(replication_of(&replicated(1, &std::format!("peers 2 {two} {KEY}"))).is_ok());

        // Node ids.
        for bad in ["0", "64", "65", "x", "", "-1", "+1", "4294967297", "1.0"] {
            let p = std::format!("peers 2 {two} {KEY}").replace("2@", &std::format!("{bad}@"));
            assert_eq!(e(1, &p), BadPeer, "{p}");
        }
        // Addresses.
        for bad in [
            "10.0.0.256",
            "10.0.0.-1",
            "10.0.0.+1",
            "10.0.0.",
            "10..0.1",
            ".10.0.0",
            "10.0.0",
            "10.0.0.1.1",
            "010.0.0.1",
            "10.0.0.00",
            "0x0a.0.0.1",
            "10.0.0.1000",
            "localhost",
            "[::1]",
            "::1",
            "",
            "10.0.0.1 ",
        ] {
            let p = std::format!("peers 2 1@10.0.0.1:7000 2@{bad}:7000 {KEY}");
            assert_eq!(e(1, &p), BadPeer, "{p}");
        }
        // Ports.
        for bad in ["0", "65536", "70000", "", "x", "+80", "-80", "80:80"] {
            let p = std::format!("peers 2 1@10.0.0.1:7000 2@10.0.0.2:{bad} {KEY}");
            assert_eq!(e(1, &p), BadPeer, "{p}");
        }
        // Not the shape.
        for bad in [
            "2",
            "2@10.0.0.2",
            "10.0.0.2:7000",
            "2@@10.0.0.2:7000",
            "2@10.0.0.2:7000@",
        ] {
            let p = std::format!("peers 2 1@10.0.0.1:7000 {bad} {KEY}");
            assert_eq!(e(1, &p), BadPeer, "{p}");
        }
        // Duplicates: a node id (however written), an address with its port.
        assert_eq!(
            e(
                1,
                &std::format!("peers 2 1@10.0.0.1:7000 1@10.0.0.2:7000 {KEY}")
            ),
            DuplicatePeer
        );
        assert_eq!(
            e(
                1,
                &std::format!("peers 3 1@10.0.0.1:7000 2@10.0.0.2:7000 01@10.0.0.3:7000 {KEY}")
            ),
            DuplicatePeer
        );
        assert_eq!(
            e(
                1,
                &std::format!("peers 2 1@10.0.0.1:7000 2@10.0.0.1:07000 {KEY}")
            ),
            DuplicatePeer
        );
        // The count: missing, not a number, out of range, more than the entries that follow
        // before the end of the parameters.
        assert_eq!(e(1, "peers"), BadPeerCount);
        for bad in ["0", "1", "17", "x", "-2", "+2"] {
            assert_eq!(
                e(1, &std::format!("{KEY} peers {bad} {two}")),
                BadPeerCount,
                "{bad}"
            );
        }
        assert_eq!(e(1, &std::format!("{KEY} peers 3 {two}")), BadPeerCount);
        assert_eq!(
            e(1, &std::format!("{KEY} peers 2 1@10.0.0.1:7000")),
            BadPeerCount
        );
        let mut seventeen = std::format!("{KEY} peers 17");
        for i in 1..=17 {
            seventeen.push_str(&std::format!(" {i}@10.0.0.{i}:7000"));
        }
        assert_eq!(e(1, &seventeen), BadPeerCount);
        let sixteen = seventeen.replace("peers 17", "peers 16");
        assert_eq!(e(1, &sixteen), UnknownParam);
        // ... or fewer: the next word is taken as an entry, or is left over.
        assert_eq!(e(1, &std::format!("peers 3 {two} {KEY}")), BadPeer);
        assert_eq!(
            e(1, &std::format!("{KEY} peers 2 {two} 3@10.0.0.3:7000")),
            UnknownParam
        );
        // <#params> counting fewer words than the peers take: the rest is <#devs>.
        let l = std::format!(
            "raid5 10 128 group {GROUP} cluster c node 1 peers 2 {two} {KEY} 4 /dev/a 0 /dev/b 0 \
             /dev/c 0 /dev/d 0"
        );
        assert_eq!(err(&l, 384), BadPeerCount);
        // This node missing.
        assert_eq!(e(3, &std::format!("peers 2 {two} {KEY}")), PeersMissSelf);
        assert_eq!(e(64, &std::format!("peers 2 {two} {KEY}")), PeersMissSelf);
        // Twice.
        assert_eq!(
            e(1, &std::format!("peers 2 {two} peers 2 {two} {KEY}")),
            DuplicateParam
        );
        assert_eq!(
            e(1, &std::format!("peers 2 {two} {KEY} {KEY}")),
            DuplicateParam
        );
        assert_eq!(
            e(1, &std::format!("peers 2 {two} {KEY} auth_key")),
            DuplicateParam
        );
        // The key: needed with peers, refused without.
        assert_eq!(e(1, &std::format!("peers 2 {two}")), PeersNeedAuthKey);
        assert_eq!(e(1, KEY), AuthKeyNeedsPeers);
        // Bad descriptions.
        assert_eq!(e(1, &std::format!("peers 2 {two} auth_key")), BadAuthKey);
        let long = std::format!("k:{}", "x".repeat(MAX_AUTH_KEY_LEN - 1));
        for bad in [
            "dm-amf",
            ":grp1",
            "dm-amf:gr\u{e9}p",
            "dm-amf:\u{7f}",
            long.as_str(),
        ] {
            assert_eq!(
                e(1, &std::format!("peers 2 {two} auth_key {bad}")),
                BadAuthKey,
                "{bad}"
            );
        }
        // Without cluster mode.
        let devs = "4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0";
        let l = std::format!("raid5 9 128 group {GROUP} peers 2 {two} {KEY} {devs}");
        assert_eq!(err(&l, 384), PeersNotCluster);
        let l = std::format!("raid5 7 128 group {GROUP} peers 2 {two} {devs}");
        assert_eq!(err(&l, 384), PeersNotCluster);
        let l = std::format!("raid5 5 128 group {GROUP} {KEY} {devs}");
        assert_eq!(err(&l, 384), AuthKeyNeedsPeers);
        let l = std::format!("raid5 7 128 peers 2 {two} {KEY} {devs}");
        assert_eq!(err(&l, 384), PeersNotCluster);
        // With only one of cluster and node, that is the error; without group, that.
        let l = std::format!("raid5 11 128 group {GROUP} cluster c peers 2 {two} {KEY} {devs}");
        assert_eq!(err(&l, 384), ClusterIncomplete);
        let l = std::format!("raid5 11 128 cluster c node 1 peers 2 {two} {KEY} {devs}");
        assert_eq!(err(&l, 384), ClusterNeedsGroup);
        let l = std::format!(
            "raid10 13 128 group {GROUP} cluster c node 1 peers 2 {two} {KEY} 2 /dev/a 0 /dev/b 0"
        );
        assert_eq!(err(&l, 128), ClusterLevel);
        let l = std::format!(
            "raid1 13 128 group {GROUP} cluster c node 1 peers 2 {two} {KEY} 2 /dev/a 0 /dev/b 0"
        );
        let spec = parse(words(&l), 128).expect("a replicated raid1 table");
        assert!(spec.cluster.is_some_and(|c| c.replication.is_some()));
    }

    #[test]
    fn replication_transport() {
        use TableError::*;
        let two = "peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 auth_key dm-amf:grp1";
        let spec = |params: &str| {
            let l = replicated(1, params);
            let w = words(&l);
            parse(w, 384).map(|t| {
                let r = t.cluster.unwrap().replication.unwrap();
                let mut out = std::string::String::new();
                write_replication(&r, &mut out).unwrap();
                (r.transport, r.param_words(), out)
            })
        };
        let echo = " peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 auth_key dm-amf:grp1";
        // Without it: TCP, not echoed.
        assert_eq!(
            spec(two),
            Ok((TransportKind::Tcp, 6, std::string::String::from(echo)))
        );
        assert_eq!(TransportKind::default(), TransportKind::Tcp);
        // `transport tcp`: the same spec as without it, not echoed.
        for params in [
            std::format!("{two} transport tcp"),
            std::format!("transport tcp {two}"),
        ] {
            assert_eq!(spec(&params), spec(two), "{params}");
        }
        // `transport rdma`: echoed after auth_key, two more words in <#params>; the echo
        // parses back to the same spec.
        let rdma = std::format!("{echo} transport rdma");
        for params in [
            std::format!("{two} transport rdma"),
            std::format!("transport rdma {two}"),
            std::string::String::from(
                "peers 2 2@10.0.0.2:7000 1@10.0.0.1:7000 transport rdma auth_key dm-amf:grp1",
            ),
        ] {
            assert_eq!(
                spec(&params),
                Ok((TransportKind::Rdma, 8, rdma.clone())),
                "{params}"
            );
        }
        let l = replicated(1, &rdma);
        let r = replication_of(&l).unwrap().unwrap();
        assert_eq!(r.transport, TransportKind::Rdma);
        assert_eq!(words(&rdma).len(), r.param_words());
        let l2 = replicated(1, &std::format!("{two} transport rdma"));
        assert_eq!(replication_of(&l2).unwrap(), Some(r));
        // The spec compares the transport too.
        let tcp = replicated(1, two);
        assert_ne!(replication_of(&tcp).unwrap(), Some(r));
        // The whole clustered table, as dmsetup table prints it: 13 + 2 words.
        let l = std::format!(
            "raid5 15 128 group {GROUP} cluster amf-test node 1 peers 2 1@10.0.0.1:7000 \
             2@10.0.0.2:7000 auth_key dm-amf:grp1 transport rdma 4 /dev/a 0 /dev/b 0 /dev/c 0 \
             /dev/d 0"
        );
        let w = words(&l);
        let c = parse(w, 384).unwrap().cluster.unwrap();
        let r = c.replication.unwrap();
        assert_eq!(r.transport, TransportKind::Rdma);
        assert_eq!(7 + r.param_words(), 15);

        let e = |node: u32, params: &str| {
            let l = replicated(node, params);
            let w = words(&l);
            parse(w, 384).map(|_| ()).expect_err(&l)
        };
        // Another word, the case matters.
        for bad in ["udp", "RDMA", "Tcp", "roce", "rdma,tcp", "1"] {
            assert_eq!(
                e(1, &std::format!("{two} transport {bad}")),
                BadTransport,
                "{bad}"
            );
        }
        // No value: the end of the parameters, or the next parameter taken as the value.
        assert_eq!(e(1, &std::format!("{two} transport")), BadTransport);
        assert_eq!(e(1, &std::format!("transport {two}")), BadTransport);
        // <#params> ending before the value: the rest is <#devs>.
        let l = std::format!(
            "raid5 14 128 group {GROUP} cluster c node 1 {two} transport rdma 4 /dev/a 0 \
             /dev/b 0 /dev/c 0 /dev/d 0"
        );
        assert_eq!(err(&l, 384), BadTransport);
        // Twice, even the same, even without a second value.
        for params in [
            std::format!("{two} transport rdma transport rdma"),
            std::format!("{two} transport tcp transport rdma"),
            std::format!("transport tcp {two} transport tcp"),
            std::format!("{two} transport rdma transport"),
        ] {
            assert_eq!(e(1, &params), DuplicateParam, "{params}");
        }
        // Without peers: in cluster mode, with or without auth_key, either value.
        for params in ["transport rdma", "transport tcp"] {
            assert_eq!(e(1, params), TransportNeedsPeers, "{params}");
        }
        // (With auth_key as well, that one's error comes first, as without cluster mode.)
        for params in [
            "auth_key dm-amf:grp1 transport rdma",
            "transport tcp auth_key dm-amf:grp1",
        ] {
            assert_eq!(e(1, params), AuthKeyNeedsPeers, "{params}");
        }
        // ... and without cluster mode, with or without group.
        let devs = "4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0";
        for params in [
            "3 128 transport rdma",
            "3 128 transport tcp",
            "5 128 group {GROUP} transport rdma",
        ] {
            let params = params.replace("{GROUP}", GROUP);
            assert_eq!(
                err(&std::format!("raid5 {params} {devs}"), 384),
                TransportNeedsPeers,
                "{params}"
            );
        }
        let l = std::format!("raid5 7 128 group {GROUP} auth_key a:b transport rdma {devs}");
        assert_eq!(err(&l, 384), AuthKeyNeedsPeers);
        // Peers without cluster mode: that is the error, transport or not.
        let l = std::format!("raid5 11 128 group {GROUP} {two} transport rdma {devs}");
        assert_eq!(err(&l, 384), PeersNotCluster);
        // The other replication errors are unchanged by a good transport.
        assert_eq!(
            e(1, "peers 2 1@10.0.0.1:7000 2@10.0.0.2:7000 transport rdma"),
            PeersNeedAuthKey
        );
        assert_eq!(e(3, &std::format!("{two} transport rdma")), PeersMissSelf);
    }

    #[test]
    fn peer_words() {
        assert_eq!(parse_peer("1@0.0.0.0:1"), Some(peer(1, [0; 4], 1)));
        assert_eq!(
            parse_peer("63@255.255.255.255:65535"),
            Some(peer(63, [255; 4], 65535))
        );
        for bad in [
            "",
            "@",
            "1@:",
            "1@0.0.0.0:",
            "@0.0.0.0:1",
            "1@0.0.0:1",
            "1@0.0.0.0.:1",
        ] {
            assert_eq!(parse_peer(bad), None, "{bad:?}");
        }
        assert!(valid_auth_key("a:"));
        assert!(valid_auth_key("dm-amf:grp1"));
        for bad in ["", ":", "a", "a b:c", "a:b c", "a:\t", "a:\u{a0}"] {
            assert!(!valid_auth_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn messages_are_distinct_and_documented() {
        let doc = include_str!("../../../Documentation/table-syntax.rst");
        let all = [
            TableError::NotEnoughArgs,
            TableError::UnknownLevel,
            TableError::BadParamCount,
            TableError::BadChunk,
            TableError::ChunkNotPowerOfTwo,
            TableError::ChunkOutOfRange,
            TableError::UnknownParam,
            TableError::DuplicateParam,
            TableError::CopiesNotRaid10,
            TableError::BadCopies,
            TableError::TooFewDevices,
            TableError::BadDeviceCount,
            TableError::WrongDeviceArgs,
            TableError::TooManyArgs,
            TableError::BadOffset,
            TableError::DuplicateDevice,
            TableError::LengthNotStripeMultiple,
            TableError::DeviceTooSmall,
            TableError::BadRebuild,
            TableError::DuplicateRebuild,
            TableError::RebuildNotRedundant,
            TableError::TooManyFailed,
            TableError::BadGroup,
            TableError::GroupMismatch,
            TableError::WrongDataOffset,
            TableError::BadCluster,
            TableError::BadNode,
            TableError::ClusterIncomplete,
            TableError::ClusterNeedsGroup,
            TableError::ClusterLevel,
            TableError::BadLockStripes,
            TableError::LockStripesNotCluster,
            TableError::PeersNotCluster,
            TableError::BadPeerCount,
            TableError::BadPeer,
            TableError::DuplicatePeer,
            TableError::PeersMissSelf,
            TableError::PeersNeedAuthKey,
            TableError::AuthKeyNeedsPeers,
            TableError::BadAuthKey,
            TableError::BadTransport,
            TableError::TransportNeedsPeers,
            TableError::PplLevel,
            TableError::PplNeedsGroup,
            TableError::DirtyDegradedLevel,
            TableError::DirtyDegradedNeedsGroup,
        ];
        for (i, a) in all.iter().enumerate() {
            let m = a.message().to_str().unwrap();
            assert!(doc.contains(&std::format!("``{m}``")), "undocumented: {m}");
            for b in &all[i + 1..] {
                assert_ne!(a.message(), b.message());
            }
        }
    }

    #[test]
    fn group_messages_are_documented() {
        // The superblock messages a constructor with `group <uuid>` can return, verbatim in
        // the "With group <uuid>" part of the errors table.
        use super::super::superblock::{ChooseError, SetError};
        let doc = include_str!("../../../Documentation/table-syntax.rst");
        let (_, part) = doc.split_once("With ``group <uuid>`` (see").unwrap();
        let p = 0;
        let all = [
            ChooseError::Conflict.message(),
            ChooseError::UnknownVersion(2).message(),
            SetError::NoSuperblock.message(),
            SetError::ForeignMember { position: p }.message(),
            SetError::WrongMemberCount {
                devices: 1,
                members: 2,
            }
            .message(),
            SetError::DuplicateRole {
                role: 0,
                first: 0,
                second: 1,
            }
            .message(),
            SetError::WrongRole {
                position: 1,
                role: 0,
            }
            .message(),
            SetError::Inconsistent { position: p }.message(),
            SetError::ReplacedMember { position: p }.message(),
            SetError::Diverged { position: p }.message(),
            SetError::TooManyFailed {
                failed: 2,
                tolerated: 1,
            }
            .message(),
            TableError::GroupMismatch.message(),
            TableError::WrongDataOffset.message(),
        ];
        for m in all {
            let m = m.to_str().unwrap();
            assert!(part.contains(&std::format!("``{m}``")), "undocumented: {m}");
        }
        // The same message for the same refusal, with or without `group`.
        assert_eq!(
            SetError::TooManyFailed {
                failed: 2,
                tolerated: 1
            }
            .message(),
            TableError::TooManyFailed.message()
        );
    }

    #[test]
    fn missing_members() {
        // The raid5 of table-syntax.rst with member 2 missing.
        let w = words("raid5 1 128 4 /dev/vdb 0 /dev/vdc 0 - 0 /dev/vde 0");
        let t = parse(w, 1_572_864).unwrap();
        assert_eq!(
            t.member(2).unwrap(),
            MemberArg {
                path: "-",
                offset: 0,
                len: 524_288,
                missing: true,
            }
        );
        assert!(!t.member(1).unwrap().missing && !t.member(3).unwrap().missing);
        assert_eq!(t.missing(), MemberSet::single(2));
        assert_eq!(t.rebuild, MemberSet::EMPTY);
        assert_eq!(t.unavailable(), MemberSet::single(2));

        // The offset of a missing member is parsed and kept; several `-` are no duplicates.
        let w = words("raid1 1 128 3 - 2048 /dev/b 0 - 8");
        let t = parse(w, 128 * 10).unwrap();
        assert_eq!(t.member(0).unwrap().offset, 2048);
        assert_eq!(t.member(2).unwrap().offset, 8);
        assert_eq!(t.member(2).unwrap().path, "-");
        assert_eq!(t.missing(), MemberSet(0b101));

        let w = words("raid6 1 128 5 /dev/a 0 - 0 /dev/c 0 - 0 /dev/e 0");
        assert_eq!(parse(w, 3 * 128).unwrap().missing(), MemberSet(0b01010));
        let w = words("raid10 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 - 0");
        assert_eq!(parse(w, 128 * 2).unwrap().missing(), MemberSet::single(3));
        let w = words("raid10 3 128 raid10_copies 3 3 - 0 /dev/b 0 - 0");
        assert_eq!(parse(w, 128).unwrap().missing(), MemberSet(0b101));

        // `-` is only a whole word; a missing member still needs a valid offset.
        let w = words("raid1 1 128 2 /dev/- 0 -- 0");
        assert_eq!(parse(w, 128).unwrap().missing(), MemberSet::EMPTY);
        assert_eq!(
            err("raid1 1 128 2 - x /dev/b 0", 128),
            TableError::BadOffset
        );
        assert_eq!(
            err("raid1 1 128 2 - 18446744073709551615 /dev/b 0", 128),
            TableError::DeviceTooSmall
        );
        // Real devices are still compared with each other.
        assert_eq!(
            err("raid1 1 128 3 - 0 /dev/b 0 /dev/b 8", 128),
            TableError::DuplicateDevice
        );
    }

    #[test]
    fn rebuild_members() {
        // The reload of table-syntax.rst: a fresh device at index 2.
        let w = words("raid5 3 128 rebuild 2 4 /dev/vdb 0 /dev/vdc 0 /dev/vdf 0 /dev/vde 0");
        let t = parse(w, 1_572_864).unwrap();
        assert_eq!(t.rebuild, MemberSet::single(2));
        assert_eq!(t.missing(), MemberSet::EMPTY);
        assert_eq!(t.unavailable(), MemberSet::single(2));
        assert_eq!(t.member(2).unwrap().path, "/dev/vdf");

        // Repeatable, in any order with the other parameters.
        let w = words("raid1 5 128 rebuild 2 rebuild 0 3 /dev/a 0 /dev/b 0 /dev/c 0");
        assert_eq!(parse(w, 128).unwrap().rebuild, MemberSet(0b101));
        let w = words("raid10 5 128 rebuild 1 raid10_copies 3 3 /dev/a 0 /dev/b 0 /dev/c 0");
        let t = parse(w, 128).unwrap();
        assert_eq!(t.level, Level::Raid10 { copies: 3 });
        assert_eq!(t.rebuild, MemberSet::single(1));
        let w = words("raid6 5 128 rebuild 0 rebuild 3 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0");
        assert_eq!(parse(w, 256).unwrap().rebuild, MemberSet(0b1001));

        // A member both missing and to be rebuilt counts once.
        let w = words("raid5 3 128 rebuild 1 3 /dev/a 0 - 0 /dev/c 0");
        let t = parse(w, 256).unwrap();
        assert_eq!(t.rebuild, MemberSet::single(1));
        assert_eq!(t.missing(), MemberSet::single(1));
        assert_eq!(t.unavailable(), MemberSet::single(1));
        let w = words("raid6 5 128 rebuild 0 rebuild 3 4 - 0 /dev/b 0 /dev/c 0 - 0");
        assert_eq!(parse(w, 256).unwrap().unavailable(), MemberSet(0b1001));
    }

    #[test]
    fn rebuild_errors() {
        use TableError::*;
        let three = "3 /dev/a 0 /dev/b 0 /dev/c 0";
        let e = |params: &str| err(&std::format!("raid5 {params} {three}"), 256);
        // No value, not a number, not a member.
        assert_eq!(e("2 128 rebuild"), BadRebuild);
        assert_eq!(e("3 128 rebuild x"), BadRebuild);
        assert_eq!(e("3 128 rebuild -1"), BadRebuild);
        assert_eq!(e("3 128 rebuild 0x1"), BadRebuild);
        assert_eq!(e("3 128 rebuild 3"), BadRebuild);
        assert_eq!(e("3 128 rebuild 63"), BadRebuild);
        assert_eq!(e("3 128 rebuild 64"), BadRebuild);
        assert_eq!(e("3 128 rebuild 18446744073709551616"), BadRebuild);
        assert_eq!(e("5 128 rebuild 0 rebuild 3"), BadRebuild);
        // The index is checked against <#devs> after the device words are counted.
        assert_eq!(
            err("raid5 3 128 rebuild 3 3 /dev/a 0 /dev/b 0", 256),
            WrongDeviceArgs
        );
        // The same index twice, however written; other parameters stay single.
        assert_eq!(e("5 128 rebuild 1 rebuild 1"), DuplicateRebuild);
        assert_eq!(e("5 128 rebuild 1 rebuild 01"), DuplicateRebuild);
        assert_eq!(
            err(
                "raid10 5 128 raid10_copies 2 raid10_copies 3 3 /dev/a 0 /dev/b 0 /dev/c 0",
                128
            ),
            DuplicateParam
        );
        // raid0 has nothing to rebuild from.
        assert_eq!(
            err("raid0 3 128 rebuild 0 2 /dev/a 0 /dev/b 0", 256),
            RebuildNotRedundant
        );
        assert_eq!(
            err("raid0 2 128 rebuild 2 /dev/a 0 /dev/b 0", 256),
            BadRebuild
        );
    }

    #[test]
    fn too_many_failed_members() {
        use TableError::*;
        let e = err;
        // raid0 tolerates nothing.
        assert_eq!(e("raid0 1 128 2 /dev/a 0 - 0", 256), TooManyFailed);
        assert_eq!(e("raid0 1 128 1 - 0", 128), TooManyFailed);
        // raid1: n - 1.
        assert_eq!(e("raid1 1 128 2 - 0 - 0", 128), TooManyFailed);
        assert_eq!(
            e("raid1 5 128 rebuild 0 rebuild 1 2 /dev/a 0 /dev/b 0", 128),
            TooManyFailed
        );
        assert_eq!(
            e("raid1 3 128 rebuild 1 3 - 0 /dev/b 0 - 0", 128),
            TooManyFailed
        );
        // raid5: 1; missing and rebuilding add up.
        assert_eq!(e("raid5 1 128 3 - 0 /dev/b 0 - 0", 256), TooManyFailed);
        assert_eq!(
            e("raid5 3 128 rebuild 1 3 - 0 /dev/b 0 /dev/c 0", 256),
            TooManyFailed
        );
        // raid6: 2.
        assert_eq!(
            e("raid6 3 128 rebuild 3 4 - 0 - 0 /dev/c 0 /dev/d 0", 256),
            TooManyFailed
        );
        // raid10: copies - 1.
        assert_eq!(
            e("raid10 1 128 4 - 0 /dev/b 0 - 0 /dev/d 0", 256),
            TooManyFailed
        );
        assert_eq!(
            e(
                "raid10 5 128 raid10_copies 3 rebuild 0 3 /dev/a 0 - 0 - 0",
                128
            ),
            TooManyFailed
        );
    }

    #[test]
    fn accepted_failures_leave_every_sector_readable() {
        // Every set of members missing or to be rebuilt is refused exactly when it exceeds
        // what the level tolerates, and every accepted set leaves each sector readable
        // (directly or by reconstruction), whatever members it names.
        let levels = [
            Level::Raid0,
            Level::Raid1,
            Level::Raid5,
            Level::Raid6,
            Level::Raid10 { copies: 2 },
            Level::Raid10 { copies: 3 },
        ];
        for level in levels {
            for n in 1..=6usize {
                let Ok(g0) = Geometry::new(level, n, 8, 8) else {
                    continue;
                };
                // A few rows, so that every layout rotation is exercised.
                let len = 8 * g0.data_chunks() as u64 * 2 * n as u64;
                let Ok((_, g)) = member_len(level, n, 8, len) else {
                    continue; // too few members for a table of this level
                };
                for set in 0..(1u64 << n) {
                    // Odd members are missing, even ones are rebuilt (raid0 can only miss
                    // members): both kinds count.
                    let failed = MemberSet(set);
                    let missing = |i: usize| level == Level::Raid0 || i % 2 == 1;
                    let mut params = std::vec![std::string::String::from("8")];
                    if let Level::Raid10 { copies } = level {
                        params.push(std::format!("raid10_copies {copies}"));
                    }
                    for i in failed.iter().filter(|&i| !missing(i)) {
                        params.push(std::format!("rebuild {i}"));
                    }
                    let nr_params = words(&params.join(" ")).len();
                    let mut line =
                        std::format!("{} {nr_params} {} {n}", level_name(level), params.join(" "));
                    for i in 0..n {
                        if failed.contains(i) && missing(i) {
                            line.push_str(" - 0");
                        } else {
                            line.push_str(&std::format!(" /dev/m{i} 0"));
                        }
                    }
                    let w = words(&line);
                    match parse(w, len) {
                        Ok(t) => {
                            assert_eq!(t.unavailable(), failed, "{line}");
                            assert!(failed.len() <= g.tolerated_failures(), "{line}");
                            for s in 0..len {
                                assert!(g.read_plan(s, failed).is_ok(), "{line}: sector {s}");
                            }
                        }
                        Err(e) => {
                            assert_eq!(e, TableError::TooManyFailed, "{line}");
                            assert!(failed.len() > g.tolerated_failures(), "{line}");
                        }
                    }
                }
            }
        }
    }

    const GROUP: &str = "01234567-89ab-cdef-0123-456789abcdef";
    const GROUP_BYTES: Uuid = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];

    #[test]
    fn group_parameter() {
        let four = "4 /dev/a 8192 /dev/b 8192 /dev/c 8192 /dev/d 8192";
        let line = |params: &str| std::format!("raid5 {params} {four}");
        // Without it: no group.
        let w = words("raid5 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0");
        assert_eq!(parse(w, 384).unwrap().group, None);
        // Two words in <#params>; either case, with or without the dashes.
        for uuid in [
            GROUP,
            "01234567-89AB-CDEF-0123-456789ABCDEF",
            "0123456789abcdef0123456789abcdef",
        ] {
            let l = line(&std::format!("3 128 group {uuid}"));
            let t = parse(words(&l), 384).unwrap();
            assert_eq!(t.group, Some(GROUP_BYTES), "{l}");
            assert_eq!(t.member(3).unwrap().offset, 8192);
        }
        // In any order with the other parameters.
        let l =
            std::format!("raid10 5 128 group {GROUP} raid10_copies 3 3 /dev/a 0 /dev/b 0 /dev/c 0");
        let t = parse(words(&l), 128).unwrap();
        assert_eq!(t.level, Level::Raid10 { copies: 3 });
        assert_eq!(t.group, Some(GROUP_BYTES));
        let l = line(&std::format!("5 128 rebuild 2 group {GROUP}"));
        let t = parse(words(&l), 384).unwrap();
        assert_eq!(
            (t.rebuild, t.group),
            (MemberSet::single(2), Some(GROUP_BYTES))
        );
        // Every level, and with missing members.
        let l = std::format!("raid0 3 128 group {GROUP} 2 /dev/a 8192 /dev/b 8192");
        assert_eq!(parse(words(&l), 256).unwrap().group, Some(GROUP_BYTES));
        let l = line(&std::format!("3 128 group {GROUP}")).replace("/dev/c", "-");
        let t = parse(words(&l), 384).unwrap();
        assert_eq!(
            (t.missing(), t.group),
            (MemberSet::single(2), Some(GROUP_BYTES))
        );
        let l = std::format!("raid1 3 128 group {GROUP} 3 - 8192 /dev/b 8192 - 8192");
        assert_eq!(parse(words(&l), 128).unwrap().missing(), MemberSet(0b101));
        // The member offsets are not checked against anything here (the kernel compares
        // them with the superblocks).
        let l = std::format!("raid1 3 128 group {GROUP} 2 /dev/a 0 /dev/b 7");
        assert_eq!(parse(words(&l), 128).unwrap().member(1).unwrap().offset, 7);
        // The usual member checks still apply.
        let l = std::format!("raid5 3 128 group {GROUP} 3 - 0 /dev/b 0 - 0");
        assert_eq!(err(&l, 256), TableError::TooManyFailed);
    }

    #[test]
    fn ppl_parameter() {
        use TableError::*;
        let four = "4 /dev/a 8192 /dev/b 8192 /dev/c 8192 /dev/d 8192";
        let t = |lvl: &str, params: &str, len| {
            parse(words(&std::format!("{lvl} {params} {four}")), len).map(|t| t.ppl)
        };
        assert_eq!(
            t("raid5", &std::format!("3 128 group {GROUP}"), 384),
            Ok(false)
        );
        assert_eq!(
            t("raid5", &std::format!("4 128 group {GROUP} ppl"), 384),
            Ok(true)
        );
        assert_eq!(
            t("raid6", &std::format!("4 128 ppl group {GROUP}"), 256),
            Ok(true)
        );
        assert_eq!(t("raid5", "2 128 ppl", 384), Err(PplNeedsGroup));
        assert_eq!(
            t("raid1", &std::format!("4 128 group {GROUP} ppl"), 128),
            Err(PplLevel)
        );
        assert_eq!(
            t("raid0", &std::format!("4 128 group {GROUP} ppl"), 512),
            Err(PplLevel)
        );
        let twice = std::format!("5 128 ppl group {GROUP} ppl");
        assert_eq!(t("raid5", &twice, 384), Err(DuplicateParam));
    }

    #[test]
    fn start_dirty_degraded_parameter() {
        use TableError::*;
        let four = "4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0";
        let t = |lvl: &str, params: &str, len: u64| {
            parse(words(&std::format!("{lvl} {params} {four}")), len)
                .map(|t| (t.start_dirty_degraded, t.ppl))
        };
        assert_eq!(
            t("raid5", &std::format!("3 128 group {GROUP}"), 384),
            Ok((false, false))
        );
        assert_eq!(
            t(
                "raid5",
                &std::format!("4 128 group {GROUP} start_dirty_degraded"),
                384
            ),
            Ok((true, false))
        );
        assert_eq!(
            t(
                "raid6",
                &std::format!("5 128 start_dirty_degraded ppl group {GROUP}"),
                256
            ),
            Ok((true, true))
        );
        assert_eq!(
            t("raid5", "2 128 start_dirty_degraded", 384),
            Err(DirtyDegradedNeedsGroup)
        );
        assert_eq!(
            t(
                "raid1",
                &std::format!("4 128 group {GROUP} start_dirty_degraded"),
                128
            ),
            Err(DirtyDegradedLevel)
        );
        let twice = std::format!("5 128 start_dirty_degraded group {GROUP} start_dirty_degraded");
        assert_eq!(t("raid5", &twice, 384), Err(DuplicateParam));
    }

    #[test]
    fn group_errors() {
        use TableError::*;
        let e = |params: &str| {
            err(
                &std::format!("raid1 {params} 2 /dev/a 8192 /dev/b 8192"),
                128,
            )
        };
        // No value: <#params> counts only the keyword, the UUID would be <#devs>.
        assert_eq!(e("2 128 group"), BadGroup);
        assert_eq!(
            err(
                "raid1 2 128 group 01234567-89ab-cdef-0123-456789abcdef 1 /dev/a 0",
                128
            ),
            BadGroup
        );
        // Bad syntax.
        for bad in [
            "x",
            "0123456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdeg",
            "01234567-89ab-cdef-0123-456789abcdef0",
            "0123456789ab-cdef-0123-456789abcdef",
            "{01234567-89ab-cdef-0123-456789abcdef}",
            "0x0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(e(&std::format!("3 128 group {bad}")), BadGroup, "{bad}");
        }
        // The all-zero UUID, in both spellings.
        assert_eq!(
            e("3 128 group 00000000-0000-0000-0000-000000000000"),
            BadGroup
        );
        assert_eq!(e("3 128 group 00000000000000000000000000000000"), BadGroup);
        // At most once, even with the same UUID; the duplicate is found before its value.
        assert_eq!(
            e(&std::format!("5 128 group {GROUP} group {GROUP}")),
            DuplicateParam
        );
        assert_eq!(
            e(&std::format!("5 128 group {GROUP} group x")),
            DuplicateParam
        );
        assert_eq!(
            e(&std::format!("4 128 group {GROUP} group")),
            DuplicateParam
        );
        // A bad value before anything else wrong in the parameters.
        assert_eq!(e("5 128 group x raid10_copies 2"), BadGroup);
        // Still case-sensitive as a keyword.
        assert_eq!(e(&std::format!("3 128 GROUP {GROUP}")), UnknownParam);
    }

    #[test]
    fn table_against_the_group() {
        use super::super::superblock::{FormatParams, DATA_OFFSET_DEFAULT};
        use TableError::*;
        let members = [[1u8; 16], [2; 16], [3; 16], [4; 16]];
        let p = FormatParams {
            group_uuid: GROUP_BYTES,
            level: Level::Raid5,
            chunk_sectors: 128,
            member_uuids: &members,
            data_offset: DATA_OFFSET_DEFAULT,
            data_sectors: 128 * 100,
            region_sectors: 1 << 17,
            ctime: 1,
        };
        let sb = Superblock::new(&p).unwrap();
        let line = |level: &str, params: &str, devs: &str| {
            std::format!("{level} {params} group {GROUP} {devs}")
        };
        let four = "4 /dev/a 8192 /dev/b 8192 - 8192 /dev/d 4096";
        // The whole data area: 100 stripes of 3 data chunks.
        let l = line("raid5", "3 128", four);
        let t = parse(words(&l), 3 * 128 * 100).unwrap();
        assert_eq!(t.check_group(&sb), Ok(()));
        // Less of it is fine too.
        let t2 = parse(words(&l), 3 * 128).unwrap();
        assert_eq!(t2.check_group(&sb), Ok(()));
        // More is not.
        let t3 = parse(words(&l), 3 * 128 * 101).unwrap();
        assert_eq!(t3.check_group(&sb), Err(GroupMismatch));
        // Level, chunk size, member count.
        let l = line("raid6", "3 128", four);
        let t4 = parse(words(&l), 2 * 128).unwrap();
        assert_eq!(t4.check_group(&sb), Err(GroupMismatch));
        let l = line("raid5", "3 64", four);
        let t5 = parse(words(&l), 3 * 64).unwrap();
        assert_eq!(t5.check_group(&sb), Err(GroupMismatch));
        let l = line("raid5", "3 128", "3 /dev/a 8192 /dev/b 8192 /dev/c 8192");
        let t6 = parse(words(&l), 2 * 128).unwrap();
        assert_eq!(t6.check_group(&sb), Err(GroupMismatch));
        // raid10's copies are part of the level.
        let mut r10 = Superblock::new(&FormatParams {
            level: Level::Raid10 { copies: 2 },
            member_uuids: &members[..3],
            ..p
        })
        .unwrap();
        let l = line("raid10", "3 128", "3 /dev/a 8192 /dev/b 8192 /dev/c 8192");
        let t7 = parse(words(&l), 128).unwrap();
        assert_eq!(t7.check_group(&r10), Ok(()));
        r10.level = Level::Raid10 { copies: 3 };
        assert_eq!(t7.check_group(&r10), Err(GroupMismatch));
        // Offsets: each member against its own superblock.
        assert_eq!(t.check_data_offset(0, &sb), Ok(()));
        assert_eq!(t.check_data_offset(3, &sb), Err(WrongDataOffset));
        let mut d = sb.for_role(3).unwrap();
        d.data_offset = 4096;
        assert_eq!(t.check_data_offset(3, &d), Ok(()));
        assert_eq!(t.check_data_offset(4, &sb), Err(WrongDataOffset));
    }

    #[test]
    fn decimal_parsing_is_strict() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal("18446744073709551616"), None);
        for bad in ["", "+1", "-1", "1 ", "0x1", "1e3", "١"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
