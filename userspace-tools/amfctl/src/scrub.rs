// SPDX-License-Identifier: GPL-2.0
//! Offline parity check of a redundancy group: reads every stripe from the members and
//! compares its parity (raid5/6) or its copies (raid1/10) with what the core's reference
//! maths (`amf_core::parity`) and geometry (`amf_core::geometry`) say they must be.
//!
//! The members are read with positioned reads on files opened read-only; nothing is written.
//! See `Documentation/amfctl.rst` ("amfctl scrub").

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use amf_core::geometry::{Geometry, Level};
use amf_core::parity;

use crate::size::SECTOR_SIZE;

/// Bytes compared at a time within one chunk: bounds memory whatever the chunk size.
const PIECE_BYTES: u64 = 256 * 1024;

/// Something member data can be read from at a byte offset.
pub trait ReadAt {
    /// Fills `buf` from byte `pos` on; a short read is an error.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let src = usize::try_from(pos)
            .ok()
            .and_then(|p| self.get(p..)?.get(..buf.len()))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// One member of the group being checked.
pub struct Member<'a> {
    /// The path, for messages.
    pub path: String,
    /// First sector of the member's data area.
    pub offset: u64,
    /// Where to read it from.
    pub data: &'a dyn ReadAt,
}

/// What did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The P chunk (raid5/6) is not the XOR of the data chunks.
    P,
    /// The Q chunk (raid6) is not the syndrome of the data chunks.
    Q,
    /// A copy (raid1/10) differs from the first copy.
    Copy,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::P => "P",
            Kind::Q => "Q",
            Kind::Copy => "copy",
        })
    }
}

/// One chunk that does not match the rest of its stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Stripe number (see `amf_core::geometry`).
    pub stripe: u64,
    /// Which chunk.
    pub kind: Kind,
    /// Member holding it.
    pub member: usize,
    /// First sector of that chunk, on the member device (offset included), that differs
    /// from what it should hold.
    pub sector: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mismatch: stripe {} {} member {} sector {}",
            self.stripe, self.kind, self.member, self.sector
        )
    }
}

/// The result of a complete scrub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Stripes read and checked.
    pub stripes: u64,
    /// Stripes with at least one mismatch.
    pub mismatched: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scrub: {} stripes checked, {} mismatched",
            self.stripes, self.mismatched
        )
    }
}

/// Why a scrub stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    /// A member could not be read.
    #[error("reading {path} at sector {sector}: {source}")]
    Read {
        /// The member.
        path: String,
        /// Sector on the member device.
        sector: u64,
        /// Why.
        source: io::Error,
    },
    /// The geometry and the members do not fit together.
    #[error("{0}")]
    Geometry(String),
    /// The report could not be written.
    #[error("writing the report: {0}")]
    Output(io::Error),
}

/// Checks stripes `0..stripes` of `g` (at most all of them) on `members` (in member order),
/// calling `report` for each mismatch as it is found (stripe order; P before Q; copies in
/// copy order). raid0 has nothing to check: no stripe is read and the summary is empty.
pub fn scrub(
    g: &Geometry,
    stripes: u64,
    members: &[Member<'_>],
    report: &mut dyn FnMut(&Mismatch) -> io::Result<()>,
) -> Result<Summary, ScrubError> {
    if members.len() != g.members() {
        return Err(ScrubError::Geometry(format!(
            "{} members given for a geometry of {}",
            members.len(),
            g.members()
        )));
    }
    let chunk_bytes = g
        .chunk_sectors()
        .checked_mul(SECTOR_SIZE)
        .ok_or_else(|| ScrubError::Geometry("chunk size too large".to_string()))?;
    let piece = chunk_bytes.min(PIECE_BYTES) as usize;
    let mut s = Scrubber {
        g,
        members,
        chunk_bytes,
        bufs: vec![vec![0u8; piece]; members.len() + 2],
    };
    let mut summary = Summary::default();
    if g.level() == Level::Raid0 {
        return Ok(summary);
    }
    for stripe in 0..stripes.min(g.stripes()) {
        let found = match g.level() {
            Level::Raid5 | Level::Raid6 => s.parity_stripe(stripe)?,
            _ => s.mirror_stripe(stripe)?,
        };
        summary.stripes += 1;
        if !found.is_empty() {
            summary.mismatched += 1;
        }
        for m in &found {
            report(m).map_err(ScrubError::Output)?;
        }
    }
    Ok(summary)
}

struct Scrubber<'g, 'm, 'd> {
    g: &'g Geometry,
    members: &'m [Member<'d>],
    chunk_bytes: u64,
    /// One piece-sized buffer per member, then two for the recomputed P and Q.
    bufs: Vec<Vec<u8>>,
}

impl Scrubber<'_, '_, '_> {
    /// Reads `len` bytes of `member` at `member_sector` (relative to its data area) plus
    /// `pos` bytes into buffer `buf`.
    fn read(
        &mut self,
        buf: usize,
        member: usize,
        member_sector: u64,
        pos: u64,
        len: usize,
    ) -> Result<(), ScrubError> {
        let m = &self.members[member];
        let start = (m.offset + member_sector) * SECTOR_SIZE + pos;
        m.data
            .read_exact_at(&mut self.bufs[buf][..len], start)
            .map_err(|source| ScrubError::Read {
                path: m.path.clone(),
                sector: start / SECTOR_SIZE,
                source,
            })
    }

    /// The device sector of byte `pos` of the chunk at `member_sector` on `member`.
    fn sector(&self, member: usize, member_sector: u64, pos: u64) -> u64 {
        self.members[member].offset + member_sector + pos / SECTOR_SIZE
    }

    fn parity_stripe(&mut self, stripe: u64) -> Result<Vec<Mismatch>, ScrubError> {
        let layout = self
            .g
            .layout(stripe)
            .map_err(|e| ScrubError::Geometry(format!("stripe {stripe}: {e:?}")))?;
        let data: Vec<usize> = layout.data_members().iter().map(|m| *m as usize).collect();
        let p = layout
            .p
            .ok_or_else(|| ScrubError::Geometry(format!("stripe {stripe}: no P member")))?;
        let q = layout.q;
        let sector = layout.member_sector;
        let n = self.members.len();
        let (mut p_bad, mut q_bad) = (None, None);
        let mut pos = 0u64;
        while pos < self.chunk_bytes {
            let len = (self.chunk_bytes - pos).min(self.bufs[0].len() as u64) as usize;
            for m in data.iter().copied().chain([p]).chain(q) {
                self.read(m, m, sector, pos, len)?;
            }
            let (members, parity) = self.bufs.split_at_mut(n);
            let (new_p, new_q) = parity.split_at_mut(1);
            let (new_p, new_q) = (&mut new_p[0][..len], &mut new_q[0][..len]);
            let chunks: Vec<&[u8]> = data.iter().map(|m| &members[*m][..len]).collect();
            let maths = match q {
                Some(_) => parity::gen_pq(&chunks, new_p, new_q),
                None => parity::gen_p(&chunks, new_p),
            };
            maths.map_err(|e| ScrubError::Geometry(format!("stripe {stripe}: parity: {e:?}")))?;
            if p_bad.is_none() {
                p_bad = first_diff(&members[p][..len], new_p).map(|i| pos + i as u64);
            }
            if let (Some(qm), None) = (q, q_bad) {
                q_bad = first_diff(&members[qm][..len], new_q).map(|i| pos + i as u64);
            }
            pos += len as u64;
        }
        let mut out = Vec::new();
        for (kind, member, bad) in [(Kind::P, Some(p), p_bad), (Kind::Q, q, q_bad)] {
            if let (Some(member), Some(at)) = (member, bad) {
                out.push(Mismatch {
                    stripe,
                    kind,
                    member,
                    sector: self.sector(member, sector, at),
                });
            }
        }
        Ok(out)
    }

    fn mirror_stripe(&mut self, stripe: u64) -> Result<Vec<Mismatch>, ScrubError> {
        // The stripe of raid1/raid10 is one logical chunk: its copies are where its first
        // sector's copies are.
        let first = stripe * self.g.chunk_sectors();
        let copies = self
            .g
            .copies(first)
            .map_err(|e| ScrubError::Geometry(format!("stripe {stripe}: {e:?}")))?;
        let places = copies.as_slice();
        let mut bad: Vec<Option<u64>> = vec![None; places.len()];
        let mut pos = 0u64;
        while pos < self.chunk_bytes {
            let len = (self.chunk_bytes - pos).min(self.bufs[0].len() as u64) as usize;
            for (i, place) in places.iter().enumerate() {
                self.read(i, place.member, place.sector, pos, len)?;
            }
            let (reference, others) = self.bufs.split_at(1);
            for (i, other) in others.iter().take(places.len() - 1).enumerate() {
                if bad[i + 1].is_none() {
                    bad[i + 1] =
                        first_diff(&reference[0][..len], &other[..len]).map(|d| pos + d as u64);
                }
            }
            pos += len as u64;
        }
        Ok(places
            .iter()
            .zip(bad)
            .filter_map(|(place, at)| {
                at.map(|at| Mismatch {
                    stripe,
                    kind: Kind::Copy,
                    member: place.member,
                    sector: self.sector(place.member, place.sector, at),
                })
            })
            .collect())
    }
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: u64 = 8;
    const CB: usize = (CS * SECTOR_SIZE) as usize;

    /// Member images of a group of `g` whose data chunks hold a pattern and whose parity
    /// is correct, each with `offset` sectors in front of its data area.
    fn images(g: &Geometry, offset: u64) -> Vec<Vec<u8>> {
        let len = ((offset + g.stripes() * CS) * SECTOR_SIZE) as usize;
        let mut img = vec![vec![0xeeu8; len]; g.members()];
        let at = |sector: u64| ((offset + sector) * SECTOR_SIZE) as usize;
        for s in 0..g.stripes() {
            let l = g.layout(s).unwrap();
            let data: Vec<Vec<u8>> = (0..l.data_members().len())
                .map(|k| {
                    (0..CB)
                        .map(|i| (s as usize * 31 + k * 7 + i) as u8)
                        .collect()
                })
                .collect();
            for (k, m) in l.data_members().iter().enumerate() {
                let o = at(l.member_sector);
                img[*m as usize][o..o + CB].copy_from_slice(&data[k]);
            }
            let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let (mut p, mut q) = (vec![0u8; CB], vec![0u8; CB]);
            parity::gen_pq(&refs, &mut p, &mut q).unwrap();
            let o = at(l.member_sector);
            img[l.p.unwrap()][o..o + CB].copy_from_slice(&p);
            if let Some(qm) = l.q {
                img[qm][o..o + CB].copy_from_slice(&q);
            }
        }
        img
    }

    fn run(g: &Geometry, img: &[Vec<u8>], offset: u64) -> (Summary, Vec<Mismatch>) {
        let members: Vec<Member> = img
            .iter()
            .enumerate()
            .map(|(i, d)| Member {
                path: format!("m{i}"),
                offset,
                data: d,
            })
            .collect();
        let mut found = Vec::new();
        let sum = scrub(g, u64::MAX, &members, &mut |m| {
            found.push(*m);
            Ok(())
        })
        .unwrap();
        (sum, found)
    }

    #[test]
    fn raid5_and_raid6_clean_then_one_flip() {
        for (level, n) in [(Level::Raid5, 4), (Level::Raid6, 5), (Level::Raid6, 4)] {
            let g = Geometry::new(level, n, CS, 6 * CS).unwrap();
            let mut img = images(&g, 16);
            let (sum, found) = run(&g, &img, 16);
            assert_eq!(
                sum,
                Summary {
                    stripes: 6,
                    mismatched: 0
                },
                "{level:?}"
            );
            assert!(found.is_empty());

            // Flip a byte of data chunk 1 of stripe 4, in its third sector.
            let l = g.layout(4).unwrap();
            let m = l.data_member(1).unwrap();
            img[m][((16 + 4 * CS + 2) * SECTOR_SIZE + 5) as usize] ^= 0x40;
            let (sum, found) = run(&g, &img, 16);
            assert_eq!(
                sum,
                Summary {
                    stripes: 6,
                    mismatched: 1
                }
            );
            let mut expect = vec![Mismatch {
                stripe: 4,
                kind: Kind::P,
                member: l.p.unwrap(),
                sector: 16 + 4 * CS + 2,
            }];
            if let Some(q) = l.q {
                expect.push(Mismatch {
                    stripe: 4,
                    kind: Kind::Q,
                    member: q,
                    sector: 16 + 4 * CS + 2,
                });
            }
            assert_eq!(found, expect, "{level:?} {n}");
        }
    }

    #[test]
    fn large_chunks_are_compared_piece_by_piece() {
        // 1 MiB chunks: four pieces each; a flip in the last piece of a Q chunk.
        let cs = 2048;
        let g = Geometry::new(Level::Raid6, 4, cs, 2 * cs).unwrap();
        let len = (2 * cs * SECTOR_SIZE) as usize;
        let mut img = vec![vec![0u8; len]; 4];
        let (sum, _) = run(&g, &img, 0);
        assert_eq!(
            sum,
            Summary {
                stripes: 2,
                mismatched: 0
            }
        );
        let q = g.layout(1).unwrap().q.unwrap();
        img[q][len - 1] = 1;
        let (sum, found) = run(&g, &img, 0);
        assert_eq!(sum.mismatched, 1);
        assert_eq!(
            found,
            vec![Mismatch {
                stripe: 1,
                kind: Kind::Q,
                member: q,
                sector: 2 * cs - 1
            }]
        );
    }

    #[test]
    fn mirrors_compare_copies() {
        let g = Geometry::new(Level::Raid1, 3, CS, 4 * CS).unwrap();
        let mut img = vec![vec![7u8; (4 * CS * SECTOR_SIZE) as usize]; 3];
        assert_eq!(
            run(&g, &img, 0).0,
            Summary {
                stripes: 4,
                mismatched: 0
            }
        );
        img[2][(2 * CS * SECTOR_SIZE) as usize + 600] = 0;
        let (sum, found) = run(&g, &img, 0);
        assert_eq!(sum.mismatched, 1);
        assert_eq!(
            found,
            vec![Mismatch {
                stripe: 2,
                kind: Kind::Copy,
                member: 2,
                sector: 2 * CS + 1
            }]
        );

        // raid10 near, 3 members, 2 copies: chunk 1 is on member 2 row 0 and member 0 row 1.
        let g = Geometry::new(Level::Raid10 { copies: 2 }, 3, CS, 2 * CS).unwrap();
        let mut img = vec![vec![0u8; (2 * CS * SECTOR_SIZE) as usize]; 3];
        img[0][(CS * SECTOR_SIZE) as usize] = 1;
        let (sum, found) = run(&g, &img, 0);
        assert_eq!(
            sum,
            Summary {
                stripes: 3,
                mismatched: 1
            }
        );
        assert_eq!(
            found,
            vec![Mismatch {
                stripe: 1,
                kind: Kind::Copy,
                member: 0,
                sector: CS
            }]
        );
    }

    #[test]
    fn raid0_reads_nothing_and_short_members_fail() {
        let g = Geometry::new(Level::Raid0, 2, CS, 4 * CS).unwrap();
        let (sum, _) = run(&g, &[vec![], vec![]], 0);
        assert_eq!(sum, Summary::default());

        let g = Geometry::new(Level::Raid5, 3, CS, 4 * CS).unwrap();
        let short = [vec![0u8; CB * 4], vec![0u8; CB * 4], vec![0u8; CB * 3]];
        let members: Vec<Member> = short
            .iter()
            .map(|d| Member {
                path: "short".to_string(),
                offset: 0,
                data: d,
            })
            .collect();
        let e = scrub(&g, u64::MAX, &members, &mut |_| Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("reading short at sector {}: unexpected end of file", 3 * CS)
        );
    }

    #[test]
    fn report_lines() {
        let m = Mismatch {
            stripe: 12,
            kind: Kind::Q,
            member: 3,
            sector: 2048 + 12 * 128,
        };
        assert_eq!(m.to_string(), "mismatch: stripe 12 Q member 3 sector 3584");
        let s = Summary {
            stripes: 4096,
            mismatched: 1,
        };
        assert_eq!(s.to_string(), "scrub: 4096 stripes checked, 1 mismatched");
    }
}
