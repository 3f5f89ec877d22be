// SPDX-License-Identifier: GPL-2.0
//! The lock model: DLM resource names, modes and the per-resource state machine of one AMF.
//!
//! An AMF takes a lock on a stripe before it touches it and keeps it after its operations
//! finish (*lazy release*): the next operation on a hot stripe then needs no round trip. Only
//! when another AMF asks (a blocking callback, BAST) does the holder stop admitting new work
//! on the resource, drain the operations in flight, and then down-convert (to PR when the
//! other side only reads, else to NL, keeping the lock handle cached).

/// DLM lock modes used by dm-amf (the DLM's CW is not used).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Null: holds the resource handle, grants nothing.
    Nl = 0,
    /// Concurrent read.
    Cr = 1,
    /// Protected read: host reads of a stripe.
    Pr = 3,
    /// Protected write.
    Pw = 4,
    /// Exclusive: write operations on a stripe, and recovery.
    Ex = 5,
}

impl Mode {
    /// Whether a holder of `self` may do what `other` allows (NL < CR < PR < PW < EX).
    pub fn covers(self, other: Mode) -> bool {
        self >= other
    }

    /// The DLM compatibility matrix: may `self` and `other` be granted at once?
    pub fn compatible(self, other: Mode) -> bool {
        use Mode::*;
        match (self, other) {
            (Nl, _) | (_, Nl) => true,
            (Ex, _) | (_, Ex) => false,
            (Cr, _) | (_, Cr) => true,
            (Pr, Pr) => true,
            _ => false,
        }
    }
}

/// Longest DLM resource name (`DLM_RESNAME_MAXLEN`).
pub const RESNAME_MAX: usize = 64;

/// What a lock protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// One stripe.
    Stripe(u64),
    /// Stripes `first..=last` (coarse locks for large sequential writes).
    Range {
        /// First stripe.
        first: u64,
        /// Last stripe (inclusive).
        last: u64,
    },
    /// A per-AMF resource (held by recovery of that AMF's operations).
    Node(u32),
    /// The group's cluster configuration: its value block holds the lock unit
    /// (`lock_stripes`) every AMF of the group must use.
    Config,
    /// The group's member states: held PR by every AMF that relies on the states it knows,
    /// EX by the one writing a round of superblocks; its value block carries the round's
    /// event counter.
    Members,
}

/// Why a name or a lock event was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockError {
    /// Name not in dm-amf's format.
    BadName,
    /// A range with `first > last`.
    BadRange,
    /// A grant or unlock that does not match any request.
    Unexpected,
    /// More operations finished than started.
    NotInFlight,
    /// In-flight counter overflow.
    Overflow,
}

/// A rendered DLM resource name: `amf` + kind byte + 16-byte group UUID + big-endian ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceName {
    bytes: [u8; RESNAME_MAX],
    len: usize,
}

impl ResourceName {
    /// Render the name of `resource` in group `group`.
    pub fn new(group: &[u8; 16], resource: Resource) -> Result<ResourceName, LockError> {
        let mut n = ResourceName {
            bytes: [0; RESNAME_MAX],
            len: 0,
        };
        n.push(b"amf");
        match resource {
            Resource::Stripe(s) => {
                n.push(b"s");
                n.push(group);
                n.push(&s.to_be_bytes());
            }
            Resource::Range { first, last } => {
                if first > last {
                    return Err(LockError::BadRange);
                }
                n.push(b"r");
                n.push(group);
                n.push(&first.to_be_bytes());
                n.push(&last.to_be_bytes());
            }
            Resource::Node(id) => {
                n.push(b"n");
                n.push(group);
                n.push(&id.to_be_bytes());
            }
            Resource::Config => {
                n.push(b"c");
                n.push(group);
            }
            Resource::Members => {
                n.push(b"m");
                n.push(group);
            }
        }
        Ok(n)
    }

    fn push(&mut self, b: &[u8]) {
        let end = self.len.saturating_add(b.len());
        if let Some(dst) = self.bytes.get_mut(self.len..end) {
            dst.copy_from_slice(b);
            self.len = end;
        }
    }

    /// The name bytes to pass to `dlm_lock`.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Parse a name back into group and resource (for debugging tools and tests).
    pub fn parse(name: &[u8]) -> Result<([u8; 16], Resource), LockError> {
        let (prefix, rest) = (name.get(..4), name.get(4..));
        let rest = rest.ok_or(LockError::BadName)?;
        let group: [u8; 16] = rest
            .get(..16)
            .and_then(|g| g.try_into().ok())
            .ok_or(LockError::BadName)?;
        let ids = rest.get(16..).ok_or(LockError::BadName)?;
        let be64 = |at: usize| -> Option<u64> {
            ids.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let resource = match (prefix, ids.len()) {
            (Some(b"amfs"), 8) => Resource::Stripe(be64(0).ok_or(LockError::BadName)?),
            (Some(b"amfr"), 16) => {
                let first = be64(0).ok_or(LockError::BadName)?;
                let last = be64(8).ok_or(LockError::BadName)?;
                if first > last {
                    return Err(LockError::BadRange);
                }
                Resource::Range { first, last }
            }
            (Some(b"amfn"), 4) => Resource::Node(u32::from_be_bytes(
                ids.try_into().map_err(|_| LockError::BadName)?,
            )),
            (Some(b"amfc"), 0) => Resource::Config,
            (Some(b"amfm"), 0) => Resource::Members,
            _ => return Err(LockError::BadName),
        };
        Ok((group, resource))
    }
}

/// Where one AMF's lock on one resource stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No lock.
    Unlocked,
    /// `dlm_lock` sent, waiting for the grant.
    Requesting(Mode),
    /// Granted in this mode.
    Held(Mode),
    /// Holding `from`, conversion to `to` sent.
    Converting {
        /// Mode held meanwhile.
        from: Mode,
        /// Mode asked for.
        to: Mode,
    },
    /// `dlm_unlock` sent.
    Unlocking,
}

/// What the caller must do after feeding an event to a [`LockState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// The lock is held in a sufficient mode: the operation may start now (it is counted
    /// in flight until [`LockState::op_done`]).
    Proceed,
    /// Wait: call [`LockState::acquire`] again after the next grant, conversion or
    /// [`LockState::op_done`].
    Wait,
    /// Send a new lock request in this mode.
    Request(Mode),
    /// Send a conversion to this mode (up for local work, down to answer a BAST).
    Convert(Mode),
    /// Send an unlock.
    Unlock,
}

/// Lock state of one resource on one AMF, with lazy release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockState {
    state: State,
    in_flight: u32,
    blocked: Option<Mode>,
    fresh: bool,
}

impl Default for LockState {
    fn default() -> Self {
        LockState::new()
    }
}

fn down_target(held: Mode, requested: Mode) -> Mode {
    if held.covers(Mode::Pr) && Mode::Pr.compatible(requested) {
        Mode::Pr
    } else {
        Mode::Nl
    }
}

impl LockState {
    /// A resource never locked.
    pub const fn new() -> LockState {
        LockState {
            state: State::Unlocked,
            in_flight: 0,
            blocked: None,
            fresh: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Operations admitted and not yet done.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Mode some other AMF is waiting for, if a BAST arrived.
    pub fn blocked(&self) -> Option<Mode> {
        self.blocked
    }

    /// The mode this AMF may currently rely on. Nothing while converting: a down-conversion
    /// is only sent once drained, and an up-conversion (sent with `DLM_LKF_CONVDEADLK`, which
    /// lets the DLM demote the granted mode to break conversion deadlocks) only when idle.
    pub fn held(&self) -> Mode {
        match self.state {
            State::Held(m) => m,
            _ => Mode::Nl,
        }
    }

    /// A local operation wants the resource in `mode`.
    pub fn acquire(&mut self, mode: Mode) -> Result<Action, LockError> {
        if self.blocked.is_some() && !self.fresh {
            // Another AMF is waiting: admit nothing new until it has had its turn.
            return Ok(Action::Wait);
        }
        Ok(match self.state {
            State::Held(h) if h.covers(mode) => {
                self.in_flight = self.in_flight.checked_add(1).ok_or(LockError::Overflow)?;
                Action::Proceed
            }
            State::Held(_) if self.in_flight > 0 => Action::Wait,
            State::Held(h) => {
                self.state = State::Converting { from: h, to: mode };
                Action::Convert(mode)
            }
            State::Unlocked => {
                self.state = State::Requesting(mode);
                Action::Request(mode)
            }
            State::Requesting(_) | State::Converting { .. } | State::Unlocking => Action::Wait,
        })
    }

    /// The DLM granted a request or conversion (completion AST).
    ///
    /// The caller then calls [`LockState::acquire`] for each local waiter (all are admitted
    /// even if a BAST is pending, so that two AMFs cannot starve each other) and then
    /// [`LockState::settle`].
    pub fn granted(&mut self, mode: Mode) -> Result<(), LockError> {
        match self.state {
            State::Requesting(m) | State::Converting { to: m, .. } if m == mode => {
                self.state = State::Held(mode);
                if self.blocked.is_some_and(|b| mode.compatible(b)) {
                    self.blocked = None;
                }
                self.fresh = true;
                Ok(())
            }
            _ => Err(LockError::Unexpected),
        }
    }

    /// Close the admission window opened by a grant; yields at once if a BAST is pending
    /// and nothing was admitted.
    pub fn settle(&mut self) -> Action {
        self.fresh = false;
        self.maybe_yield()
    }

    /// Blocking AST: another AMF wants `mode`. Drain, then yield.
    pub fn blocking(&mut self, mode: Mode) -> Action {
        // Judge against the mode held or being granted: callbacks may be seen out of order.
        let ours = match self.state {
            State::Requesting(m) | State::Converting { to: m, .. } | State::Held(m) => m,
            State::Unlocked | State::Unlocking => Mode::Nl,
        };
        if ours.compatible(mode) {
            return Action::None;
        }
        self.blocked = Some(match self.blocked {
            Some(b) if b > mode => b,
            _ => mode,
        });
        self.maybe_yield()
    }

    /// An admitted operation finished (its records are retired on every peer).
    pub fn op_done(&mut self) -> Result<Action, LockError> {
        self.in_flight = self
            .in_flight
            .checked_sub(1)
            .ok_or(LockError::NotInFlight)?;
        Ok(self.maybe_yield())
    }

    fn maybe_yield(&mut self) -> Action {
        match (self.state, self.blocked) {
            (State::Held(h), Some(b)) if self.in_flight == 0 && !self.fresh && !h.compatible(b) => {
                let to = down_target(h, b);
                self.state = State::Converting { from: h, to };
                Action::Convert(to)
            }
            _ => Action::None,
        }
    }

    /// Drop an idle lock entirely (cache eviction). `None` if busy.
    pub fn evict(&mut self) -> Action {
        match self.state {
            State::Held(_) if self.in_flight == 0 => {
                self.state = State::Unlocking;
                Action::Unlock
            }
            _ => Action::None,
        }
    }

    /// The DLM confirmed an unlock.
    pub fn unlocked(&mut self) -> Result<(), LockError> {
        if self.state != State::Unlocking {
            return Err(LockError::Unexpected);
        }
        *self = LockState::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;

    #[test]
    fn matrix_matches_dlm() {
        // Rows/columns NL CR PR PW EX, from the DLM's __dlm_compat_matrix without CW.
        let modes = [Nl, Cr, Pr, Pw, Ex];
        let want = [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 0, 0, 0, 0],
        ];
        for (i, a) in modes.iter().enumerate() {
            for (j, b) in modes.iter().enumerate() {
                assert_eq!(a.compatible(*b), want[i][j] == 1, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn names_fit_and_roundtrip() {
        let g = [7u8; 16];
        for r in [
            Resource::Stripe(u64::MAX),
            Resource::Range {
                first: 3,
                last: u64::MAX,
            },
            Resource::Node(9),
            Resource::Config,
            Resource::Members,
        ] {
            let n = ResourceName::new(&g, r).unwrap();
            assert!(n.as_bytes().len() <= RESNAME_MAX);
            assert_eq!(ResourceName::parse(n.as_bytes()), Ok((g, r)));
        }
        assert_eq!(
            ResourceName::new(&g, Resource::Range { first: 2, last: 1 }),
            Err(LockError::BadRange)
        );
        assert_eq!(ResourceName::parse(b"amfs"), Err(LockError::BadName));
        assert_ne!(
            ResourceName::new(&g, Resource::Stripe(1)),
            ResourceName::new(&[8; 16], Resource::Stripe(1))
        );
    }

    #[test]
    fn lazy_release_keeps_lock_until_bast_then_drains() {
        let mut l = LockState::new();
        assert_eq!(l.acquire(Ex), Ok(Action::Request(Ex)));
        assert_eq!(l.acquire(Ex), Ok(Action::Wait));
        assert_eq!(l.granted(Ex), Ok(()));
        assert_eq!(l.acquire(Ex), Ok(Action::Proceed));
        assert_eq!(l.settle(), Action::None);
        assert_eq!(l.op_done(), Ok(Action::None));
        // Idle but still held: the next op needs no round trip.
        assert_eq!(l.acquire(Ex), Ok(Action::Proceed));
        // Another AMF wants PR: no new work, drain, then down-convert to PR.
        assert_eq!(l.blocking(Pr), Action::None);
        assert_eq!(l.acquire(Ex), Ok(Action::Wait));
        assert_eq!(l.op_done(), Ok(Action::Convert(Pr)));
        assert_eq!(l.held(), Nl);
        assert_eq!(l.granted(Pr), Ok(()));
        assert_eq!(l.settle(), Action::None);
        assert_eq!(l.blocked(), None);
        assert_eq!(l.acquire(Pr), Ok(Action::Proceed));
        assert_eq!(l.op_done(), Ok(Action::None));
        // A writer elsewhere: give up to NL at once when idle.
        assert_eq!(l.blocking(Ex), Action::Convert(Nl));
        assert_eq!(l.granted(Nl), Ok(()));
        assert_eq!(l.settle(), Action::None);
        assert_eq!(l.acquire(Ex), Ok(Action::Convert(Ex)));
    }

    #[test]
    fn a_grant_admits_waiters_before_yielding() {
        let mut l = LockState::new();
        assert_eq!(l.acquire(Ex), Ok(Action::Request(Ex)));
        // The BAST can overtake our own grant: we still get one turn.
        assert_eq!(l.blocking(Ex), Action::None);
        l.granted(Ex).unwrap();
        assert_eq!(l.acquire(Ex), Ok(Action::Proceed));
        assert_eq!(l.settle(), Action::None);
        assert_eq!(l.acquire(Ex), Ok(Action::Wait));
        assert_eq!(l.op_done(), Ok(Action::Convert(Nl)));
        // With no waiter, settle yields at once.
        l.granted(Nl).unwrap();
        assert_eq!(l.settle(), Action::None);
        assert_eq!(l.acquire(Pr), Ok(Action::Convert(Pr)));
        assert_eq!(l.blocking(Ex), Action::None);
        l.granted(Pr).unwrap();
        assert_eq!(l.settle(), Action::Convert(Nl));
    }

    #[test]
    fn protocol_errors_are_typed() {
        let mut l = LockState::new();
        assert_eq!(l.granted(Ex), Err(LockError::Unexpected));
        assert_eq!(l.op_done(), Err(LockError::NotInFlight));
        assert_eq!(l.unlocked(), Err(LockError::Unexpected));
        assert_eq!(l.acquire(Pr), Ok(Action::Request(Pr)));
        assert_eq!(l.granted(Ex), Err(LockError::Unexpected));
        assert_eq!(l.granted(Pr), Ok(()));
        assert_eq!(l.settle(), Action::None);
        assert_eq!(l.evict(), Action::Unlock);
        assert_eq!(l.unlocked(), Ok(()));
        assert_eq!(l.state(), State::Unlocked);
    }

    #[test]
    fn up_conversion_waits_until_idle_and_relies_on_nothing() {
        let mut l = LockState::new();
        l.acquire(Pr).unwrap();
        l.granted(Pr).unwrap();
        assert_eq!(l.acquire(Pr), Ok(Action::Proceed));
        l.settle();
        // A write behind a read in flight: no conversion yet.
        assert_eq!(l.acquire(Ex), Ok(Action::Wait));
        assert_eq!(l.op_done(), Ok(Action::None));
        assert_eq!(l.acquire(Ex), Ok(Action::Convert(Ex)));
        assert_eq!(l.held(), Nl);
        assert_eq!(l.acquire(Pr), Ok(Action::Wait));
        l.granted(Ex).unwrap();
        assert_eq!(l.held(), Ex);
    }

    #[test]
    fn compatible_bast_is_ignored() {
        let mut l = LockState::new();
        l.acquire(Pr).unwrap();
        l.granted(Pr).unwrap();
        assert_eq!(l.blocking(Pr), Action::None);
        assert_eq!(l.blocked(), None);
    }
}
